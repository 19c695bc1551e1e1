"""Kueue queueing of SparkSessions (issue 16, docs/queues.md, docs/sparksession.md "Queues"): the
session's Workload, and its decide through a queue — waiting in `not_started` without a driver,
ConfigMap or Service, admitted as a whole, preempted (driver stopped, then released, waiting again;
readmitted, a new driver that starts empty; not counted as a recovery) and Finished when it ends.
The same against a real Kueue: tests/e2e/test_kueue_sparksession.py."""
from __future__ import annotations

from typing import Any

import pytest

from lakejob.controllers.admission import Route, WorkloadObs
from lakejob.controllers.sparkbatch_decide import DriverObs, Meta
from lakejob.controllers.sparksession import SparkSessionReconciler
from lakejob.controllers.sparksession_decide import Action, Decision, Observed, RestObs, decide, rest_activity
from lakejob.models.spark import ExecutorCounts, resolve_sizing
from lakejob.models.sparksession import SparkSessionSpec, SparkSessionStatus
from lakejob.render import spark as render_spark
from lakejob.render.common import Owner
from lakejob.render.spark import app_id
from lakejob.render.workload import workload_name
from lakejob.settings import Settings

UID = "7d1e0b7a-3d2f-4e8b-a1c9-0f2d3e4a5b6c"
T0 = 1_700_000_000_000
META = Meta(name="nb", namespace="team-a", uid=UID, generation=1, created_ms=T0)
SETTINGS = Settings()
SPEC = SparkSessionSpec.model_validate({"kind": "spark", "cluster_name": "dli_queue", "sc_type": "A",
                                        "auto_recovery": True, "max_retry_times": 1})
QUEUED = Route(local_queue="dli-queue")
WL = "nb-sparksession"
ADMITTED = WorkloadObs(WL, reserved=True, admitted=True, clusterQueue="cq")
IDLE = [{"jobId": 0, "status": "SUCCEEDED", "submissionTime": "2023-11-14T22:13:20.000GMT",
         "completionTime": "2023-11-14T22:13:21.000GMT"}]


def obs(now: int = T0, route: Route = Route(), workload: WorkloadObs | None = None, driver: DriverObs | None = None,
        executors: ExecutorCounts | None = None, payload: Any = None, attempt: int = 1) -> Observed:
    rest = None if payload is None else RestObs(app=app_id(UID, attempt), at_ms=now, activity=rest_activity(payload))
    return Observed(now_ms=now, driver=driver, executors=executors or ExecutorCounts(), rest=rest,
                    driver_ready=driver is not None and driver.phase == "Running", route=route, workload=workload)


def step(status: SparkSessionStatus, observed: Observed, spec: SparkSessionSpec = SPEC) -> Decision:
    return decide(spec, None, META, status, observed, SETTINGS)


def drv(phase: str, attempt: int = 1, **kw: Any) -> DriverObs:
    return DriverObs(name=f"nb-session-{attempt}", phase=phase, created_ms=T0, **kw)


def cond(status: SparkSessionStatus, kind: str) -> tuple[str, str, str]:
    (c,) = [c for c in status.conditions or [] if c.type == kind]
    return c.status, c.reason, c.message


def verbs(actions: list[Action]) -> list[str]:
    return [a.verb for a in actions]


def finished(actions: list[Action]) -> list[str]:
    return [a.reason for a in actions if a.verb == "finish_workload"]


# ----------------------------------------------------------------------------- the Workload

async def test_a_sessions_workload_is_its_driver_and_its_executors_as_the_pods_will_be() -> None:
    owner = Owner("lakejob.io/v1alpha1", "SparkSession", "nb", "team-a", UID)
    reconciler = SparkSessionReconciler(SETTINGS, None, lambda: T0, None, None)
    wl = await reconciler.render_workload(SPEC, owner, "dli-queue")  # no driver PriorityClass: no API asked
    assert wl["metadata"]["name"] == workload_name("SparkSession", "nb") == WL
    assert wl["metadata"]["ownerReferences"][0]["uid"] == UID
    assert wl["metadata"]["labels"]["lakejob.io/kind"] == "SparkSession"
    assert wl["spec"]["queueName"] == "dli-queue" and wl["spec"]["priority"] == 0
    (d, e) = wl["spec"]["podSets"]
    sizing = resolve_sizing(SPEC)
    assert (d["name"], d["count"], e["name"], e["count"]) == ("driver", 1, "executor", sizing.num_executors)
    # The session's own driver (its Connect server), with the requests the scheduler will see.
    driver = reconciler.render_driver(SPEC, owner, 1)
    assert d["template"]["spec"]["containers"][0]["resources"] == driver["spec"]["containers"][0]["resources"]
    executor = render_spark.executor_pod(SPEC, owner, sizing, SETTINGS)
    assert e["template"]["spec"]["containers"][0]["resources"] == executor["spec"]["containers"][0]["resources"]


# ----------------------------------------------------------------------------- decide through a queue

def queued() -> SparkSessionStatus:
    d = step(SparkSessionStatus(), obs(route=QUEUED))
    assert verbs(d.actions) == ["ensure_workload"]  # no driver, ConfigMap or Service: nothing half-starts
    s = d.status
    assert (s.state, s.reason) == ("not_started", "Queued") and s.driverPod is None and s.connectUrl is None
    assert s.workload is not None and s.workload.name == WL and s.workload.localQueue == "dli-queue"
    assert cond(s, "Admitted")[:2] == ("False", "Pending") and cond(s, "Ready")[0] == "False"
    assert ("Normal", "Queued") in [(t, r) for t, r, _ in d.events]
    return s


def admitted(status: SparkSessionStatus, attempt: int = 1) -> SparkSessionStatus:
    d = step(status, obs(T0 + 1000, workload=ADMITTED))
    assert d.actions == [Action("ensure_children", attempt), Action("create_driver", attempt, f"nb-session-{attempt}")]
    s = d.status
    assert s.state == "not_started" and s.attempt == attempt and s.appId == app_id(UID, attempt)
    assert s.connectUrl == "sc://nb-session-svc.team-a.svc:15002"
    assert s.workload is not None and s.workload.admitted and s.workload.clusterQueue == "cq"
    assert cond(s, "Admitted")[:2] == ("True", "Admitted")
    assert ("Normal", "Admitted") in [(t, r) for t, r, _ in d.events]
    return s


def idle(status: SparkSessionStatus, attempt: int = 1) -> SparkSessionStatus:
    s = step(status, obs(T0 + 2000, workload=ADMITTED, driver=drv("Running", attempt))).status
    s = step(s, obs(T0 + 3000, workload=ADMITTED, driver=drv("Running", attempt), payload=IDLE, attempt=attempt)).status
    assert s.state == "idle"
    return s


def test_a_session_in_a_queue_waits_in_not_started_with_kueues_reason_and_starts_once_admitted() -> None:
    status = queued()
    pending = WorkloadObs(WL, reason="Pending", message="couldn't assign flavors: insufficient unused quota for cpu")
    d = step(status, obs(T0 + 60_000, workload=pending))
    assert d.actions == [] and d.status.state == "not_started"
    assert "insufficient unused quota for cpu" in cond(d.status, "Admitted")[2]
    # No schedulingTimeout while queued: four hours later (past the default 3h) it still waits.
    d = step(d.status, obs(T0 + 4 * 3600_000, workload=pending))
    assert d.status.state == "not_started" and d.actions == []
    assert idle(admitted(d.status)).connectUrl is not None


def test_a_session_whose_workload_is_not_seen_yet_asks_for_it_again() -> None:
    d = step(queued(), obs(route=QUEUED))
    assert verbs(d.actions) == ["ensure_workload"] and d.status.state == "not_started"


def test_a_preempted_session_stops_its_driver_releases_waits_again_and_restarts_empty() -> None:
    status = idle(admitted(queued()))
    evicted = WorkloadObs(WL, reserved=True, admitted=True, evicted=True, reason="Preempted",
                          message="Preempted to accommodate a workload (UID: x) due to prioritization in the ClusterQueue")
    d = step(status, obs(T0 + 5000, workload=evicted, driver=drv("Running"),
                         executors=ExecutorCounts(running=2)))
    assert d.actions == [Action("delete_driver", pod="nb-session-1")]  # the pods go first, the quota after
    s = d.status
    assert (s.state, s.reason) == ("not_started", "Preempted")
    assert "in-memory state is lost" in (s.message or "") and "in-memory state is lost" in cond(s, "Ready")[2]
    assert s.connectUrl is None and s.idleSince is None  # nothing listens until it is admitted again
    assert s.workload is not None and s.workload.preemptions == 1 and not s.workload.admitted
    assert cond(s, "Admitted")[:2] == ("False", "Preempted")
    assert [(t, r) for t, r, _ in d.events] == [("Normal", "Preempted")]  # not a Warning: not an error
    assert cond(s, "Failed")[0] == "False"
    # The driver terminating, its executors still there: nothing more, the count stays.
    d = step(s, obs(T0 + 6000, workload=evicted, driver=drv("Running", deleting=True),
                    executors=ExecutorCounts(running=2)))
    assert d.actions == [] and d.status.workload is not None and d.status.workload.preemptions == 1
    d = step(d.status, obs(T0 + 6500, workload=evicted, executors=ExecutorCounts(running=1)))
    assert d.actions == []  # an executor still holds what the queue counts
    # All gone: release; the Workload waits in its queue again, and so does the session.
    d = step(d.status, obs(T0 + 7000, workload=evicted))
    assert verbs(d.actions) == ["release_workload"] and d.status.driverPod is None
    d = step(d.status, obs(T0 + 8000, workload=WorkloadObs(WL, reason="Pending", message="waiting")))
    assert d.actions == [] and (d.status.state, d.status.reason) == ("not_started", "Preempted")
    # Readmitted: a new driver (attempt 2, a new application), idle again.
    s = idle(admitted(d.status, attempt=2), attempt=2)
    # A failure now is the first recovery: with max_retry_times 1 it recovers, the preemption not counted.
    d = step(s, obs(T0 + 9000, workload=ADMITTED, driver=drv("Failed", 2, exit_code=1)))
    assert d.status.state == "recovering" and "new driver 1 of 1" in (d.status.message or "")


def test_a_session_preempted_while_recovering_releases_at_once() -> None:
    """A failed driver holds no quota: the release does not wait for the pod (kept for its log)."""
    s = admitted(queued())
    s = step(s, obs(T0 + 2000, workload=ADMITTED, driver=drv("Failed", exit_code=1))).status
    assert s.state == "recovering"
    evicted = WorkloadObs(WL, reserved=True, admitted=True, evicted=True, reason="Preempted", message="m")
    d = step(s, obs(T0 + 3000, workload=evicted, driver=drv("Failed", exit_code=1)))
    assert verbs(d.actions) == ["release_workload"] and (d.status.state, d.status.reason) == ("not_started", "Preempted")
    assert d.status.nextAttemptTime is None  # no recovery timer: it waits for Kueue


@pytest.mark.parametrize(("how", "final", "reason"), [
    ("suspend", "success", "Succeeded"), ("idle timeout", "dead", "Succeeded"), ("driver failed", "error", "Failed")])
def test_a_sessions_end_finishes_its_workload_once(how: str, final: str, reason: str) -> None:
    spec = SPEC.model_copy(update={"heartbeatTimeoutInSecond": 1, "auto_recovery": False})
    s = idle(admitted(queued()))
    if how == "suspend":
        d = step(s, obs(T0 + 4000, workload=ADMITTED, driver=drv("Running")),
                 spec.model_copy(update={"suspend": True}))
        assert d.status.state == "shutting_down" and finished(d.actions) == []  # the driver first
        d = step(d.status, obs(T0 + 5000, workload=ADMITTED), spec.model_copy(update={"suspend": True}))
    elif how == "idle timeout":
        d = step(s, obs(T0 + 60_000, workload=ADMITTED, driver=drv("Running"), payload=IDLE), spec)
        assert d.status.state == "shutting_down" and finished(d.actions) == []
        d = step(d.status, obs(T0 + 61_000, workload=ADMITTED), spec)
    else:
        d = step(s, obs(T0 + 4000, workload=ADMITTED, driver=drv("Failed", exit_code=1)), spec)
    assert d.status.state == final and finished(d.actions) == [reason]
    assert d.status.workload is not None and not d.status.workload.admitted
    d = step(d.status, obs(T0 + 70_000, workload=ADMITTED), spec)
    assert verbs(d.actions) == ["finish_workload"]  # not seen Finished yet: asked again (idempotent)
    d = step(d.status, obs(T0 + 71_000, workload=WorkloadObs(WL, reserved=True, admitted=True, finished=True)), spec)
    assert d.actions == []


def test_a_session_stopped_while_waiting_ends_and_its_workload_is_finished() -> None:
    stopped = SPEC.model_copy(update={"suspend": True})
    d = step(queued(), obs(workload=WorkloadObs(WL, reason="Pending")), stopped)
    assert d.status.state == "success" and verbs(d.actions) == ["finish_workload"]  # nothing else was made


@pytest.mark.parametrize("reason", ["KueueNotInstalled", "InvalidQueueName"])
def test_a_session_that_cannot_be_queued_waits_with_the_reason_and_looks_again(reason: str) -> None:
    d = step(SparkSessionStatus(), obs(route=Route(wait=reason, message="why")))
    assert d.actions == [] and d.status.state == "not_started" and d.status.workload is None
    assert cond(d.status, "Admitted") == ("False", reason, "why") and d.requeue_after_s == 30.0
    d = step(d.status, obs(route=QUEUED))  # Kueue came: the next pass queues it
    assert verbs(d.actions) == ["ensure_workload"]


def test_a_session_in_no_queue_or_without_kueue_starts_at_once_and_has_no_admitted_condition() -> None:
    d = step(SparkSessionStatus(), obs())
    assert verbs(d.actions) == ["ensure_children", "create_driver"] and d.status.workload is None
    assert "Admitted" not in {c.type for c in d.status.conditions or []}
    # …and one whose Workload went with Kueue while it waited starts unqueued (auto).
    d = step(queued(), obs(T0 + 1000))
    assert verbs(d.actions) == ["ensure_children", "create_driver"] and "(not queued)" in (d.status.message or "")
