"""Kueue queueing (issue 16, docs/queues.md): the LocalQueue rule, the Workload lakejob writes for a
SparkBatch, what the Workload index keeps, and SparkBatch's decide through a queue — waiting without
a driver, admitted as a whole, preempted (stopped, then released, not counted as a retry) and
finished. The same behaviour against a real Kueue: tests/e2e/test_kueue.py."""
from __future__ import annotations

from typing import Any

import pytest

from lakejob.controllers.admission import Route, WorkloadObs, summarize_workload
from lakejob.controllers.sparkbatch_decide import Action, DriverObs, Meta, Observed, decide
from lakejob.models.spark import resolve_sizing
from lakejob.models.sparkbatch import ExecutorCounts, SparkBatchSpec, SparkBatchStatus
from lakejob.render import spark as render
from lakejob.render.common import Owner
from lakejob.render.workload import PodSet, build_workload, invalid_local_queue, local_queue, workload_name
from lakejob.settings import Settings

UID = "5e1c0b7a-3d2f-4e8b-a1c9-0f2d3e4a5b6c"
T0 = 1_700_000_000_000
META = Meta(name="pi", namespace="team-a", uid=UID, generation=1, created_ms=T0)
SETTINGS = Settings()
SPEC = SparkBatchSpec.model_validate({"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                                      "className": "org.apache.spark.examples.SparkPi", "queue": "dli_queue",
                                      "auto_recovery": True, "max_retry_times": 1})
QUEUED = Route(local_queue="dli-queue")
WL = "pi-sparkbatch"


def obs(now: int = T0, route: Route = Route(), workload: WorkloadObs | None = None,
        driver: DriverObs | None = None, executors: ExecutorCounts | None = None) -> Observed:
    return Observed(now_ms=now, driver=driver, executors=executors or ExecutorCounts(), route=route,
                    workload=workload)


def cond(status: SparkBatchStatus, kind: str) -> tuple[str, str, str]:
    (c,) = [c for c in status.conditions or [] if c.type == kind]
    return c.status, c.reason, c.message


def verbs(actions: list[Action]) -> list[str]:
    return [a.verb for a in actions]


# ----------------------------------------------------------------------------- the LocalQueue rule

@pytest.mark.parametrize(("queue", "expected"), [
    ("dli_queue_a", "dli-queue-a"), (" test", "test"), ("Queue1", "queue1"), ("default", "default")])
def test_a_queue_name_goes_to_the_local_queue_of_the_documented_rule(queue: str, expected: str) -> None:
    assert local_queue(queue, {}) == expected
    assert invalid_local_queue(expected) is None


def test_the_operators_map_overrides_the_rule() -> None:
    assert local_queue("dli_a", {"dli_a": "shared"}) == "shared"
    assert local_queue(" dli_a ", {"dli_a": "shared"}) == "shared"  # by the trimmed name too


def test_a_name_no_local_queue_can_have_is_named_in_the_reason() -> None:
    assert "not a valid LocalQueue name" in (invalid_local_queue("queue.with.dots") or "")


# ----------------------------------------------------------------------------- the Workload

def test_a_sparkbatchs_workload_is_its_driver_and_its_executors_as_the_pods_will_be() -> None:
    owner = Owner("lakejob.io/v1alpha1", "SparkBatch", "pi", "team-a", UID)
    sizing = resolve_sizing(SPEC)
    driver = render.driver_pod(SPEC, owner, sizing, 1, SETTINGS, "spark")
    executor = render.executor_pod(SPEC, owner, sizing, SETTINGS)
    wl = build_workload(owner, "dli-queue", [PodSet("driver", 1, driver), PodSet("executor", sizing.num_executors,
                                                                                   executor)], queue_label="dli_queue")
    assert wl["metadata"]["name"] == workload_name("SparkBatch", "pi") == WL
    assert wl["metadata"]["ownerReferences"][0]["uid"] == UID  # goes with its CR
    assert wl["metadata"]["labels"]["lakejob.io/kind"] == "SparkBatch" and wl["metadata"]["labels"]["lakejob.io/name"] == "pi"
    assert wl["spec"]["queueName"] == "dli-queue" and wl["spec"]["active"] is True
    (d, e) = wl["spec"]["podSets"]
    assert (d["name"], d["count"], e["name"], e["count"]) == ("driver", 1, "executor", 6)  # sc_type A: 6 executors
    requests = e["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "1", "memory": f"{sizing.executor_pod_memory_mib}Mi"}
    assert d["template"]["spec"]["containers"][0]["resources"] == driver["spec"]["containers"][0]["resources"]
    assert "name" not in d["template"].get("metadata", {})  # a template holds no name or owner


def test_the_index_keeps_what_decide_reads_of_a_workload() -> None:
    body: dict[str, Any] = {"metadata": {"name": WL}, "spec": {"active": True}, "status": {
        "admission": {"clusterQueue": "cq"},
        "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "ok"},
                       {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "ok"},
                       {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "by a higher one"}]}}
    wl = WorkloadObs.of(summarize_workload(body))
    assert wl is not None and wl.must_release and not wl.runs
    assert (wl.reason, wl.message, wl.clusterQueue) == ("Preempted", "by a higher one", "cq")


# ----------------------------------------------------------------------------- decide through a queue

def queued() -> SparkBatchStatus:
    d = decide(SPEC, None, META, SparkBatchStatus(), obs(route=QUEUED), SETTINGS)
    assert verbs(d.actions) == ["ensure_workload"]  # no driver, no ConfigMap: nothing half-starts
    assert d.status.state == "starting" and d.status.driverPod is None
    assert d.status.workload is not None and d.status.workload.name == WL
    assert cond(d.status, "Admitted")[:2] == ("False", "Pending")
    assert ("Normal", "Queued") in [(t, r) for t, r, _ in d.events]
    return d.status


def admitted(status: SparkBatchStatus) -> SparkBatchStatus:
    d = decide(SPEC, None, META, status, obs(workload=WorkloadObs(WL, reserved=True, admitted=True,
                                                                  clusterQueue="cq")), SETTINGS)
    assert verbs(d.actions) == ["ensure_children", "create_driver"]
    assert d.status.workload is not None and d.status.workload.admitted and d.status.workload.clusterQueue == "cq"
    assert cond(d.status, "Admitted")[:2] == ("True", "Admitted")
    return d.status


def test_a_job_in_a_queue_waits_without_a_driver_with_kueues_reason_and_starts_once_admitted() -> None:
    status = queued()
    pending = WorkloadObs(WL, reason="Pending", message="couldn't assign flavors: insufficient unused quota for cpu")
    d = decide(SPEC, None, META, status, obs(T0 + 60_000, workload=pending), SETTINGS)
    assert d.actions == [] and d.status.state == "starting"
    assert "insufficient unused quota for cpu" in cond(d.status, "Admitted")[2]
    # No schedulingTimeout while queued: an hour later it still waits.
    d = decide(SPEC, None, META, d.status, obs(T0 + 4 * 3600_000, workload=pending), SETTINGS)
    assert d.status.state == "starting" and d.actions == []
    status = admitted(d.status)
    assert status.attempt == 1 and status.driverPod == "pi-driver-1"


def test_a_job_whose_workload_is_not_seen_yet_asks_for_it_again_and_no_more() -> None:
    d = decide(SPEC, None, META, queued(), obs(route=QUEUED), SETTINGS)
    assert verbs(d.actions) == ["ensure_workload"] and d.status.state == "starting"


def test_a_preempted_job_stops_its_driver_then_releases_its_quota_and_waits_again_without_a_retry() -> None:
    status = admitted(queued())
    evicted = WorkloadObs(WL, reserved=True, admitted=True, evicted=True, reason="Preempted",
                          message="Preempted to accommodate a workload (UID: x) due to prioritization in the ClusterQueue")
    running = DriverObs(name="pi-driver-1", phase="Running", created_ms=T0)
    d = decide(SPEC, None, META, status, obs(T0 + 5000, workload=evicted, driver=running), SETTINGS)
    assert verbs(d.actions) == ["delete_driver"]  # the pods go first, the quota after
    assert (d.status.state, d.status.reason) == ("starting", "Preempted")
    assert d.status.workload is not None and d.status.workload.preemptions == 1
    assert cond(d.status, "Admitted")[:2] == ("False", "Preempted")
    assert [(t, r) for t, r, _ in d.events] == [("Normal", "Preempted")]  # not a Warning: not a failure
    assert cond(d.status, "Failed")[0] == "False"
    # The driver still terminating: nothing more, the count stays.
    deleting = DriverObs(name="pi-driver-1", phase="Running", created_ms=T0, deleting=True)
    d = decide(SPEC, None, META, d.status, obs(T0 + 6000, workload=evicted, driver=deleting), SETTINGS)
    assert d.actions == [] and d.status.workload is not None and d.status.workload.preemptions == 1
    # Gone: release; the Workload waits in its queue again.
    d = decide(SPEC, None, META, d.status, obs(T0 + 7000, workload=evicted), SETTINGS)
    assert verbs(d.actions) == ["release_workload"] and d.status.driverPod is None
    requeued = WorkloadObs(WL, reason="Pending", message="waiting")
    d = decide(SPEC, None, META, d.status, obs(T0 + 8000, workload=requeued), SETTINGS)
    assert d.actions == [] and d.status.state == "starting"
    status = admitted(d.status)
    assert status.attempt == 2 and status.driverPod == "pi-driver-2"
    # A failure now is the first try's: with max_retry_times 1 it is retried, the preemption not counted.
    failed = DriverObs(name="pi-driver-2", phase="Failed", created_ms=T0, exit_code=1)
    holding = WorkloadObs(WL, reserved=True, admitted=True, clusterQueue="cq")
    d = decide(SPEC, None, META, status, obs(T0 + 9000, workload=holding, driver=failed), SETTINGS)
    assert d.status.state == "recovering" and "retry 1 of 1" in (d.status.message or "")


def test_a_job_that_ends_finishes_its_workload_once() -> None:
    status = admitted(queued())
    holding = WorkloadObs(WL, reserved=True, admitted=True, clusterQueue="cq")
    done = DriverObs(name="pi-driver-1", phase="Succeeded", created_ms=T0)
    d = decide(SPEC, None, META, status, obs(T0 + 5000, workload=holding, driver=done), SETTINGS)
    assert d.status.state == "success"
    assert [(a.verb, a.reason) for a in d.actions if a.verb == "finish_workload"] == [("finish_workload", "Succeeded")]
    d = decide(SPEC, None, META, d.status, obs(T0 + 6000, workload=holding, driver=done), SETTINGS)
    assert verbs(d.actions) == ["finish_workload"]  # not seen Finished yet: asked again (idempotent)
    finished = WorkloadObs(WL, reserved=True, admitted=True, finished=True)
    d = decide(SPEC, None, META, d.status, obs(T0 + 7000, workload=finished, driver=done), SETTINGS)
    assert d.actions == []


def test_a_queued_job_stopped_while_waiting_is_killed_and_its_workload_finished() -> None:
    status = queued()
    stopped = SPEC.model_copy(update={"suspend": True})
    d = decide(stopped, None, META, status, obs(workload=WorkloadObs(WL, reason="Pending")), SETTINGS)
    assert d.status.state == "killed" and verbs(d.actions) == ["finish_workload"]
    assert d.actions[0].reason == "Failed"


@pytest.mark.parametrize("reason", ["KueueNotInstalled", "InvalidQueueName"])
def test_a_job_that_cannot_be_queued_waits_with_the_reason_and_looks_again(reason: str) -> None:
    d = decide(SPEC, None, META, SparkBatchStatus(), obs(route=Route(wait=reason, message="why")), SETTINGS)
    assert d.actions == [] and d.status.state == "starting" and d.status.workload is None
    assert cond(d.status, "Admitted") == ("False", reason, "why")
    assert d.requeue_after_s == 30.0
    # Kueue came: the next pass queues it.
    d = decide(SPEC, None, META, d.status, obs(route=QUEUED), SETTINGS)
    assert verbs(d.actions) == ["ensure_workload"]


def test_a_job_in_no_queue_or_without_kueue_starts_at_once_and_has_no_admitted_condition() -> None:
    d = decide(SPEC, None, META, SparkBatchStatus(), obs(), SETTINGS)
    assert verbs(d.actions) == ["ensure_children", "create_driver"] and d.status.workload is None
    assert "Admitted" not in {c.type for c in d.status.conditions or []}


def test_a_waiting_job_whose_workload_went_with_kueue_starts_unqueued_under_auto() -> None:
    status = queued()
    # Kueue uninstalled: its Workload is gone with its API and the route says unqueued (auto).
    d = decide(SPEC, None, META, status, obs(T0 + 1000), SETTINGS)
    assert verbs(d.actions) == ["ensure_children", "create_driver"] and d.status.workload is None
    assert "Admitted" not in {c.type for c in d.status.conditions or []}
    assert "(not queued)" in (d.status.message or "")
    # …or waits for Kueue under `required`.
    d = decide(SPEC, None, META, status, obs(T0 + 1000, route=Route(wait="KueueNotInstalled", message="why")),
               SETTINGS)
    assert d.actions == [] and d.status.workload is None and cond(d.status, "Admitted")[1] == "KueueNotInstalled"


def test_a_job_preempted_after_its_driver_ended_releases_at_once_or_succeeds() -> None:
    """An ended driver holds no quota: a preemption seen after a failed driver (a retry's backoff)
    releases at once, without waiting for the pod to go (it stays, for its log); one seen after a
    driver that succeeded is the job's success (bench/queues.py found such jobs holding quota forever)."""
    evicted = WorkloadObs(WL, reserved=True, admitted=True, evicted=True, reason="Preempted", message="m")
    failed = DriverObs(name="pi-driver-1", phase="Failed", created_ms=T0, exit_code=1)
    d = decide(SPEC, None, META, admitted(queued()), obs(T0 + 5000, workload=evicted, driver=failed), SETTINGS)
    assert verbs(d.actions) == ["release_workload"] and d.status.reason == "Preempted"
    done = DriverObs(name="pi-driver-1", phase="Succeeded", created_ms=T0)
    d = decide(SPEC, None, META, admitted(queued()), obs(T0 + 5000, workload=evicted, driver=done), SETTINGS)
    assert d.status.state == "success" and verbs(d.actions) == ["finish_workload"]
