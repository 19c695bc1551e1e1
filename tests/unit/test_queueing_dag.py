"""DagJob command tasks through Kueue (issue 16, docs/queues.md): a task whose ClusterId is a queue gets
one Workload per run (podSet `task` × InstanceCount, the Job's pod template, the DagJob's Priority,
labelled with the DagJob and the task) and no Job until it is admitted; waits with Kueue's reason;
preempted, its Job is suspended, the reservation released once its pods are gone, and it waits again;
its end Finishes the Workload. Unqueued tasks are unchanged (tests/unit/test_dag_decide.py)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from lakejob.controllers.admission import Route, WorkloadObs
from lakejob.controllers.dagjob import DagJobReconciler
from lakejob.controllers.dagjob_decide import Action, JobObs, Observed, decide
from lakejob.models.dagjob import DagJobStatus
from lakejob.render import dag as render
from lakejob.render.common import Owner
from lakejob.render.workload import workload_name
from lakejob.settings import Settings
from tests.unit.test_dag_decide import META, command, spec

SETTINGS = Settings()
QUEUED = Route(local_queue="dli-queue")
SPEC = spec({"a": command(2, ClusterId="dli-queue", resources={"cpu": "3", "memory": "12Gi"}),
             "b": command()}, {"a": ["b"]})


class Q:
    """decide driven as the controller does, with Kueue's Workloads observed by name."""

    def __init__(self) -> None:
        self.status = DagJobStatus()
        self.jobs: dict[str, JobObs] = {}
        self.workloads: dict[str, WorkloadObs] = {}
        self.now = 1_700_000_001_000
        self.spec = SPEC

    def step(self, routes: dict[str, Route] | None = None) -> list[Action]:
        self.now += 1000
        obs = Observed(now_ms=self.now, jobs=dict(self.jobs), routes={"a": QUEUED} if routes is None else routes,
                       workloads=dict(self.workloads))
        d = decide(self.spec, None, META, self.status, obs, SETTINGS)
        self.status = d.status
        for a in d.actions:
            if a.verb == "create_job":
                self.jobs[a.name] = JobObs(name=a.name, completions=2)
            if a.verb == "suspend_job" and a.name in self.jobs:
                self.jobs[a.name] = replace(self.jobs[a.name], suspended=a.value)
        return d.actions

    def running(self, **job: Any) -> tuple[str, str]:
        """Task a admitted and its Job running as `job` says: (its Workload's name, its Job's name)."""
        self.step()
        name = self.a.workload.name
        self.workloads[name] = WorkloadObs(name, run="1", reserved=True, admitted=True, clusterQueue="cq")
        self.step()
        child = self.a.Child
        self.jobs[child] = replace(self.jobs[child], **job)
        self.step()
        return name, child

    @property
    def a(self) -> Any:
        assert self.status.Tasks is not None
        return self.status.Tasks["a"]


def verbs(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.verb, a.task) for a in actions]


def admitted_of(t: Any) -> tuple[str, str]:
    (c,) = [c for c in t.conditions if c.type == "Admitted"]
    return c.status, c.reason


def test_a_queued_task_waits_for_its_workload_with_no_job_then_runs_when_admitted() -> None:
    q = Q()
    actions = q.step()
    assert verbs(actions) == [("ensure_workload", "a")]
    name = workload_name("task", render.child_name("dj", "a", 1))
    assert q.a.State == "Waiting" and q.a.Run == 1 and q.a.workload.name == name and not q.jobs
    assert admitted_of(q.a) == ("False", "Pending")
    q.workloads[name] = WorkloadObs(name, run="1", reason="Pending", message="insufficient unused quota for cpu")
    assert verbs(q.step()) == []
    assert q.a.State == "Waiting" and "insufficient unused quota" in q.a.Message
    q.workloads[name] = WorkloadObs(name, run="1", reserved=True, admitted=True, clusterQueue="cq")
    actions = q.step()
    assert ("create_job", "a") in verbs(actions) and q.a.State == "Running" and q.a.Run == 1
    assert admitted_of(q.a) == ("True", "Admitted") and q.a.workload.admitted


def test_preempted_suspends_then_releases_once_the_pods_are_gone_and_waits_again() -> None:
    q = Q()
    name, job = q.running(active=2)
    q.workloads[name] = replace(q.workloads[name], evicted=True, reason="Preempted", message="InClusterQueue")
    actions = q.step()
    assert ("suspend_job", "a") in verbs(actions) and q.a.State == "Waiting"
    assert admitted_of(q.a) == ("False", "Preempted") and q.a.workload.preemptions == 1
    assert ("release_workload", "a") not in verbs(q.step())  # pods still there (active)
    q.jobs[job] = replace(q.jobs[job], active=0)
    assert ("release_workload", "a") in verbs(q.step())
    assert q.a.workload.preemptions == 1
    q.workloads[name] = WorkloadObs(name, run="1", reason="Pending", message="insufficient unused quota")
    assert verbs(q.step()) == [] and q.a.State == "Waiting"
    q.workloads[name] = WorkloadObs(name, run="1", reserved=True, admitted=True, clusterQueue="cq")
    actions = q.step()  # readmitted: the same Job continues
    assert [(a.verb, a.name, a.value) for a in actions] == [("suspend_job", job, False)] and q.a.State == "Running"
    assert q.a.Run == 1


def test_a_stop_deactivates_the_workload_once_the_pods_are_gone_releases_it_and_a_resume_queues_it_again() -> None:
    """docs/queues.md, "A stop": a stopped DagJob holds no quota, and keeps its Job and Workload."""
    q = Q()
    name, job = q.running(active=1, completed_indexes="0")
    q.spec = SPEC.model_copy(update={"suspend": True})
    actions = q.step()
    assert ("suspend_job", "a") in verbs(actions) and q.status.State == "Stopped" and q.a.State == "Stopped"
    assert ("activate_workload", "a") not in verbs(actions)  # its pods first: Kueue would admit the next beside them
    q.jobs[job] = replace(q.jobs[job], active=0)
    assert [(a.verb, a.name, a.value) for a in q.step()] == [("activate_workload", name, False)]
    q.workloads[name] = replace(q.workloads[name], active=False, evicted=True, reason="Deactivated",
                                message="The workload is deactivated")
    assert [(a.verb, a.name) for a in q.step()] == [("release_workload", name)]
    q.workloads[name] = WorkloadObs(name, run="1", active=False, evicted=True, reason="Deactivated")
    assert q.step() == []  # parked: no quota, nothing to do
    assert not q.a.workload.preemptions

    q.spec = SPEC
    assert [(a.verb, a.name, a.value) for a in q.step()] == [("activate_workload", name, True)]
    assert q.a.State == "Waiting" and not q.a.workload.preemptions
    q.workloads[name] = WorkloadObs(name, run="1", evicted=True, reason="Deactivated")  # active; Kueue not yet
    assert q.step() == [] and q.a.State == "Waiting"
    q.workloads[name] = WorkloadObs(name, run="1", reserved=True, admitted=True, clusterQueue="cq")
    actions = q.step()  # admitted again: the same Job continues with its unfinished instance
    assert [(a.verb, a.name, a.value) for a in actions] == [("suspend_job", job, False)]
    assert q.a.State == "Running" and q.a.Run == 1 and not q.a.workload.preemptions


def test_a_stop_deactivates_a_waiting_tasks_workload_at_once_and_a_quick_resume_releases_what_kueue_still_counts(
        ) -> None:
    q = Q()
    q.step()
    name = q.a.workload.name
    q.workloads[name] = WorkloadObs(name, run="1", reason="Pending", message="insufficient unused quota")
    q.step()
    q.spec = SPEC.model_copy(update={"suspend": True})
    assert [(a.verb, a.name, a.value) for a in q.step()] == [("activate_workload", name, False)]  # no Job: no pods
    # Admitted just before the deactivation landed, then evicted: resumed before the release.
    q.workloads[name] = WorkloadObs(name, run="1", reserved=True, admitted=True, evicted=True, active=False,
                                    reason="Deactivated")
    q.spec = SPEC
    actions = q.step()
    assert [(a.verb, a.name, a.value) for a in actions] == [("release_workload", name, False),
                                                            ("activate_workload", name, True)]
    assert q.a.State == "Waiting" and not q.a.workload.preemptions  # a stop, not a preemption


def test_a_changed_priority_goes_into_the_workloads_still_waiting_not_into_admitted_ones() -> None:
    q, both = Q(), {"a": QUEUED, "c": QUEUED}
    q.spec = spec({"a": command(ClusterId="dli-queue"), "c": command(ClusterId="dli-queue")})
    q.step(both)
    assert q.status.Tasks is not None
    names = {n: t.workload.name for n, t in q.status.Tasks.items()}
    q.workloads[names["a"]] = WorkloadObs(names["a"], run="1", reserved=True, admitted=True, clusterQueue="cq")
    q.workloads[names["c"]] = WorkloadObs(names["c"], run="1", reason="Pending", message="insufficient unused quota")
    q.step(both)
    q.spec = q.spec.model_copy(update={"Priority": 900})
    actions = q.step(both)
    assert [(a.verb, a.name) for a in actions if a.verb == "prioritize_workload"] == [("prioritize_workload",
                                                                                       names["c"])]
    assert q.status.Priority == 900
    assert not [a for a in q.step(both) if a.verb == "prioritize_workload"]  # once


def test_the_tasks_end_finishes_its_workload_and_unqueued_tasks_are_unchanged() -> None:
    q = Q()
    q.step()
    name = q.a.workload.name
    q.workloads[name] = WorkloadObs(name, run="1", reserved=True, admitted=True, clusterQueue="cq")
    q.step()
    q.jobs[q.a.Child] = replace(q.jobs[q.a.Child], outcome="Complete", completed_indexes="0-1")
    actions = q.step()
    assert Action("finish_workload", task="a", name=name, value=True) in actions
    assert ("create_job", "b") in verbs(actions)  # b names no ClusterId: no Workload
    assert q.status.Tasks is not None and q.status.Tasks["b"].workload is None
    q.workloads[name] = replace(q.workloads[name], finished=True)
    assert ("finish_workload", "a") not in verbs(q.step())


def test_without_a_route_the_task_runs_as_today() -> None:
    q = Q()
    actions = q.step(routes={})
    assert verbs(actions) == [("create_job", "a")] and q.a.workload is None and q.a.conditions is None


def test_kueue_not_installed_under_required_waits_without_a_workload() -> None:
    q = Q()
    actions = q.step(routes={"a": Route(wait="KueueNotInstalled", message="no Kueue")})
    assert verbs(actions) == [] and q.a.State == "Waiting" and q.a.workload is None
    assert admitted_of(q.a) == ("False", "KueueNotInstalled")


def test_the_workload_is_the_tasks_pod_template_times_its_instances_at_the_dagjobs_priority() -> None:
    owner = Owner("lakejob.io/v1alpha1", "DagJob", "dj", "ns", "uid-1")
    rec = DagJobReconciler.__new__(DagJobReconciler)
    rec.settings = SETTINGS
    wl = rec.render_workload(SPEC, "a", owner, 1, "dj-a-wl")
    job = render.task_job(SPEC, "a", owner, SETTINGS, 1)
    assert wl["metadata"]["name"] == "dj-a-wl" and wl["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert wl["metadata"]["labels"]["lakejob.io/name"] == "dj" and wl["metadata"]["labels"]["lakejob.io/task"] == "a"
    assert wl["metadata"]["labels"]["lakejob.io/kind"] == "DagJob"
    assert wl["spec"]["queueName"] == "dli-queue" and wl["spec"]["priority"] == 10
    (ps,) = wl["spec"]["podSets"]
    assert ps["name"] == "task" and ps["count"] == 2 and ps["template"]["spec"] == job["spec"]["template"]["spec"]
    assert ps["template"]["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "3", "memory": "12Gi"}}


class _WorkloadApi:
    """A Workload as the apiserver holds it: GET it, record the status PATCH (queueing.release)."""

    def __init__(self, evicted_reason: str) -> None:
        self.body = {"metadata": {"name": "w", "generation": 1, "resourceVersion": "7",
                                  "ownerReferences": [{"uid": "u1", "controller": True, "kind": "DagJob", "name": "dj"}]},
                     "status": {"conditions": [{"type": "Evicted", "status": "True", "reason": evicted_reason,
                                                "message": "m"}]}}
        self.patches: list[Any] = []

    async def get(self, *_: Any) -> dict[str, Any]:
        return self.body

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> tuple[int, Any]:
        self.patches.append(body)
        return 200, {}


async def test_release_requeues_only_after_a_preemption_as_kueues_jobframework_does() -> None:
    """A deactivated (stopped) Workload released stays out of the queue until reactivated."""
    from lakejob.controllers import queueing

    for reason, requeued in (("Preempted", "True"), ("Deactivated", "False")):
        api = _WorkloadApi(reason)
        assert await queueing.release(api, "ns", "w", "u1")  # type: ignore[arg-type]
        (patch,) = api.patches
        conds = {c["type"]: c for c in patch["status"]["conditions"]}
        assert (conds["Requeued"]["status"], conds["Requeued"]["reason"]) == (requeued, reason)
        assert conds["QuotaReserved"]["status"] == "False" and patch["status"]["admission"] is None
        assert patch["metadata"]["resourceVersion"] == "7"
