"""Ownership on the real control plane (issue 11): an object with a child's name that is not the CR's
own is a conflict, reported on the CR (a Reconciled=False condition and a Warning Event naming it);
it is never patched, adopted or deleted, and the job goes on once the conflict is gone.

KWOK plays the pods, as in test_sparkbatch.py; the operator is `lakejob run` with per-job RBAC.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_sparkbatch import batch, drivers, status, wait_state

pytestmark = pytest.mark.e2e


def not_reconciled(kubectl: Kubectl, name: str, ns: str, timeout: float = 60) -> dict[str, Any]:
    """The SparkBatch's Reconciled condition once it is False: what the operator could not do."""
    def check() -> dict[str, Any] | None:
        c = {c["type"]: c for c in status(kubectl, name, ns).get("conditions") or []}.get("Reconciled")
        return c if c and c["status"] == "False" else None
    return kubectl.wait_for(check, f"SparkBatch {name} to say what it could not do", timeout=timeout, namespace=ns,
                            show=("sparkbatch", name))


@pytest.fixture
def per_job_operator(kubectl: Kubectl, kubeconfig: str, tmp_path: Path) -> Iterator[str]:
    """An operator with per-job driver accounts, watching a namespace of its own (yielded)."""
    ns = kubectl.fresh_namespace()
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={"LAKEJOB_DRIVER_RBAC": "per-job"})
    try:
        op.start()
        yield ns
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


def test_a_teams_own_service_account_is_reported_never_taken_over(kubectl: Kubectl, per_job_operator: str) -> None:
    namespace = per_job_operator
    # The team's account that happens to have the name a job `etl`'s per-job RBAC gets.
    kubectl.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "etl-spark", "labels": {"team": "data"}}}, namespace)
    kubectl.apply(batch("etl", "succeed"), namespace)
    c = not_reconciled(kubectl, "etl", namespace)
    assert c["reason"] == "ChildConflict" and f"ServiceAccount {namespace}/etl-spark exists" in c["message"]
    assert "ChildConflict" in kubectl.events(namespace)
    assert drivers(kubectl, namespace, "etl") == []  # nothing started on someone else's account
    sa = kubectl.get("serviceaccount", "etl-spark", namespace)
    assert sa is not None and "ownerReferences" not in sa["metadata"] and sa["metadata"]["labels"] == {"team": "data"}

    kubectl.run("delete", "serviceaccount", "etl-spark", "-n", namespace)  # the team renames theirs
    st = wait_state(kubectl, "etl", namespace, "success", timeout=90)
    assert {c["type"]: c for c in st["conditions"]}["Reconciled"]["status"] == "True"
    owned = kubectl.get("serviceaccount", "etl-spark", namespace)
    assert owned and owned["metadata"]["ownerReferences"][0]["kind"] == "SparkBatch"


@pytest.mark.own_pods
def test_a_pod_with_our_labels_and_name_is_not_adopted_as_the_driver(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    # What a same-named predecessor's terminating driver, or a hand-made pod, looks like to the index.
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "re-driver-1", "labels": {"lakejob.io/kind": "SparkBatch", "lakejob.io/name": "re",
                                          "lakejob.io/role": "driver", "spark-role": "driver"}},
        "spec": {"containers": [{"name": "x", "image": "busybox"}]}}, namespace)
    kubectl.apply(batch("re", "succeed"), namespace)
    c = not_reconciled(kubectl, "re", namespace)
    assert c["reason"] == "ChildConflict" and f"Pod {namespace}/re-driver-1 exists" in c["message"]
    assert status(kubectl, "re", namespace)["state"] != "success"  # the hand-made pod's outcome is not the job's
    pod = kubectl.get("pod", "re-driver-1", namespace)
    assert pod is not None and "ownerReferences" not in pod["metadata"]

    kubectl.run("delete", "pod", "re-driver-1", "-n", namespace, "--grace-period=0", "--force")
    wait_state(kubectl, "re", namespace, "success", timeout=90)
    pod = kubectl.get("pod", "re-driver-1", namespace)
    assert pod and pod["metadata"]["ownerReferences"][0]["kind"] == "SparkBatch"
