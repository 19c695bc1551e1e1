"""What Kubernetes refuses shows on the CR within seconds, and what the operator does not know does
not kill running work (issue 11), on the real control plane with KWOK playing the pods:

- a driver pod refused by a ResourceQuota: the SparkBatch's Reconciled condition names the refused
  request and the API's message; the job starts once the quota allows it;
- a DagJob task whose Job cannot create pods (a PriorityClass that does not exist): the task's
  message and a Warning Event say so, not only the Job's own Events;
- a spec field from a newer CRD (a rollback of the operator): the job runs, and an IgnoredFields
  Warning Event names the field.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e import test_dagjob as dagjobs
from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_ownership import not_reconciled
from tests.e2e.test_sparkbatch import batch, drivers, wait_state

pytestmark = pytest.mark.e2e


def test_a_driver_refused_by_a_quota_is_named_on_the_cr_at_once(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"},
                   "spec": {"hard": {"pods": "0"}}}, namespace)
    kubectl.wait_for(lambda: (kubectl.get("resourcequota", "no-pods", namespace) or {}).get("status", {}).get("hard"),
                     "the quota to be in force")
    created = time.monotonic()
    kubectl.apply(batch("q", "succeed"), namespace)
    c = not_reconciled(kubectl, "q", namespace, timeout=30)
    took = time.monotonic() - created
    assert c["reason"] == "Rejected" and c["message"].startswith("the API refused to create Pod q-driver-1: 403")
    assert "exceeded quota: no-pods" in c["message"] and took < 15, (took, c)
    assert "Rejected" in kubectl.events(namespace)

    kubectl.run("delete", "resourcequota", "no-pods", "-n", namespace)
    st = wait_state(kubectl, "q", namespace, "success", timeout=90)  # backoff is capped: it tries again
    assert {c["type"]: c for c in st["conditions"]}["Reconciled"]["status"] == "True"
    assert drivers(kubectl, namespace, "q") == ["q-driver-1"]


def test_a_task_whose_pods_cannot_be_created_says_why_on_the_dagjob(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path, crds_installed: None) -> None:
    ns = kubectl.fresh_namespace("solo-nopc")
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log",
                  env={"LAKEJOB_DAG_PRIORITY_CLASSES": "0=lakejob-no-such-class"})
    try:
        op.start()
        kubectl.apply(dagjobs.dagjob("nopc", {"A": dagjobs.command()}), ns)

        def message() -> str | None:
            task = (dagjobs.status(kubectl, "nopc", ns).get("Tasks") or {}).get("A") or {}
            return task.get("Message") if "pods cannot be created" in (task.get("Message") or "") else None
        text = kubectl.wait_for(message, "the task to say its pods cannot be created", timeout=30, namespace=ns,
                                show=("dagjob", "nopc"))
        assert "lakejob-no-such-class" in text
        assert "TaskCreateFailed" in kubectl.events(ns)
        assert dagjobs.status(kubectl, "nopc", ns)["State"] == "Running"  # the Job keeps trying: nothing is lost
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


def test_a_field_from_a_newer_crd_is_ignored_and_named_and_the_job_runs(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path, crds_installed: None) -> None:
    """A rollback: the CRD (newer) has a field this operator lacks; the operator starts after it."""
    crd = "sparkbatches.lakejob.io"
    path = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/futureTuning"
    ns = kubectl.fresh_namespace("solo-newer")
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log")
    kubectl.run("patch", "crd", crd, "--type=json", "-p", json.dumps([
        {"op": "add", "path": path, "value": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}]))
    try:
        newer = batch("newer", "succeed")
        newer["spec"]["futureTuning"] = {"level": 3}

        def accepted() -> bool:  # the apiserver serves the new schema a moment after the patch
            return kubectl.result("apply", "-n", ns, "-f", "-", stdin=json.dumps(newer)).returncode == 0
        kubectl.wait_for(accepted, "the newer CRD to accept the field", timeout=30)
        op.start()
        wait_state(kubectl, "newer", ns, "success")
        events = kubectl.events(ns)
        assert "IgnoredFields" in events and "spec.futureTuning" in events, events
    finally:
        op.stop()
        kubectl.run("patch", "crd", crd, "--type=json", "-p", json.dumps([{"op": "remove", "path": path}]))
        kubectl.ok("delete", "namespace", ns, "--wait=false")
