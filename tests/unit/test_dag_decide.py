"""DagJob's pure state machine: order, failure modes, stop/resume, queueing, quotas, events."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lakejob.controllers.dagjob_decide import (
    ChildObs,
    Decision,
    JobObs,
    Meta,
    Note,
    Observed,
    decide,
    iso,
    kube_events,
)
from lakejob.models.dagjob import DagJobSpec, DagJobStatus, parse_indexes
from lakejob.settings import Settings

META = Meta(name="dj", namespace="ns", uid="uid-1", generation=1, created_ms=1_700_000_000_000)
SETTINGS = Settings()


def command(instances: int = 1, retries: int = 0, **extra: Any) -> dict[str, Any]:
    return {"InstanceCount": instances, "MaxRetryCount": retries, "Timeout": 60, "Parameters": {
        "Command": {"CommandLine": "python w.py"},
        "StdoutRedirectPath": "oss://bucket/o/", "StderrRedirectPath": "oss://bucket/o/"}, **extra}


def spec(tasks: dict[str, Any], deps: dict[str, list[str]] | None = None, fail_fast: bool = True,
         **extra: Any) -> DagJobSpec:
    return DagJobSpec.model_validate({"Name": "dj", "Priority": 10, "Type": "DAG", "JobFailOnInstanceFail": fail_fast,
                                      "DAG": {"Tasks": tasks, "Dependencies": deps or {}}, **extra})


DIAMOND = spec({n: command() for n in "ABCD"}, {"A": ["B", "C"], "B": ["D"], "C": ["D"]})


class Run:
    """Drives decide like the controller: status carried over, observations supplied per step."""

    def __init__(self, s: DagJobSpec, now: int = 1_700_000_001_000, settings: Settings = SETTINGS):
        self.spec, self.now, self.settings = s, now, settings
        self.status = DagJobStatus()
        self.jobs: dict[str, JobObs] = {}
        self.children: dict[str, ChildObs] = {}
        self.admitted = True
        self.jobs_in_namespace = 1

    def step(self, **changes: Any) -> Decision:
        self.now += 1000
        obs = Observed(now_ms=self.now, jobs=dict(self.jobs), children=dict(self.children), admitted=self.admitted,
                       jobs_in_namespace=self.jobs_in_namespace)
        d = decide(self.spec, None, META, self.status, obs, self.settings)
        self.status = d.status
        for a in d.actions:  # the controller's creates, as the index would then show them
            if a.verb == "create_job" and a.name not in self.jobs:
                self.jobs[a.name] = JobObs(name=a.name, completions=self.spec.DAG.Tasks[a.task].InstanceCount or 1)
            if a.verb == "create_child" and a.name not in self.children:
                self.children[a.name] = ChildObs(name=a.name, state=None)
            if a.verb == "suspend_job" and a.name in self.jobs:
                self.jobs[a.name] = replace(self.jobs[a.name], suspended=a.value, active=0)
        return d

    def child(self, task: str) -> str:
        assert self.status.Tasks is not None
        name = self.status.Tasks[task].Child
        assert name is not None
        return name

    def job_done(self, task: str, outcome: str = "Complete", **fields: Any) -> None:
        name = self.child(task)
        n = self.jobs[name].completions
        default = {"completed_indexes": f"0-{n - 1}" if n > 1 else "0"} if outcome == "Complete" else {}
        self.jobs[name] = replace(self.jobs[name], outcome=outcome, active=0, **{**default, **fields})

    def state(self, task: str) -> str:
        assert self.status.Tasks is not None
        return str(self.status.Tasks[task].State)


def verbs(d: Decision) -> list[tuple[str, str]]:
    return [(a.verb, a.task) for a in d.actions]


def events(d: Decision) -> list[str]:
    return [n.event for n in d.notes]


def conds(s: DagJobStatus) -> dict[str, str]:
    return {c.type: c.status for c in s.conditions or []}


def test_diamond_starts_tasks_only_when_every_upstream_task_finished() -> None:
    r = Run(DIAMOND)
    d = r.step()
    assert r.status.State == "Running" and verbs(d) == [("create_job", "A")]
    assert events(d)[:5] == ["OnTaskWaiting"] * 4 + ["OnJobWaiting"]
    assert r.status.Id == "uid-1" and r.status.CreationTime == iso(META.created_ms)
    assert verbs(r.step()) == []  # A still running
    r.job_done("A")
    d = r.step()
    assert verbs(d) == [("create_job", "B"), ("create_job", "C")] and r.state("A") == "Finished"
    r.job_done("B")
    assert verbs(r.step()) == []  # D waits for C too
    r.job_done("C")
    assert verbs(r.step()) == [("create_job", "D")]
    r.job_done("D")
    d = r.step()
    assert r.status.State == "Finished" and r.status.TaskProgress == "4/4" and r.status.EndTime
    assert "OnJobFinished" in events(d) and verbs(d) == []
    assert conds(r.status) == {"Ready": "True", "Complete": "True", "Failed": "False", "Suspended": "False"}


def test_times_order_upstream_end_before_downstream_start() -> None:
    r = Run(DIAMOND)
    r.step()
    r.job_done("A")
    r.step()
    t = r.status.Tasks
    assert t is not None and t["A"].EndTime is not None and t["B"].StartTime is not None
    assert t["A"].EndTime <= t["B"].StartTime and t["D"].StartTime is None


def test_an_older_operators_conditions_of_a_failed_job_are_put_right() -> None:
    # Before Failed/Suspended, Complete was True on a failed job too.
    r = Run(spec({"A": command()}))
    r.step()
    r.job_done("A", "Failed", failed_indexes="0")
    r.step()
    r.status.conditions = [c.model_copy(update={"status": "True"}) if c.type == "Complete" else c
                           for c in r.status.conditions or [] if c.type in ("Ready", "Complete")]
    d = r.step()
    assert conds(r.status) == {"Ready": "False", "Complete": "False", "Failed": "True", "Suspended": "False"}
    assert d.actions == [] and d.notes == []


def test_a_finished_job_stays_finished() -> None:
    r = Run(spec({"A": command()}))
    r.step()
    r.job_done("A")
    r.step()
    before = r.status.model_copy(deep=True)
    d = r.step()
    assert d.status == before and d.actions == [] and d.notes == []


def test_autorelease_deletes_after_finished() -> None:
    r = Run(spec({"A": command()}, AutoRelease=True))
    r.step()
    r.job_done("A")
    assert verbs(r.step()) == [("delete_self", "")]


def test_autorelease_does_not_delete_a_failed_job() -> None:
    r = Run(spec({"A": command()}, AutoRelease=True))
    r.step()
    r.job_done("A", "Failed", failed_indexes="0")
    d = r.step()
    assert r.status.State == "Failed" and ("delete_self", "") not in verbs(d)
    # Complete only on success: `kubectl wait --for=condition=Complete` must not return for it.
    assert conds(r.status) == {"Ready": "False", "Complete": "False", "Failed": "True", "Suspended": "False"}
    (failed,) = [c for c in r.status.conditions or [] if c.type == "Failed"]
    assert (failed.reason, failed.message, failed.observedGeneration) == ("TaskFailed", r.status.message, 1)


def test_fail_fast_stops_running_tasks_and_never_starts_downstream() -> None:
    r = Run(spec({"bad": command(), "slow": command(), "next": command()}, {"bad": ["next"]}, fail_fast=True))
    r.step()
    r.jobs[r.child("bad")] = replace(r.jobs[r.child("bad")], failed_indexes="0", active=0)  # before the condition
    r.jobs[r.child("slow")] = replace(r.jobs[r.child("slow")], active=1)
    d = r.step()
    assert r.status.State == "Failed" and r.status.reason == "TaskFailed"
    assert (r.state("bad"), r.state("slow"), r.state("next")) == ("Failed", "Stopped", "Stopped")
    assert ("suspend_job", "slow") in verbs(d) and ("create_job", "next") not in verbs(d)
    assert "bad: Failed" in (r.status.message or "") and "next: Stopped (not started" in (r.status.message or "")
    assert r.status.Tasks is not None and r.status.Tasks["slow"].InstanceMetrics.StoppedCount == 1


def test_without_fail_fast_only_the_failed_tasks_descendants_are_skipped() -> None:
    r = Run(spec({"bad": command(instances=2, retries=2), "after": command(), "last": command(),
                  "other": command(), "other2": command()},
                 {"bad": ["after"], "after": ["last"], "other": ["other2"]}, fail_fast=False))
    r.step()
    # an index out of retries does not fail the task yet: the Job runs its other indexes
    r.jobs[r.child("bad")] = replace(r.jobs[r.child("bad")], failed_indexes="1", active=1)
    r.step()
    assert r.state("bad") == "Running"
    r.job_done("bad", "Failed", failed_indexes="0,1")
    d = r.step()
    assert r.state("bad") == "Failed" and r.state("after") == "Stopped" and r.state("last") == "Stopped"
    assert r.status.Tasks is not None and "skipped: upstream task bad failed" in (r.status.Tasks["last"].Message or "")
    assert r.status.State == "Running" and "OnTaskFailed" in events(d)
    r.job_done("other")
    assert verbs(r.step()) == [("create_job", "other2")]
    r.job_done("other2")
    r.step()
    assert r.status.State == "Failed" and r.status.TaskMetrics is not None
    assert (r.status.TaskMetrics.FinishedCount, r.status.TaskMetrics.FailedCount,
            r.status.TaskMetrics.StoppedCount) == (2, 1, 2)
    assert r.status.Tasks["bad"].FailedIndexes == "0,1" and r.status.Tasks["bad"].InstanceMetrics.FailedCount == 2


def test_instance_counts_and_instance_events_follow_the_job() -> None:
    r = Run(spec({"A": command(instances=4)}))
    d = r.step()
    assert "OnInstanceWaiting" in events(d)
    r.jobs[r.child("A")] = replace(r.jobs[r.child("A")], active=3, completed_indexes="0")
    d = r.step()
    m = r.status.Tasks["A"].InstanceMetrics  # type: ignore[index]
    assert (m.WaitingCount, m.RunningCount, m.FinishedCount, m.FailedCount) == (0, 3, 1, 0)
    assert [(n.event, n.indexes) for n in d.notes if n.event.startswith("OnInstance")] == [
        ("OnInstanceRunning", ()), ("OnInstanceFinished", (0,))]
    r.jobs[r.child("A")] = replace(r.jobs[r.child("A")], active=1, completed_indexes="0-2")
    d = r.step()
    assert [(n.event, n.indexes) for n in d.notes] == [("OnInstanceFinished", (1, 2))]


def test_suspend_stops_then_resume_continues_the_same_job() -> None:
    r = Run(spec({"A": command(), "B": command(instances=2)}, {"A": ["B"]}))
    r.step()
    r.job_done("A")
    r.step()
    job_b = r.child("B")
    r.jobs[job_b] = replace(r.jobs[job_b], active=2)
    r.step()
    r.spec = r.spec.model_copy(update={"suspend": True})
    d = r.step()
    assert r.status.State == "Stopped" and r.state("B") == "Stopped" and r.state("A") == "Finished"
    assert ("suspend_job", "B") in verbs(d) and d.actions[0].value is True
    assert {"OnTaskStopped", "OnInstanceStopped", "OnJobStopped"} <= set(events(d))
    # A stop is neither success nor failure.
    assert conds(r.status) == {"Ready": "False", "Complete": "False", "Failed": "False", "Suspended": "True"}
    assert r.step().actions == []  # stays stopped
    r.spec = r.spec.model_copy(update={"suspend": False})
    d = r.step()
    assert r.status.State == "Running" and r.state("B") == "Running"
    assert conds(r.status) == {"Ready": "True", "Complete": "False", "Failed": "False", "Suspended": "False"}
    (a,) = d.actions
    assert (a.verb, a.name, a.value) == ("suspend_job", job_b, False)  # the same Job, not a new run
    assert r.status.Tasks["B"].Run == 1 and r.status.Tasks["A"].Run == 1  # type: ignore[index]


def test_resume_reruns_a_stopped_child_resource_as_a_new_run() -> None:
    r = Run(spec({"S": {"sparkBatch": {"file": "local:///a.py"}}}))
    r.step()
    first = r.child("S")
    r.children[first] = ChildObs(name=first, state="running")
    r.step()
    r.spec = r.spec.model_copy(update={"suspend": True})
    assert verbs(r.step()) == [("stop_child", "S")]
    r.children[first] = ChildObs(name=first, state="killed", suspended=True)
    r.spec = r.spec.model_copy(update={"suspend": False})
    d = r.step()
    assert verbs(d) == [("create_child", "S")] and r.child("S") == "dj-s-r2-" + r.child("S")[-10:]
    assert r.status.Tasks["S"].Run == 2  # type: ignore[index]


@pytest.mark.parametrize(("child_state", "task_state"), [
    ("starting", "Running"), ("recovering", "Running"), ("success", "Finished"), ("dead", "Failed"),
    ("killed", "Failed"),  # killed by someone else: a failure of the task
    ("job_running", "Running"), ("job_finish", "Finished"), ("job_submit_fail", "Failed"),
    ("job_cancel_success", "Failed"),
])
def test_child_states_map_to_batchcompute_states(child_state: str, task_state: str) -> None:
    r = Run(spec({"S": {"sparkBatch": {"file": "local:///a.py"}}}, fail_fast=False))
    r.step()
    r.children[r.child("S")] = ChildObs(name=r.child("S"), state=child_state, message="why")
    r.step()
    assert r.state("S") == task_state


def test_created_but_not_seen_is_created_again_idempotently() -> None:
    r = Run(spec({"A": command()}))
    r.step()
    r.jobs.clear()  # the watch has not shown it yet (or the create was lost in a crash)
    d = r.step()
    assert verbs(d) == [("create_job", "A")] and d.actions[0].name == r.child("A") and d.actions[0].run == 1


def test_waits_for_a_slot_then_runs() -> None:
    r = Run(spec({"A": command()}))
    r.admitted = False
    d = r.step()
    assert r.status.State == "Waiting" and d.actions == [] and events(d)[-1] == "OnJobWaiting"
    r.admitted = True
    d = r.step()
    assert r.status.State == "Running" and verbs(d) == [("create_job", "A")]


def test_created_suspended_is_stopped_and_starts_nothing() -> None:
    r = Run(spec({"A": command()}, suspend=True))
    d = r.step()
    assert r.status.State == "Stopped" and d.actions == []


def test_priority_change_is_noted_once() -> None:
    r = Run(spec({"A": command()}))
    r.step()
    r.spec = r.spec.model_copy(update={"Priority": 900})
    d = r.step()
    assert [n.message for n in d.notes if n.event == "OnPriorityChange"] == ["Priority 10 -> 900"]
    assert r.status.Priority == 900 and "OnPriorityChange" not in events(r.step())


@pytest.mark.parametrize(("settings", "obs", "reason", "text"), [
    (Settings(dag_max_job_task_count=1), 1, "QuotaExhausted.MaxJobTaskCount",
     "The MaxJobTaskCount (1) quota is exhausted: tasks in this job is 2."),
    (Settings(dag_max_task_instance_count=2), 1, "QuotaExhausted.MaxTaskInstanceCount",
     "The MaxTaskInstanceCount (2) quota is exhausted: InstanceCount of task A is 3."),
    (Settings(dag_max_instance_timeout=59), 1, "QuotaExhausted.MaxInstanceTimeout",
     "The MaxInstanceTimeout (59) quota is exhausted: Timeout of task A is 60."),
    (Settings(dag_max_job_count=5), 6, "QuotaExhausted.MaxJobCount",
     "The MaxJobCount (5) quota is exhausted: DagJobs in this namespace is 6."),
])
def test_quotas_fail_the_job_with_their_batchcompute_names(settings: Settings, obs: int, reason: str,
                                                           text: str) -> None:
    r = Run(spec({"A": command(instances=3), "B": command()}), settings=settings)
    r.jobs_in_namespace = obs
    d = r.step()
    assert r.status.State == "Failed" and r.status.reason == reason and r.status.message == text
    assert d.actions == []


def test_invalid_spec_fails_at_once() -> None:
    obs = Observed(now_ms=1)
    d = decide(None, "spec.DAG: InvalidDependencies: Dependencies form a cycle: A -> B -> A", META, DagJobStatus(),
               obs, SETTINGS)
    assert d.status.State == "Failed" and d.status.reason == "InvalidSpec" and "A -> B -> A" in (d.status.message or "")
    assert d.actions == []


def test_inline_keys_never_reach_the_status_or_the_notes() -> None:
    r = Run(spec({"A": command(Mounts={"OSS": {"AccessKeyId": "AKID-X", "AccessKeySecret": "SECRET-X"}})}))
    d = r.step()
    assert verbs(d) == [("create_job", "A")]
    assert "-X" not in r.status.model_dump_json() and "-X" not in repr(d.notes) + repr(d.actions)


@pytest.mark.parametrize(("text", "expected"), [("", set()), ("0", {0}), ("0-2,5", {0, 1, 2, 5}),
                                                ("1,3-4", {1, 3, 4})])
def test_parse_indexes(text: str, expected: set[int]) -> None:
    assert parse_indexes(text) == expected


def test_a_task_child_deleted_after_it_was_seen_fails_the_task_and_is_not_run_again() -> None:
    r = Run(spec({"S": {"sparkBatch": {"file": "local:///a.py"}}}))
    r.step()
    first = r.child("S")
    del r.children[first]  # lost between the status write and the create (never seen): created again
    assert verbs(r.step()) == [("create_child", "S")]
    r.children[first] = ChildObs(name=first, state="running")
    r.step()
    del r.children[first]  # someone deletes it
    d = r.step()
    assert verbs(d) == []
    task = d.status.Tasks["S"]
    assert task.State == "Failed" and "ChildDeleted" in (task.Message or "") and r.child("S") == first


def test_pods_kubernetes_refuses_show_in_the_task_and_an_event_once_per_reason() -> None:
    r = Run(spec({"A": command()}))
    r.step()
    job = r.child("A")
    r.jobs[job] = replace(r.jobs[job], create_error='pods "x" is forbidden: no PriorityClass with name p was found')
    d = r.step()
    task = d.status.Tasks["A"]  # type: ignore[index]
    assert task.State == "Running" and "pods cannot be created: pods \"x\" is forbidden" in (task.Message or "")
    assert events(d) == ["OnTaskCreateFailed"] and d.requeue_after_s == 5
    assert events(r.step()) == []  # the same reason again: no second Event
    r.jobs[job] = replace(r.jobs[job], create_error=None, active=1)
    task = r.step().status.Tasks["A"]  # type: ignore[index]
    assert task.InstanceMetrics.RunningCount == 1 and task.Message is None


def test_plain_task_events_of_one_kind_fold_into_one_kubernetes_event_and_the_rest_stay_as_they_are() -> None:
    notes = [Note("OnTaskFinished", "task root Finished", "root"),
             *(Note("OnTaskRunning", f"task {t} Running", t) for t in ("a", "b", "c")),
             Note("OnTaskFailed", "task d Failed: exit code 3", "d"),
             Note("OnTaskFailed", "task e Failed", "e"),
             Note("OnInstanceFinished", "task root instance 0 Finished", "root", (0,)),
             Note("OnJobRunning", "job Running")]
    assert kube_events(notes, frozenset()) == [
        ("Normal", "TaskFinished", "task root Finished"),
        ("Normal", "TaskRunning", "tasks a, b, c Running"),
        ("Warning", "TaskFailed", "task d Failed: exit code 3"),  # a message of its own: never folded
        ("Warning", "TaskFailed", "task e Failed"),
        ("Normal", "JobRunning", "job Running")]  # instance events only when the Topic lists them
    assert ("Normal", "InstanceFinished", "task root instance 0 Finished") in \
        kube_events(notes, frozenset({"OnInstanceFinished"}))
