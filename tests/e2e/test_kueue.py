"""Kueue's manager (v0.17.0 from Go modules, hack/kueue/build.sh; the first run builds it, minutes)
out of cluster against the local cluster: the groundwork of issue 16 (docs/queues.md).

A queue of 4 CUs (a ClusterQueue with nominalQuota cpu 4 and memory 16Gi, DLI's 1 CU = 1 vCPU + 4 GiB;
a LocalQueue in the test's namespace) and Workloads written whole, as lakejob will write them (podSets
driver + executors, no webhook defaulting anything):
- quota: a 3-CU Workload is admitted, a 2-CU one waits with Kueue's reason and is admitted once the
  first is Finished;
- preemption: a high-priority 2-CU Workload makes Kueue evict the admitted low-priority 3-CU one, but
  the quota is freed only when the owner releases the evicted one (what lakejob must do once its pods
  are gone); then the high one is admitted and the low one waits again, requeued, not finished.
"""
from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

import pytest

from tests.e2e.kueue import API, Queue, condition, now

pytestmark = [pytest.mark.e2e, pytest.mark.kueue]

CU = {"cpu": "1", "memory": "4Gi"}


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


def release(q: Queue, workload: str) -> None:
    """What an owner does once an evicted Workload's pods are gone, as Kueue's jobframework does
    (pkg/controller/jobframework/reconciler.go, "handle eviction"): Requeued True for a preemption,
    QuotaReserved False with reason Pending, no admission, Admitted False. One merge patch of the
    status with the object's resourceVersion, so a concurrent write by Kueue makes it fail, not lost."""
    wl = q.get(workload) or {}
    evicted, t = condition(wl, "Evicted"), now()
    new = {"Requeued": {"status": "True", "reason": evicted["reason"], "message": evicted["message"]},
           "QuotaReserved": {"status": "False", "reason": "Pending", "message": evicted["message"]},
           "Admitted": {"status": "False", "reason": "NoReservation", "message": "The workload has no reservation"}}
    conditions = [c for c in wl["status"]["conditions"] if c["type"] not in new]
    conditions += [{"type": k, **v, "lastTransitionTime": t, "observedGeneration": wl["metadata"]["generation"]}
                   for k, v in new.items()]
    q.kubectl.run("patch", "workloads.kueue.x-k8s.io", workload, "-n", q.namespace, "--subresource=status",
                  "--type=merge", "-p", json.dumps({"metadata": {"resourceVersion": wl["metadata"]["resourceVersion"]},
                                                    "status": {"admission": None, "conditions": conditions}}))


def test_a_queue_of_4_cus_admits_3_and_holds_2_more_until_the_first_finishes(queue: Queue) -> None:
    q, kubectl, ns = queue, queue.kubectl, queue.namespace
    kubectl.apply(workload("first", q.name, executors=2), ns)  # 3 CUs of 4
    q.wait(lambda: q.admitted("first"), "the first Workload to be Admitted", "first")
    admission = (q.get("first") or {})["status"]["admission"]
    assert admission["clusterQueue"] == q.cluster_queue
    flavors = {"cpu": q.cluster_queue, "memory": q.cluster_queue}
    assert {a["name"]: (a["count"], a["flavors"]) for a in admission["podSetAssignments"]} == {
        "driver": (1, flavors), "executor": (2, flavors)}

    kubectl.apply(workload("second", q.name, executors=1), ns)  # 2 more CUs: 5 > 4
    q.wait(lambda: q.pending("second"), "the second Workload to wait for quota", "second")
    pending = q.condition("second", "QuotaReserved")
    assert pending["status"] == "False", pending
    assert "insufficient unused quota for cpu" in pending["message"], pending
    assert not q.admitted("second")

    finish(q, "first")
    q.wait(lambda: q.admitted("second"), "the second Workload to be Admitted once the first finished", "second")


def test_a_high_priority_workload_preempts_a_low_one_once_its_owner_releases_it(queue: Queue) -> None:
    q, kubectl, ns = queue, queue.kubectl, queue.namespace
    kubectl.apply(workload("low", q.name, executors=2), ns)  # priority 0, 3 CUs of 4
    q.wait(lambda: q.admitted("low"), "the low-priority Workload to be Admitted", "low")
    high = workload("high", q.name, executors=1)  # 2 CUs: only with low's 3 gone
    high["spec"]["priority"] = 100
    kubectl.apply(high, ns)

    q.wait(lambda: q.condition("low", "Evicted").get("status") == "True",
           "Kueue to evict the low-priority Workload", "low")
    low = q.get("low")
    assert condition(low, "Evicted")["reason"] == "Preempted", low
    assert condition(low, "Preempted")["reason"] == "InClusterQueue", low
    # Kueue leaves the reservation to the owner, who must stop the job first: until it does, the
    # quota stays taken and the preemptor waits.
    time.sleep(3)
    assert q.condition("low", "QuotaReserved").get("status") == "True", q.get("low")
    assert not q.admitted("high"), q.get("high")

    release(q, "low")
    q.wait(lambda: q.admitted("high"), "the high-priority Workload to be Admitted once low was released", "high")
    # The preempted one waits for quota again: preempted and requeued, not finished.
    q.wait(lambda: "insufficient unused quota" in q.condition("low", "QuotaReserved").get("message", ""),
           "the preempted Workload to wait for quota again", "low")
    low = q.get("low")
    assert condition(low, "QuotaReserved")["status"] == "False", low
    assert condition(low, "Requeued")["status"] == "True", low
    assert condition(low, "Finished").get("status") != "True", low


def finish(q: Queue, workload: str) -> None:
    """The job ended: its maker marks the Workload Finished (as Kueue's jobframework does), releasing the quota."""
    q.kubectl.run("patch", "workloads.kueue.x-k8s.io", workload, "-n", q.namespace, "--subresource=status",
                  "--type=json", "-p", json.dumps([{"op": "add", "path": "/status/conditions/-", "value": {
                      "type": "Finished", "status": "True", "reason": "Succeeded", "message": "the job succeeded",
                      "lastTransitionTime": now()}}]))


def test_a_workload_naming_a_missing_local_queue_is_inadmissible_with_kueues_reason(queue: Queue) -> None:
    queue.kubectl.apply(workload("lost", "no-such-queue", executors=1), queue.namespace)
    queue.wait(lambda: queue.condition("lost", "QuotaReserved").get("reason") == "Inadmissible",
               "the Workload to be Inadmissible", "lost")
    assert queue.condition("lost", "QuotaReserved")["message"] == "LocalQueue no-such-queue doesn't exist"


def test_raising_a_pending_workloads_priority_puts_it_ahead_of_an_older_one(queue: Queue) -> None:
    """A DagJob's Priority is mutable: lakejob patches the Workload's spec.priority while it waits."""
    q, kubectl, ns = queue, queue.kubectl, queue.namespace
    kubectl.apply(workload("running", q.name, executors=2), ns)  # 3 CUs of 4
    q.wait(lambda: q.admitted("running"), "the first Workload to be Admitted", "running")
    for name in ("older", "newer"):  # 3 CUs each: only one fits once running finishes (two 2-CU ones both would)
        kubectl.apply(workload(name, q.name, executors=2), ns)
        q.wait(partial(q.pending, name), f"{name} to wait for quota", name)
    kubectl.run("patch", "workloads.kueue.x-k8s.io", "newer", "-n", ns, "--type=merge", "-p",
                json.dumps({"spec": {"priority": 5}}))
    time.sleep(1)  # margin only: Kueue's one Workload watch delivers the update before the Finished below
    finish(q, "running")
    q.wait(lambda: q.admitted("newer"), "the Workload whose priority was raised to be Admitted first", "newer")
    assert not q.admitted("older"), q.get("older")


def test_deactivating_an_admitted_workload_hands_its_quota_on_at_once(queue: Queue) -> None:
    """Unlike a preemption, `active: false` frees the quota in Kueue's cache at once (its Workload update
    handler drops an inactive Workload, pkg/controller/core/workload_controller.go), while the Workload
    still shows QuotaReserved until its owner releases it. So for a stop (spec.suspend) lakejob deletes
    the pods first and deactivates after (docs/queues.md), or the next job starts beside them."""
    q, kubectl, ns = queue, queue.kubectl, queue.namespace
    kubectl.apply(workload("stopped", q.name, executors=2), ns)  # 3 CUs of 4
    q.wait(lambda: q.admitted("stopped"), "the Workload to be Admitted", "stopped")
    kubectl.apply(workload("waiting", q.name, executors=1), ns)  # 2 CUs: waits
    q.wait(lambda: q.pending("waiting"), "the second Workload to wait for quota", "waiting")
    kubectl.run("patch", "workloads.kueue.x-k8s.io", "stopped", "-n", ns, "--type=merge", "-p",
                json.dumps({"spec": {"active": False}}))
    q.wait(lambda: q.admitted("waiting"), "the waiting Workload to be Admitted once the other was deactivated",
           "waiting")
    assert q.condition("stopped", "Evicted")["reason"] == "Deactivated", q.get("stopped")
    assert q.condition("stopped", "QuotaReserved")["status"] == "True", q.get("stopped")
    release(q, "stopped")
    q.wait(lambda: q.condition("stopped", "QuotaReserved").get("status") == "False",
           "the deactivated Workload to be released", "stopped")
    assert q.admitted("waiting")
