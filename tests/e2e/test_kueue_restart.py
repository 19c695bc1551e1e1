"""Kueue installed and removed under a running operator (docs/queues.md, "Installing or removing
Kueue"): kopf watches what was served at its start, so the operator starts itself anew (same
process, `exec`) when Kueue comes or goes, and neither wedges nor ends.

The operator here watches one exact namespace, the mode (the chart's watchNamespaces) in which kopf
looks for no CRD after its start. KWOK plays the drivers (sim.lakejob.io/*, as in test_sparkbatch.py).

Not marked `kueue`: it installs and removes Kueue itself (tests/e2e/kueue.py `running`, one manager
per cluster at a time, whose lock the `kueue` session's manager holds), so it runs in `make test`'s
first session, where no other Kueue runs.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from lakejob.controllers.queueing import KueueProbe
from tests.e2e import kueue as kueue_mod
from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_kueue_sparkbatch import TWO_CUS, admitted
from tests.e2e.test_sparkbatch import batch, wait_state

pytestmark = [pytest.mark.e2e]

RESTARTED = "restarting the operator"
STARTED = "lakejob operator started"


def logged(op: Operator, text: str) -> int:
    return op.log.read_text(errors="replace").count(text)


def test_an_operator_starts_itself_anew_when_kueue_is_installed_and_when_it_is_removed(
        kubectl: Kubectl, crds_installed: None, tmp_path: Path) -> None:
    ns = kubectl.fresh_namespace()  # outside the session operator's namespaces
    op = Operator(kubectl.kubeconfig, ["--namespace", ns], tmp_path / "operator.log")
    op.start()
    try:
        # No Kueue: a job naming a queue runs unqueued (LAKEJOB_QUEUEING=auto).
        kubectl.apply(batch("before", "succeed", **TWO_CUS), ns)
        assert "workload" not in wait_state(kubectl, "before", ns, "success")
        pid = op.proc.pid if op.proc else 0

        with kueue_mod.running(kubectl, tmp_path / "kueue"), \
                contextlib.contextmanager(kueue_mod.local_queue)(kubectl, ns, {"cpu": "4", "memory": "16Gi"}):
            # Within the probe's period (30 s) of Kueue's API appearing, with no job asking.
            kubectl.wait_for(lambda: logged(op, STARTED) == 2, "the operator to start anew once Kueue is there", 90)
            assert "Kueue is installed now (kueue.x-k8s.io/v1beta2 is served)" in op.output(), op.output()
            kubectl.apply(batch("queued", "succeed", **TWO_CUS), ns)
            kubectl.wait_for(lambda: admitted(kubectl, ns, "queued").get("status") == "True",
                             "the job to go through Kueue and be admitted", 60, ns, ("sparkbatch", "queued"))
            st = wait_state(kubectl, "queued", ns, "success")
            assert st["workload"]["name"] == "queued-sparkbatch", st

        # Kueue's CRDs deleted under kopf's watch of Workloads: the operator starts anew, not ends.
        removed = time.monotonic()
        kubectl.wait_for(lambda: logged(op, STARTED) == 3, "the operator to start anew once Kueue is gone", 90)
        assert op.state() == f"running (pid {pid})", op.output()  # the same process: no crash, no container restart
        kubectl.apply(batch("after", "succeed", **TWO_CUS), ns)
        assert "workload" not in wait_state(kubectl, "after", ns, "success")
        assert logged(op, RESTARTED) == 2, op.output()  # (kopf logs the failed watch's 404 with its traceback)
        # The session's other operators (the session one, the in-cluster one) restart too within a
        # probe period of the removal: let them, here rather than in the middle of the next test.
        time.sleep(max(0.0, removed + KueueProbe.PROBE_S + 5 - time.monotonic()))
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")
