"""Kueue's manager (v0.17.0 from Go modules, hack/kueue/build.sh; the first run builds it, minutes)
out of cluster against the local cluster: the groundwork of issue 16 (docs/queues.md).

A queue of 4 CUs (a ClusterQueue with nominalQuota cpu 4 and memory 16Gi, DLI's 1 CU = 1 vCPU + 4 GiB;
a LocalQueue in the test's namespace) and two Workloads written whole, as lakejob will write them
(podSets driver + executors, no webhook defaulting anything): the first, 3 CUs, is admitted; the
second, 2 CUs, waits with Kueue's reason; once the first is Finished the second is admitted.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubectl import Kubectl
from tests.e2e.kueue import Kueue, KueueError, build

API = "kueue.x-k8s.io/v1beta2"
CU = {"cpu": "1", "memory": "4Gi"}


@pytest.fixture(scope="session")
def kueue(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kueue]:
    try:
        binary = build()
    except KueueError as e:
        pytest.fail(str(e), pytrace=False)
    # Outside the session operator's e2eXXXX-* namespaces: Kueue's own Secret is not lakejob's business.
    k = Kueue(binary, kubectl, f"kueue-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("kueue"))
    try:
        k.start()
    except KueueError as e:
        k.stop()
        pytest.fail(str(e), pytrace=False)
    yield k
    k.stop()


def pod(requests: dict[str, str]) -> dict[str, Any]:
    return {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "lakejob.local/spark:4.0.1",
                                     "resources": {"requests": requests}}]}}


def workload(name: str, queue: str, executors: int) -> dict[str, Any]:
    """A Spark job's Workload as docs/queues.md has lakejob write it: driver ×1 and executors ×n, 1 CU each."""
    return {"apiVersion": API, "kind": "Workload", "metadata": {"name": name},
            "spec": {"queueName": queue, "priority": 0, "active": True,
                     "podSets": [{"name": "driver", "count": 1, "template": pod(CU)},
                                 {"name": "executor", "count": executors, "template": pod(CU)}]}}


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def test_a_queue_of_4_cus_admits_3_and_holds_2_more_until_the_first_finishes(
        kueue: Kueue, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    tag = namespace[-5:]
    flavor, cq, lq = f"lakejob-e2e-{tag}", f"lakejob-e2e-{tag}", "dli-queue"
    cluster_scoped = [("clusterqueues.kueue.x-k8s.io", cq), ("resourceflavors.kueue.x-k8s.io", flavor)]

    def reserved(name: str) -> dict[str, Any]:
        return condition(kubectl.get("workloads.kueue.x-k8s.io", name, namespace), "QuotaReserved")

    def admitted(name: str) -> bool:
        return condition(kubectl.get("workloads.kueue.x-k8s.io", name, namespace), "Admitted").get("status") == "True"

    try:
        kubectl.apply({"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": flavor}})
        kubectl.apply({"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": flavor, "resources": [
                {"name": "cpu", "nominalQuota": "4"}, {"name": "memory", "nominalQuota": "16Gi"}]}]}]}})
        kubectl.apply({"apiVersion": API, "kind": "LocalQueue", "metadata": {"name": lq},
                       "spec": {"clusterQueue": cq}}, namespace)
        kubectl.wait_for(lambda: condition(kubectl.get("localqueues.kueue.x-k8s.io", lq, namespace),
                                           "Active").get("status") == "True",
                         "the LocalQueue to be Active", 30, namespace, ("localqueues.kueue.x-k8s.io", lq))

        kubectl.apply(workload("first", lq, executors=2), namespace)  # 3 CUs of 4
        kubectl.wait_for(lambda: admitted("first"), "the first Workload to be Admitted", 30, namespace,
                         ("workloads.kueue.x-k8s.io", "first"))
        admission = (kubectl.get("workloads.kueue.x-k8s.io", "first", namespace) or {})["status"]["admission"]
        assert admission["clusterQueue"] == cq
        assert {a["name"]: (a["count"], a["flavors"]) for a in admission["podSetAssignments"]} == {
            "driver": (1, {"cpu": flavor, "memory": flavor}), "executor": (2, {"cpu": flavor, "memory": flavor})}

        kubectl.apply(workload("second", lq, executors=1), namespace)  # 2 more CUs: 5 > 4
        kubectl.wait_for(lambda: reserved("second").get("reason") == "Pending",
                         "the second Workload to wait for quota", 30, namespace, ("workloads.kueue.x-k8s.io", "second"))
        pending = reserved("second")
        assert pending["status"] == "False", pending
        assert "insufficient unused quota for cpu" in pending["message"], pending
        assert not admitted("second")

        # The job ends: its maker marks the Workload Finished (as Kueue's jobframework does), releasing the quota.
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kubectl.run("patch", "workloads.kueue.x-k8s.io", "first", "-n", namespace, "--subresource=status",
                    "--type=json", "-p", json.dumps([{"op": "add", "path": "/status/conditions/-", "value": {
                        "type": "Finished", "status": "True", "reason": "Succeeded", "message": "the job succeeded",
                        "lastTransitionTime": now}}]))
        kubectl.wait_for(lambda: admitted("second"), "the second Workload to be Admitted once the first finished",
                         30, namespace, ("workloads.kueue.x-k8s.io", "second"))
    finally:
        # Cluster-scoped objects go while Kueue still runs (it removes their finalizers); the
        # namespace (its Workloads and LocalQueue) goes first, with the fixture's deletion after.
        kubectl.ok("delete", "workloads.kueue.x-k8s.io,localqueues.kueue.x-k8s.io", "--all", "-n", namespace,
                   "--timeout=30s")
        for kind, name in cluster_scoped:
            kubectl.ok("delete", kind, name, "--ignore-not-found", "--timeout=30s")
