"""FlinkJarJob through Kueue (issue 16, docs/queues.md): the run's Workload (JobManager ×1 +
TaskManagers × replicas, the pods' own requests), and decide through a queue — waiting in
job_submitting without a JobManager, admitted as a whole, preempted (everything of the run deleted,
then released, waiting again; resumed from the newest checkpoint, not counted as a restart), Finished
when the job ends, and a new run with a new Workload. SparkBatch's: tests/unit/test_queueing.py."""
from __future__ import annotations

from typing import Any

from lakejob.controllers.admission import Route, WorkloadObs, summarize_workload
from lakejob.controllers.flinkjarjob_decide import Decision, Meta, Observed, PodObs, RestObs, decide
from lakejob.models.flinkjarjob import FlinkJarJobSpec, FlinkJarJobStatus, TaskManagerCounts
from lakejob.render import flink as render
from lakejob.render.common import Owner
from lakejob.render.workload import RUN_LABEL, build_workload, workload_name
from lakejob.settings import Settings

UID = "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
T0 = 1_700_000_000_000
META = Meta(name="wc", namespace="ns", uid=UID, generation=1, created_ms=T0)
SETTINGS = Settings(flink_restart_delay_s=10)
QUEUED = Route(local_queue="dli-queue")
WL = "wc-flinkjarjob"


def spec(**fields: Any) -> FlinkJarJobSpec:
    return FlinkJarJobSpec.model_validate({"name": "wc", "main_class": "Main", "entrypoint": "local:///opt/flink/usrlib/job.jar",
                                           "queue_name": "dli_queue", "cu_number": 3, **fields})


SPEC = spec(restart_when_exception=True, resume_checkpoint=True, resume_max_num=1)


def obs(now: int = T0, route: Route = Route(), workload: WorkloadObs | None = None, jobmanager: PodObs | None = None,
        rest: RestObs | None = None, pods_left: int = 0) -> Observed:
    return Observed(now_ms=now, jobmanager=jobmanager, taskmanagers=TaskManagerCounts(), rest=rest,
                    pods_left=pods_left, route=route, workload=workload)


def jm(phase: str, attempt: int = 1, **kw: Any) -> PodObs:
    return PodObs(name=f"wc-jm-{attempt}", phase=phase, created_ms=T0, **kw)


def wl(run: int = 1, **kw: Any) -> WorkloadObs:
    return WorkloadObs(WL, run=str(run), **kw)


def holding(run: int = 1) -> WorkloadObs:
    return wl(run, reserved=True, admitted=True, clusterQueue="cq")


def step(status: FlinkJarJobStatus, observed: Observed, sp: FlinkJarJobSpec = SPEC, meta: Meta = META) -> Decision:
    return decide(sp, None, meta, status, observed, SETTINGS)


def cond(status: FlinkJarJobStatus, kind: str) -> tuple[str, str, str]:
    (c,) = [c for c in status.conditions or [] if c.type == kind]
    return c.status, c.reason, c.message


def verbs(d: Decision) -> list[str]:
    return [a.verb for a in d.actions]


# ----------------------------------------------------------------------------- the Workload

def test_a_flinkjarjobs_workload_is_its_jobmanager_and_its_taskmanagers_as_the_pods_will_be() -> None:
    owner = Owner("lakejob.io/v1alpha1", "FlinkJarJob", "wc", "ns", UID)
    sz = render.resolve_sizing(SPEC, SETTINGS)
    w = build_workload(owner, "dli-queue", render.workload_pod_sets(SPEC, owner, sz, SETTINGS), 100,
                       queue_label=SPEC.queue_name, run=1)
    assert w["metadata"]["name"] == workload_name("FlinkJarJob", "wc") == WL
    assert w["metadata"]["ownerReferences"][0]["uid"] == UID
    assert w["metadata"]["labels"][RUN_LABEL] == "1" and w["metadata"]["labels"]["lakejob.io/kind"] == "FlinkJarJob"
    assert (w["spec"]["queueName"], w["spec"]["priority"], w["spec"]["active"]) == ("dli-queue", 100, True)
    (j, t) = w["spec"]["podSets"]
    assert (j["name"], j["count"], t["name"], t["count"]) == ("jobmanager", 1, "taskmanager", 2)  # cu_number 3
    pod = render.jobmanager_pod(SPEC, owner, sz, 1, None, SETTINGS)
    deployment = render.taskmanager_replicaset(SPEC, owner, sz, SETTINGS)
    assert j["template"]["spec"]["containers"][0]["resources"] == pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "4096Mi"}, "limits": {"memory": "4096Mi"}}
    assert t["template"]["spec"] == deployment["spec"]["template"]["spec"]
    assert "name" not in j["template"].get("metadata", {})


def test_the_index_keeps_the_run_a_workload_is_for() -> None:
    body = {"metadata": {"name": WL, "labels": {RUN_LABEL: "2"}}, "spec": {"active": True}}
    assert WorkloadObs.of(summarize_workload(body)) == WorkloadObs(WL, run="2")
    assert summarize_workload({"metadata": {"name": "x-sparkbatch"}})["run"] is None  # a kind without runs


# ----------------------------------------------------------------------------- decide through a queue

def queued(sp: FlinkJarJobSpec = SPEC) -> FlinkJarJobStatus:
    d = step(FlinkJarJobStatus(), obs(route=QUEUED), sp)
    assert verbs(d) == ["ensure_workload"]  # no JobManager, TaskManagers, ConfigMap or Service
    s = d.status
    assert (s.status_name, s.state, s.jobManagerPod, s.attempt) == ("job_submitting", "Pending", None, None)
    assert s.workload is not None and (s.workload.name, s.workload.localQueue) == (WL, "dli-queue")
    assert cond(s, "Admitted")[:2] == ("False", "Pending")
    assert ("Normal", "Queued") in [(t, r) for t, r, _ in d.events]
    return s


def admitted(status: FlinkJarJobStatus, now: int = T0 + 1000, run: int = 1) -> Decision:
    d = step(status, obs(now, workload=holding(run)))
    assert verbs(d)[:2] == ["ensure_children", "create_jobmanager"]
    s = d.status
    assert s.workload is not None and s.workload.admitted and s.workload.clusterQueue == "cq"
    assert cond(s, "Admitted")[:2] == ("True", "Admitted")
    assert (s.status_name, s.state, s.reason) == ("job_submitting", "Pending", "JobManagerCreated")
    assert ("Normal", "Admitted") in [(t, r) for t, r, _ in d.events]
    return d


def running(status: FlinkJarJobStatus, attempt: int = 1, now: int = T0 + 2000, **rest: Any) -> FlinkJarJobStatus:
    d = step(status, obs(now, workload=holding(), jobmanager=jm("Running", attempt), rest=RestObs("RUNNING", **rest)))
    assert d.status.status_name == "job_running", d.status
    return d.status


def test_a_job_in_a_queue_waits_without_a_jobmanager_with_kueues_reason_and_starts_once_admitted() -> None:
    status = queued()
    pending = wl(reason="Pending", message="couldn't assign flavors to pod set taskmanager: insufficient unused "
                                           "quota for cpu in flavor default, 1 more needed")
    d = step(status, obs(T0 + 60_000, workload=pending))
    assert d.actions == [] and d.status.status_name == "job_submitting" and d.status.jobManagerPod is None
    assert "insufficient unused quota for cpu" in cond(d.status, "Admitted")[2]
    assert cond(d.status, "Failed")[0] == "False"
    # No scheduling timeout while queued: hours later it still waits.
    d = step(d.status, obs(T0 + 4 * 3600_000, workload=pending))
    assert d.actions == [] and d.status.status_name == "job_submitting"
    d = admitted(d.status, T0 + 4 * 3600_000 + 1)
    assert (d.status.attempt, d.status.jobManagerPod, d.status.savepointPath) == (1, "wc-jm-1", None)
    # Once admitted it runs as any job does, its Workload held.
    assert running(d.status).workload == d.status.workload


def test_a_workload_not_seen_yet_or_of_a_previous_run_is_asked_for_again_and_nothing_starts() -> None:
    status = queued()
    assert verbs(step(status, obs(route=QUEUED))) == ["ensure_workload"]
    d = step(status, obs(route=QUEUED, workload=wl(run=7, reserved=True, admitted=True, clusterQueue="cq")))
    assert verbs(d) == ["ensure_workload"] and d.status.jobManagerPod is None


def test_a_preempted_job_deletes_its_run_then_releases_its_quota_waits_and_resumes_from_its_checkpoint() -> None:
    status = running(admitted(queued()).status, last_checkpoint="s3://b/chk-4")
    evicted = wl(reserved=True, admitted=True, evicted=True, reason="Preempted",
                 message="Preempted to accommodate a workload (UID: x) due to prioritization in the ClusterQueue")
    d = step(status, obs(T0 + 5000, workload=evicted, jobmanager=jm("Running"), pods_left=3))
    assert set(verbs(d)) == {"delete_jobmanager", "cleanup"}  # the pods go first, the quota after
    s = d.status
    assert (s.status_name, s.state, s.reason) == ("job_submitting", "Pending", "Preempted")
    assert s.workload is not None and s.workload.preemptions == 1 and not s.workload.admitted
    assert cond(s, "Admitted")[:2] == ("False", "Preempted") and "prioritization" in cond(s, "Admitted")[2]
    assert [(t, r) for t, r, _ in d.events] == [("Normal", "Preempted")]  # not a Warning: not a failure
    assert cond(s, "Failed")[0] == "False" and cond(s, "Ready")[0] == "False"
    # Pods still terminating: deleted again (idempotent), no release yet, counted once.
    d = step(s, obs(T0 + 6000, workload=evicted, jobmanager=jm("Running", deleting=True), pods_left=2))
    assert "release_workload" not in verbs(d) and "delete_jobmanager" not in verbs(d)
    assert d.status.workload is not None and d.status.workload.preemptions == 1 and d.events == []
    # Gone: released; the Workload waits in its queue again, and so does the job.
    d = step(d.status, obs(T0 + 7000, workload=evicted))
    assert verbs(d) == ["release_workload"] and d.status.jobManagerPod is None
    requeued = wl(reason="Pending", message="insufficient unused quota")
    d = step(d.status, obs(T0 + 8000, workload=requeued))
    assert d.actions == [] and (d.status.status_name, d.status.state) == ("job_submitting", "Pending")
    # Admitted again: attempt 2, from the newest checkpoint, and no restart (not counted against resume_max_num).
    d = admitted(d.status, T0 + 9000)
    s = d.status
    assert (s.attempt, s.jobManagerPod, s.savepointPath) == (2, "wc-jm-2", "s3://b/chk-4")
    assert d.actions[1].savepoint == "s3://b/chk-4" and "resuming from checkpoint s3://b/chk-4" in (s.status_desc or "")
    assert (s.restarts, s.restart_times) == (0, None)
    assert running(s, attempt=2, now=T0 + 10_000).workload is not None


def test_a_failure_restarts_within_its_admission_and_an_end_finishes_the_workload_once() -> None:
    sp = spec(restart_when_exception=True)
    status = running(admitted(queued(sp)).status)
    d = step(status, obs(T0 + 3000, workload=holding(), jobmanager=jm("Failed", exit_code=1)), sp)
    assert d.status.status_name == "job_running_exception" and "finish_workload" not in verbs(d)
    d = step(d.status, obs(T0 + 20_000, workload=holding(), jobmanager=jm("Failed", exit_code=1)), sp)
    assert "create_jobmanager" in verbs(d) and d.status.attempt == 2  # no new admission for a restart
    d = step(d.status, obs(T0 + 21_000, workload=holding(), jobmanager=jm("Succeeded", 2)), sp)
    assert d.status.state == "Succeeded"
    assert [(a.verb, a.reason) for a in d.actions if a.verb == "finish_workload"] == [("finish_workload", "Succeeded")]
    again = step(d.status, obs(T0 + 22_000, workload=holding(), jobmanager=jm("Succeeded", 2)), sp)
    assert verbs(again) == ["finish_workload"]  # not seen Finished yet: asked again (idempotent)
    done = step(d.status, obs(T0 + 23_000, workload=wl(reserved=True, admitted=True, finished=True)), sp)
    assert done.actions == []


def test_a_job_that_fails_for_good_finishes_its_workload_as_failed() -> None:
    status = running(admitted(queued(spec())).status)
    d = step(status, obs(T0 + 3000, workload=holding(), jobmanager=jm("Failed", exit_code=1443)), spec())
    assert d.status.state == "Failed"
    assert [a.reason for a in d.actions if a.verb == "finish_workload"] == ["Failed"]


def test_a_queued_job_stopped_while_waiting_is_cancelled_and_its_workload_finished_then_runs_again_queued() -> None:
    status = queued()
    stopped = SPEC.model_copy(update={"suspend": True})
    meta2 = Meta(name="wc", namespace="ns", uid=UID, generation=2, created_ms=T0)
    d = step(status, obs(workload=wl(reason="Pending")), stopped, meta2)
    assert d.status.status_name == "job_cancel_success" and d.status.state == "Cancelled"
    assert [a.reason for a in d.actions if a.verb == "finish_workload"] == ["Failed"]
    assert "create_jobmanager" not in verbs(d)
    # DLI's run (suspend back to false): a new run, a new Workload for it; the old one, Finished, is
    # not finished again, and nothing starts until the new run's is admitted.
    meta3 = Meta(name="wc", namespace="ns", uid=UID, generation=3, created_ms=T0)
    old = wl(1, finished=True)
    d = step(d.status, obs(T0 + 1000, route=QUEUED, workload=old), SPEC, meta3)
    s = d.status
    assert verbs(d) == ["ensure_workload"] and (s.status_name, s.runGeneration, s.jobManagerPod) == (
        "job_submitting", 3, None)
    assert s.workload is not None and s.workload.name == WL and not s.workload.admitted
    d = step(s, obs(T0 + 2000, route=QUEUED, workload=old), SPEC, meta3)
    assert verbs(d) == ["ensure_workload"]  # the old run's, until the new one is seen
    d = decide(SPEC, None, meta3, d.status, obs(T0 + 3000, workload=holding(3)), SETTINGS)
    assert verbs(d)[:2] == ["ensure_children", "create_jobmanager"] and d.status.attempt == 1


def test_a_job_that_cannot_be_queued_waits_and_starts_unqueued_once_queueing_no_longer_applies() -> None:
    d = step(FlinkJarJobStatus(), obs(route=Route(wait="KueueNotInstalled", message="why")))
    assert d.actions == [] and d.status.status_name == "job_submitting" and d.status.workload is None
    assert cond(d.status, "Admitted") == ("False", "KueueNotInstalled", "why") and d.requeue_after_s == 30.0
    d = step(d.status, obs(T0 + 30_000))  # LAKEJOB_QUEUEING changed: no queue any more
    assert verbs(d) == ["ensure_children", "create_jobmanager"] and d.status.jobManagerPod == "wc-jm-1"


def test_a_job_in_no_queue_or_without_kueue_starts_at_once_and_has_no_admitted_condition() -> None:
    d = step(FlinkJarJobStatus(), obs())
    assert verbs(d) == ["ensure_children", "create_jobmanager"] and d.status.workload is None
    assert d.status.status_name == "job_init"
    assert "Admitted" not in {c.type for c in d.status.conditions or []}


def test_a_job_waiting_for_a_workload_kueue_can_no_longer_make_runs_unqueued_or_waits_for_kueue() -> None:
    status = queued()  # its Workload asked for, then Kueue uninstalled: no Workload will come
    d = step(status, obs(T0 + 1000, route=Route(wait="KueueNotInstalled", message="why")))  # required
    assert d.actions == [] and d.status.workload is None and cond(d.status, "Admitted")[1] == "KueueNotInstalled"
    d = step(status, obs(T0 + 1000))  # auto: runs as without Kueue, with no Admitted condition
    assert verbs(d) == ["ensure_children", "create_jobmanager"] and d.status.workload is None
    assert "Admitted" not in {c.type for c in d.status.conditions or []}
