"""The operator's Prometheus endpoint reports what it did (docs/metrics.md)."""
from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e import test_dagjob as dag
from tests.e2e.test_sparkbatch import batch, wait_state

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_objects_transitions_and_latencies(kubectl: Kubectl, kubeconfig: str, tmp_path: Path,
                                                         priority_classes: None) -> None:
    ns = kubectl.fresh_namespace()  # outside the session operator's namespaces
    port = _free_port()
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={"LAKEJOB_METRICS_PORT": str(port)})
    try:
        op.start()
        kubectl.apply(batch("good", "succeed"), ns)
        kubectl.apply(batch("bad", "fail", auto_recovery=True, max_retry_times=1), ns)
        kubectl.apply(dag.dagjob("flow", {"a": dag.command(), "b": dag.command(outcome="fail")},
                                 fail_fast=False), ns)
        wait_state(kubectl, "good", ns, "success")
        wait_state(kubectl, "bad", ns, "dead")
        dag.wait_state(kubectl, "flow", ns, "Failed")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert _sample(text, "lakejob_objects", kind="SparkBatch", state="success") == 1
        assert _sample(text, "lakejob_objects", kind="SparkBatch", state="dead") == 1
        assert _sample(text, "lakejob_submissions_total", kind="SparkBatch") == 2
        assert _sample(text, "lakejob_retries_total", kind="SparkBatch") == 1
        assert _sample(text, "lakejob_failures_total", kind="SparkBatch", reason="Error") == 1
        assert _sample(text, "lakejob_reconcile_duration_seconds_count", kind="SparkBatch") >= 4
        assert _sample(text, "lakejob_first_pod_latency_seconds_count", kind="SparkBatch") == 2
        # A kind whose state field is spelt differently (DagJob's State) is counted all the same.
        assert _sample(text, "lakejob_objects", kind="DagJob", state="Failed") == 1
        assert _sample(text, "lakejob_submissions_total", kind="DagJob") == 1
        assert sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('lakejob_failures_total{kind="DagJob"')) == 1
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")
