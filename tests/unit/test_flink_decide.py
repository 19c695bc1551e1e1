"""The FlinkJarJob state machine: decide(spec, spec_error, meta, status, observed, settings), pure.

The sliding-hour restart cap (resume_max_num) is checked to the millisecond: a restart is
recorded when it happens, and a failure restarts only if fewer than resume_max_num restarts lie in
the hour before the restart's time (exclusive of the restart exactly an hour earlier).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lakejob.controllers.flinkjarjob import checkpoint_conflict, observe_pods, summarize_flink_pod
from lakejob.controllers.flinkjarjob_decide import (
    CANCEL_TIMEOUT_MS,
    FINISH_EXIT_MS,
    FLINK_FAILED_EXIT,
    Action,
    Decision,
    Meta,
    Observed,
    PodObs,
    RestObs,
    decide,
    is_finished,
    phase,
)
from lakejob.models.flinkjarjob import HOUR_MS, FlinkJarJobSpec, FlinkJarJobStatus, TaskManagerCounts
from lakejob.render.flink import job_id
from lakejob.settings import Settings

UID = "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
T0 = 1_700_000_000_000
META = Meta(name="wc", namespace="ns", uid=UID, generation=1, created_ms=T0)
SETTINGS = Settings(flink_restart_delay_s=10, notification_topics={"alerts": "http://hook/alerts"},
                    packages_url="s3://pkgs/dli/")
DELAY_MS = 10_000


def spec(**fields: Any) -> FlinkJarJobSpec:
    return FlinkJarJobSpec.model_validate({"name": "wc", "main_class": "Main", "entrypoint": "job.jar", **fields})


def jm(phase: str, attempt: int = 1, **kw: Any) -> PodObs:
    return PodObs(name=f"wc-jm-{attempt}", phase=phase, created_ms=T0, **kw)


def obs(now: int, jobmanager: PodObs | None = None, rest: RestObs | None = None, **kw: Any) -> Observed:
    return Observed(now_ms=now, jobmanager=jobmanager, taskmanagers=TaskManagerCounts(), rest=rest, **kw)


def step(sp: FlinkJarJobSpec | None, status: FlinkJarJobStatus, observed: Observed,
         settings: Settings = SETTINGS, error: str | None = None) -> Decision:
    return decide(sp, error, META, status, observed, settings)


def running(sp: FlinkJarJobSpec, now: int = T0 + 1000) -> FlinkJarJobStatus:
    """A job that was created and runs attempt 1."""
    d = step(sp, FlinkJarJobStatus(), obs(T0))
    return step(sp, d.status, obs(now, jm("Running"))).status


def conds(s: FlinkJarJobStatus) -> dict[str, str]:
    return {c.type: c.status for c in s.conditions or []}


def ended(s: FlinkJarJobStatus) -> tuple[str, str] | None:
    """The one of Complete, Failed, Suspended that is True (with its reason), or None."""
    true = [(c.type, c.reason) for c in s.conditions or [] if c.type in ("Complete", "Failed", "Suspended")
            and c.status == "True"]
    assert len(true) <= 1
    return true[0] if true else None


def verbs(d: Decision) -> list[str]:
    return [a.verb for a in d.actions]


# ------------------------------------------------------------------------------------ creation


def test_new_job_records_attempt_one_then_creates_it() -> None:
    d = step(spec(), FlinkJarJobStatus(), obs(T0 + 5))
    s = d.status
    assert (s.status_name, s.state, s.attempt, s.jobManagerPod) == ("job_init", "Pending", 1, "wc-jm-1")
    assert s.job_id == job_id(UID, 1) and s.restarts == 0 and s.create_time == T0
    assert d.actions == [Action("ensure_children", 1), Action("create_jobmanager", 1, "wc-jm-1", None)]
    assert s.resources is not None and s.resources.taskManager.replicas == 1 and s.resources.parallelism == 1
    assert d.events == [("Normal", "JobManagerCreated", "job_init: JobManager pod wc-jm-1 created (attempt 1)")]


def test_invalid_spec_is_job_submit_fail() -> None:
    d = step(None, FlinkJarJobStatus(), obs(T0), error="spec.cu_number: too few")
    assert d.status.status_name == "job_submit_fail" and d.status.state == "Failed" and not d.actions
    assert "spec.cu_number: too few" in (d.status.status_desc or "")


def test_checkpoint_conflict_is_job_submit_fail_with_the_holder_and_a_notification() -> None:
    d = step(spec(checkpoint_path="obs://b/c", smn_topic="alerts"), FlinkJarJobStatus(),
             obs(T0, checkpoint_conflict="older"))
    assert d.status.status_name == "job_submit_fail" and d.status.reason == "CheckpointPathInUse"
    assert "already used by FlinkJarJob older" in (d.status.status_desc or "") and not d.actions
    assert d.events[0][:2] == ("Warning", "CheckpointPathInUse")
    assert d.notifications[0][0] == "http://hook/alerts"


def test_created_suspended_starts_nothing() -> None:
    d = step(spec(suspend=True), FlinkJarJobStatus(), obs(T0))
    assert d.status.status_name == "job_cancel_success" and not d.actions
    assert ended(d.status) == ("Suspended", "Suspended")


def test_an_older_operators_conditions_of_a_failed_job_are_put_right() -> None:
    # Before Failed/Suspended, Complete was True on every final phase.
    s = fail(spec(), running(spec()), T0 + 5000).status
    s.conditions = [c.model_copy(update={"status": "True"}) if c.type == "Complete" else c
                    for c in s.conditions or [] if c.type in ("Ready", "Complete")]
    d = step(spec(), s, obs(T0 + 9000))
    assert conds(d.status) == {"Ready": "False", "Complete": "False", "Failed": "True", "Suspended": "False"}
    assert not d.actions and not d.events


# ------------------------------------------------------------------------------------ following the job


def test_pending_jobmanager_is_job_submitting_then_running_from_the_pod_when_rest_is_silent() -> None:
    s = step(spec(), FlinkJarJobStatus(), obs(T0)).status
    d = step(spec(), s, obs(T0 + 100, jm("Pending")))
    assert d.status.status_name == "job_submitting" and d.requeue_after_s is not None
    d = step(spec(), d.status, obs(T0 + 200, jm("Running")))
    assert (d.status.status_name, d.status.state, d.status.reason) == ("job_running", "Running", "JobManagerRunning")
    assert d.requeue_after_s == SETTINGS.flink_poll_interval_s
    assert conds(d.status) == {"Ready": "True", "Complete": "False", "Failed": "False", "Suspended": "False"}


@pytest.mark.parametrize(("flink", "status_name", "state"), [
    ("INITIALIZING", "job_submitting", "Pending"), ("CREATED", "job_submitting", "Pending"),
    ("RUNNING", "job_running", "Running"), ("RESTARTING", "job_running_exception", "Running"),
    ("FAILING", "job_running_exception", "Running"), ("FINISHED", "job_running", "Running"),  # JobFinishing
    ("CANCELED", "job_cancel_success", "Cancelled"), ("FAILED", "job_running_exception", "Failed"),
])
def test_rest_states_map_to_dli_statuses(flink: str, status_name: str, state: str) -> None:
    s = step(spec(), FlinkJarJobStatus(), obs(T0)).status
    d = step(spec(), s, obs(T0 + 100, jm("Running"), RestObs(flink, exception="java.lang.RuntimeException: boom")))
    assert (d.status.status_name, d.status.state, d.status.flinkState) == (status_name, state, flink)
    # Cancelled in Flink itself, not by spec.suspend: the job ended without its work done.
    assert ended(d.status) == {"Failed": ("Failed", "JobFailed"), "Cancelled": ("Failed", "JobCanceled")}.get(state)
    if flink in ("RESTARTING", "FAILED"):
        assert "java.lang.RuntimeException: boom" in (d.status.status_desc or "")


def test_rest_restarting_then_running_again_recovers() -> None:
    s = running(spec())
    s = step(spec(), s, obs(T0 + 2000, jm("Running"), RestObs("RESTARTING"))).status
    assert s.status_name == "job_running_exception" and not is_finished(s)
    s = step(spec(), s, obs(T0 + 3000, jm("Running"), RestObs("RUNNING"))).status
    assert s.status_name == "job_running"


def test_finished_cleans_up_and_keeps_the_ended_jobmanager() -> None:
    d = step(spec(), running(spec()), obs(T0 + 5000, jm("Succeeded", exit_code=0)))
    assert d.status.status_name == "job_finish" and d.status.state == "Succeeded" and verbs(d) == ["cleanup"]
    assert is_finished(d.status)
    assert conds(d.status) == {"Ready": "False", "Complete": "True", "Failed": "False", "Suspended": "False"}
    again = step(spec(), d.status, obs(T0 + 9000, None))
    assert again.status == d.status and not again.actions and not again.events


def test_rest_finished_while_the_pod_runs_waits_for_the_jobmanager_to_exit_then_stops_it() -> None:
    d = step(spec(), running(spec()), obs(T0 + 5000, jm("Running"), RestObs("FINISHED")))
    assert (d.status.status_name, d.status.reason, verbs(d), d.requeue_after_s) == \
        ("job_running", "JobFinishing", [], FINISH_EXIT_MS / 1000)  # the pod's exit wakes it sooner
    exited = step(spec(), d.status, obs(T0 + 7000, jm("Succeeded", exit_code=0)))
    assert exited.status.status_name == "job_finish" and verbs(exited) == ["cleanup"]  # its log kept
    waiting = step(spec(), d.status, obs(T0 + 5000 + FINISH_EXIT_MS - 1, jm("Running"), RestObs("FINISHED")))
    assert waiting.status.status_name == "job_running" and not waiting.events and waiting.requeue_after_s == 1
    late = step(spec(), d.status, obs(T0 + 5000 + FINISH_EXIT_MS, jm("Running"), RestObs("FINISHED")))
    assert late.status.status_name == "job_finish" and verbs(late) == ["delete_jobmanager", "cleanup"]


def test_missing_jobmanager_while_starting_is_recreated_with_the_same_savepoint() -> None:
    s = step(spec(), FlinkJarJobStatus(), obs(T0)).status
    d = step(spec(), s, obs(T0 + 1000, None))
    assert d.actions == [Action("ensure_children", 1), Action("create_jobmanager", 1, "wc-jm-1", None)]


def test_jobmanager_never_scheduled_is_job_submit_fail_after_the_timeout() -> None:
    s = step(spec(), FlinkJarJobStatus(), obs(T0)).status
    settings = SETTINGS.model_copy(update={"scheduling_timeout_s": 60})
    d = step(spec(), s, obs(T0 + 61_000, jm("Pending", unschedulable="0/4 nodes: Insufficient cpu")), settings)
    assert d.status.status_name == "job_submit_fail" and d.status.reason == "FailedScheduling"
    assert "Insufficient cpu" in (d.status.status_desc or "") and verbs(d) == ["delete_jobmanager", "cleanup"]


def test_taskmanagers_are_counted_and_rest_checkpoints_remembered() -> None:
    s = running(spec())
    o = Observed(now_ms=T0 + 2000, jobmanager=jm("Running"), taskmanagers=TaskManagerCounts(running=2, pending=1),
                 rest=RestObs("RUNNING", last_checkpoint="s3://b/c/chk-3"))
    d = step(spec(), s, o)
    assert d.status.taskManagers == TaskManagerCounts(running=2, pending=1)
    assert d.status.last_checkpoint == "s3://b/c/chk-3"
    d = step(spec(), d.status, replace(o, rest=RestObs("RUNNING")))  # a poll without a checkpoint keeps it
    assert d.status.last_checkpoint == "s3://b/c/chk-3"


# ------------------------------------------------------------------------------------ failures and restarts


def fail(sp: FlinkJarJobSpec, s: FlinkJarJobStatus, now: int) -> Decision:
    """The current attempt's JobManager fails at `now` (Flink's exit code for a FAILED job)."""
    assert s.attempt is not None
    return step(sp, s, obs(now, jm("Failed", s.attempt, exit_code=FLINK_FAILED_EXIT, term_reason="Error")))


def restart(sp: FlinkJarJobSpec, s: FlinkJarJobStatus, now: int) -> FlinkJarJobStatus:
    """Fail at `now`, then run the restart when it is due, and see the new JobManager run."""
    d = fail(sp, s, now)
    assert d.status.state == "Restarting", d.status.status_desc
    due = d.status.nextRestartTime
    assert due == now + DELAY_MS
    d = step(sp, d.status, obs(due, None))
    assert d.status.status_name == "job_submitting" and d.status.state == "Pending"
    assert d.status.attempt is not None
    return step(sp, d.status, obs(due + 1, jm("Running", d.status.attempt))).status


def test_failure_without_restart_is_final_with_cause_and_suggestion() -> None:
    d = fail(spec(smn_topic="alerts"), running(spec()), T0 + 5000)
    s = d.status
    assert (s.status_name, s.state, s.reason) == ("job_running_exception", "Failed", "Error")
    assert "the Flink job failed (the JobManager exited with 1443)" in (s.status_desc or "")
    assert "restart_when_exception: true" in (s.status_desc or "")
    assert verbs(d) == ["cleanup"] and is_finished(s)
    assert conds(s) == {"Ready": "False", "Complete": "False", "Failed": "True", "Suspended": "False"}
    assert ended(s) == ("Failed", "Error")
    (url, data), = d.notifications
    assert url == "http://hook/alerts" and data["final"] is True and data["status_name"] == "job_running_exception"


def test_unknown_topic_is_an_event_not_a_notification() -> None:
    d = fail(spec(smn_topic="nobody"), running(spec()), T0 + 5000)
    assert not d.notifications and ("Warning", "NotificationTopicUnknown") in [e[:2] for e in d.events]


def test_restart_waits_the_delay_then_starts_the_next_attempt_resuming_from_the_checkpoint() -> None:
    sp = spec(restart_when_exception=True, resume_checkpoint=True, smn_topic="alerts")
    s = running(sp)
    s = step(sp, s, obs(T0 + 2000, jm("Running"), RestObs("RUNNING", last_checkpoint="obs://b/c/chk-9"))).status
    d = fail(sp, s, T0 + 5000)
    assert d.status.status_name == "job_running_exception" and d.status.state == "Restarting"
    assert d.status.nextRestartTime == T0 + 5000 + DELAY_MS and d.requeue_after_s == 10
    assert "restarting in 10s (restart 1 in the last hour, resume_max_num unlimited)" in (d.status.status_desc or "")
    assert d.notifications[0][1]["final"] is False and not is_finished(d.status)
    early = step(sp, d.status, obs(T0 + 9000, None))
    assert not early.actions and early.requeue_after_s == pytest.approx(6.0)
    d = step(sp, d.status, obs(T0 + 15_000, None))
    s = d.status
    assert (s.attempt, s.jobManagerPod, s.job_id, s.restarts) == (2, "wc-jm-2", job_id(UID, 2), 1)
    assert s.restart_times == [T0 + 15_000] and s.savepointPath == "obs://b/c/chk-9"
    assert d.actions == [Action("ensure_children", 2), Action("create_jobmanager", 2, "wc-jm-2", "obs://b/c/chk-9")]
    assert d.events[-1][1] == "Restarted" and "resuming from checkpoint obs://b/c/chk-9" in d.events[-1][2]


def test_the_restart_deletes_the_failed_attempts_ended_jobmanager_pod() -> None:
    # Kept, a job that fails again and again would keep one ended pod per restart (seen on the real node).
    sp = spec(restart_when_exception=True)
    d = step(sp, running(sp), obs(T0 + 5000, jm("Failed", exit_code=137, term_reason="Error")))
    assert d.status.state == "Restarting" and not d.actions  # kept until the restart: its logs are readable
    d = step(sp, d.status, obs(T0 + 15_000, jm("Failed", exit_code=137, term_reason="Error")))
    assert d.actions == [Action("delete_jobmanager", pod="wc-jm-1"), Action("ensure_children", 2),
                         Action("create_jobmanager", 2, "wc-jm-2", None)]
    deleting = step(sp, fail(sp, running(sp), T0 + 5000).status, obs(T0 + 15_000, jm("Failed", deleting=True)))
    assert verbs(deleting) == ["ensure_children", "create_jobmanager"]


def test_a_silent_rest_poll_after_answers_changes_nothing_and_a_first_one_is_the_pods_view() -> None:
    s = step(spec(), running(spec()), obs(T0 + 2000, jm("Running"), RestObs("RUNNING"))).status
    assert (s.status_name, s.reason) == ("job_running", "JobRunning")
    d = step(spec(), s, obs(T0 + 7000, jm("Running")))
    assert (d.status.status_name, d.status.reason, d.status.flinkState) == ("job_running", "JobRunning", "RUNNING")
    assert not d.events and not d.actions and d.requeue_after_s == SETTINGS.flink_poll_interval_s
    # REST says RESTARTING, then is silent: still job_running_exception, not "running" from the pod.
    s = step(spec(), s, obs(T0 + 8000, jm("Running"), RestObs("RESTARTING"))).status
    assert step(spec(), s, obs(T0 + 9000, jm("Running"))).status.status_name == "job_running_exception"


def test_restart_without_resume_checkpoint_starts_without_state() -> None:
    sp = spec(restart_when_exception=True)
    s = running(sp)
    s = step(sp, s, obs(T0 + 2000, jm("Running"), RestObs("RUNNING", last_checkpoint="obs://x"))).status
    d = fail(sp, s, T0 + 5000)
    d = step(sp, d.status, obs(T0 + 15_000, None))
    assert d.actions[-1].savepoint is None


def test_resume_checkpoint_without_a_known_checkpoint_says_so() -> None:
    sp = spec(restart_when_exception=True, resume_checkpoint=True)
    d = fail(sp, running(sp), T0 + 5000)
    d = step(sp, d.status, obs(T0 + 15_000, None))
    assert d.actions[-1].savepoint is None and "no completed checkpoint" in d.events[-1][2]


def test_a_failed_jobmanager_that_still_runs_is_deleted_before_the_restart() -> None:
    sp = spec(restart_when_exception=True)
    d = step(sp, running(sp), obs(T0 + 5000, jm("Running"), RestObs("FAILED")))
    assert verbs(d) == ["delete_jobmanager"] and d.status.state == "Restarting"


def test_three_failures_with_resume_max_num_two_in_an_hour_fail_with_the_reason() -> None:
    sp = spec(restart_when_exception=True, resume_max_num=2)
    s = running(sp)
    s = restart(sp, s, T0 + 60_000)
    s = restart(sp, s, T0 + 120_000)
    d = fail(sp, s, T0 + 180_000)
    s = d.status
    assert (s.status_name, s.state, s.attempt, s.restarts) == ("job_running_exception", "Failed", 3, 2)
    assert "not restarted: resume_max_num is 2 restart(s) per hour and 2 were made in the last hour" \
        in (s.status_desc or "")
    assert "raise resume_max_num" in (s.status_desc or "") and verbs(d) == ["cleanup"]


@pytest.mark.parametrize("cap", [1, 2, 5])
def test_the_window_is_exactly_one_hour_before_the_restart(cap: int) -> None:
    """cap restarts at t1..; a failure whose restart would fall 1 ms short of an hour after t1 is
    refused, one whose restart falls exactly an hour after t1 is allowed (t1 has left the window)."""
    sp = spec(restart_when_exception=True, resume_max_num=cap)
    s = running(sp)
    first_failure = T0 + 60_000
    for i in range(cap):
        s = restart(sp, s, first_failure + i * 1000)
    t1 = first_failure + DELAY_MS  # when the first restart happened
    assert s.restart_times is not None and s.restart_times[0] == t1 and len(s.restart_times) == cap
    short = fail(sp, s, t1 + HOUR_MS - DELAY_MS - 1)  # its restart would be at t1 + 1h - 1 ms
    assert short.status.state == "Failed"
    exact = fail(sp, s, t1 + HOUR_MS - DELAY_MS)  # its restart would be at t1 + 1h
    assert exact.status.state == "Restarting"
    # The record is pruned against `now` (the failure), still inside t1's hour: t1 is counted out only
    # for the restart, which happens an hour after t1.
    assert exact.status.restart_times is not None and len(exact.status.restart_times) == cap


def test_unlimited_restarts_with_minus_one() -> None:
    sp = spec(restart_when_exception=True, resume_max_num=-1)
    s = running(sp)
    for i in range(12):
        s = restart(sp, s, T0 + 60_000 + i * 20_000)
    assert s.restarts == 12 and s.attempt == 13 and s.restart_times is not None and len(s.restart_times) == 12


def test_old_restarts_leave_the_record_after_an_hour() -> None:
    sp = spec(restart_when_exception=True, resume_max_num=1)
    s = restart(sp, running(sp), T0 + 60_000)
    assert s.restart_times == [T0 + 70_000]
    later = step(sp, s, obs(T0 + 70_000 + HOUR_MS, jm("Running", 2)))
    assert later.status.restart_times is None and later.status.restarts == 1
    again = fail(sp, later.status, T0 + 70_000 + HOUR_MS + 1)
    assert again.status.state == "Restarting"


def test_a_missing_jobmanager_while_running_is_a_failure() -> None:
    d = step(spec(), running(spec()), obs(T0 + 5000, None))
    assert d.status.reason == "JobManagerPodMissing" and d.status.state == "Failed"


# ------------------------------------------------------------------------------------ cancel


def test_suspend_cancels_deletes_everything_then_succeeds_when_no_pod_is_left() -> None:
    sp = spec(suspend=True)
    d = step(sp, running(spec()), obs(T0 + 5000, jm("Running"), pods_left=3))
    assert d.status.status_name == "job_canceling" and d.status.state == "Cancelling"
    assert verbs(d) == ["delete_jobmanager", "cleanup"] and d.requeue_after_s == 2
    d = step(sp, d.status, obs(T0 + 6000, jm("Running", deleting=True), pods_left=1))
    assert d.status.status_name == "job_canceling" and verbs(d) == []
    assert ended(d.status) is None  # Suspended once stopped: `kubectl wait` for it means no pod is left
    d = step(sp, d.status, obs(T0 + 7000, None, pods_left=0))
    assert d.status.status_name == "job_cancel_success" and d.status.state == "Cancelled" and is_finished(d.status)
    assert conds(d.status) == {"Ready": "False", "Complete": "False", "Failed": "False", "Suspended": "True"}


def test_suspend_of_a_job_whose_rest_answers_cancels_it_in_flink_first() -> None:
    s = step(spec(), running(spec()), obs(T0 + 2000, jm("Running"), RestObs("RUNNING"))).status
    sp = spec(suspend=True)
    d = step(sp, s, obs(T0 + 5000, jm("Running"), RestObs("RUNNING"), pods_left=2))
    assert (d.status.status_name, d.status.reason) == ("job_canceling", "CancellingJob")
    assert verbs(d) == ["cancel_job"] and d.requeue_after_s == 1
    waiting = step(sp, d.status, obs(T0 + 6000, jm("Running"), RestObs("CANCELLING"), pods_left=2))
    assert not waiting.actions and waiting.status.reason == "CancellingJob" and waiting.requeue_after_s == 1
    done = step(sp, waiting.status, obs(T0 + 7000, jm("Running"), RestObs("CANCELED"), pods_left=2))
    assert (done.status.reason, verbs(done)) == ("Suspended", ["delete_jobmanager", "cleanup"])
    assert "Flink reports the job CANCELED" in (done.status.status_desc or "")
    # The JobManager of a cancelled application exits 0 by itself, maybe before a poll saw CANCELED.
    exited = step(sp, waiting.status, obs(T0 + 7000, jm("Succeeded", exit_code=0), pods_left=2))
    assert "its JobManager ended with exit code 0" in (exited.status.status_desc or "")
    assert verbs(exited) == ["delete_jobmanager", "cleanup"]
    late = step(sp, waiting.status, obs(T0 + 5000 + CANCEL_TIMEOUT_MS, jm("Running"), pods_left=2))
    assert "did not cancel it within 60s" in (late.status.status_desc or "") and verbs(late)[-1] == "cleanup"
    gone = step(sp, done.status, obs(T0 + 9000, None, pods_left=0))
    assert gone.status.status_name == "job_cancel_success" and is_finished(gone.status)


def test_suspend_cancels_a_pending_restart() -> None:
    sp = spec(restart_when_exception=True)
    d = fail(sp, running(sp), T0 + 5000)
    d = step(spec(restart_when_exception=True, suspend=True), d.status, obs(T0 + 6000, None))
    assert d.status.status_name == "job_cancel_success" and d.status.nextRestartTime is None


# ------------------------------------------------------------------------------------ runs


def gen(n: int) -> Meta:
    return replace(META, generation=n)


def test_suspend_set_back_to_false_is_a_new_run_from_the_newest_checkpoint() -> None:
    sp = spec(restart_when_exception=True, resume_checkpoint=True)
    s = step(sp, running(sp), obs(T0 + 2000, jm("Running"), RestObs("RUNNING", last_checkpoint="file:///c/chk-4"))).status
    stopping = decide(spec(restart_when_exception=True, resume_checkpoint=True, suspend=True), None, gen(2), s,
                      obs(T0 + 3000, jm("Running", deleting=True), pods_left=0), SETTINGS)
    assert stopping.status.status_name == "job_cancel_success" and stopping.status.runGeneration == 1
    d = decide(sp, None, gen(3), stopping.status, obs(T0 + 9000), SETTINGS)
    s = d.status
    assert (s.status_name, s.state, s.attempt, s.jobManagerPod, s.runGeneration) == \
        ("job_init", "Pending", 2, "wc-jm-2", 3)
    assert s.job_id == job_id(UID, 2) and s.savepointPath == "file:///c/chk-4" and not is_finished(s)
    assert d.actions == [Action("ensure_children", 2), Action("create_jobmanager", 2, "wc-jm-2", "file:///c/chk-4")]
    assert d.events == [("Normal", "Rerun", "job_init: new run of the spec's generation 3: JobManager pod wc-jm-2 "
                                            "created (attempt 2), resuming from checkpoint file:///c/chk-4")]
    assert ended(stopping.status) == ("Suspended", "Suspended")
    # A new run after a stop is not suspended any more: Suspended turns False again.
    assert conds(s) == {"Ready": "False", "Complete": "False", "Failed": "False", "Suspended": "False"}


def test_an_ended_job_stays_ended_until_its_spec_changes() -> None:
    s = step(spec(), running(spec()), obs(T0 + 2000, jm("Succeeded", exit_code=0))).status
    assert s.status_name == "job_finish"
    assert step(spec(), s, obs(T0 + 3000)).actions == []  # the same generation: nothing
    d = decide(spec(restartNonce=1), None, gen(2), s, obs(T0 + 4000), SETTINGS)  # DLI's run of a finished job
    assert (d.status.status_name, d.status.attempt, d.status.savepointPath) == ("job_init", 2, None)
    assert verbs(d) == ["ensure_children", "create_jobmanager"]


def test_a_job_edited_while_stopped_waits_for_its_run() -> None:
    stopped = step(spec(suspend=True), FlinkJarJobStatus(), obs(T0)).status
    d = decide(spec(suspend=True, cu_number=3), None, gen(2), stopped, obs(T0 + 1000), SETTINGS)
    assert d.actions == [] and d.status.status_name == "job_cancel_success"
    assert d.status.runGeneration == 1  # unchanged: the run, later, compares the generations
    d = decide(spec(cu_number=3), None, gen(3), d.status, obs(T0 + 2000), SETTINGS)
    assert d.status.status_name == "job_init" and d.status.resources is not None
    assert d.status.resources.taskManager.replicas == 2


def test_a_running_job_whose_spec_changes_is_cancelled_then_runs_the_new_spec() -> None:
    s = step(spec(), running(spec()), obs(T0 + 2000, jm("Running"), RestObs("RUNNING"))).status
    edited = spec(parallel_number=2, cu_number=3)
    d = decide(edited, None, gen(2), s, obs(T0 + 3000, jm("Running"), RestObs("RUNNING"), pods_left=2), SETTINGS)
    assert (d.status.status_name, d.status.reason, verbs(d)) == ("job_canceling", "CancellingJob", ["cancel_job"])
    assert d.status.status_desc == "restarting with the spec's generation 2: the Flink job is being cancelled"
    d = decide(edited, None, gen(2), d.status, obs(T0 + 4000, jm("Succeeded", exit_code=0), pods_left=2), SETTINGS)
    assert verbs(d) == ["delete_jobmanager", "cleanup"] and d.status.status_name == "job_canceling"
    d = decide(edited, None, gen(2), d.status, obs(T0 + 5000, None, pods_left=0), SETTINGS)
    assert (d.status.status_name, d.status.attempt, d.status.runGeneration) == ("job_init", 2, 2)
    assert d.status.resources is not None and d.status.resources.parallelism == 2
    assert verbs(d) == ["ensure_children", "create_jobmanager"]


def test_a_rerun_never_creates_in_the_step_that_deletes_the_old_children() -> None:
    s = running(spec())  # no REST: the children are deleted at once
    d = decide(spec(cu_number=3), None, gen(2), s, obs(T0 + 3000, None, pods_left=0), SETTINGS)
    assert verbs(d) == ["cleanup"] and d.status.status_name == "job_canceling" and d.requeue_after_s == 1
    d = decide(spec(cu_number=3), None, gen(2), d.status, obs(T0 + 4000, None, pods_left=0), SETTINGS)
    assert verbs(d) == ["ensure_children", "create_jobmanager"] and d.status.attempt == 2


def test_a_job_from_before_runs_takes_its_generation_as_its_run() -> None:
    s = running(spec()).model_copy(update={"runGeneration": None})
    d = decide(spec(), None, gen(4), s, obs(T0 + 3000, jm("Running")), SETTINGS)
    assert d.status.runGeneration == 4 and d.status.status_name == "job_running"


def test_phase_of_every_status() -> None:
    assert phase("job_running_exception", True, False) == "Failed"
    assert phase("job_running_exception", False, True) == "Restarting"
    assert phase("job_running_exception", False, False) == "Running"
    assert [phase(n, False, False) for n in ("job_init", "job_submitting", "job_running", "job_submit_fail",
                                             "job_canceling", "job_cancel_success", "job_finish")] == \
        ["Pending", "Pending", "Running", "Failed", "Cancelling", "Cancelled", "Succeeded"]


# ------------------------------------------------------------------------------------ observe helpers


def body(name: str, created: str, path: str | None, reason: str | None = None, ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"u-{name}", "creationTimestamp": created},
            "spec": {"checkpoint_path": path} if path else {}, "status": {"reason": reason} if reason else {}}


def test_checkpoint_conflict_finds_the_older_holder_only() -> None:
    old = body("old", "2026-01-01T00:00:00Z", "obs://b/c/")
    new = body("new", "2026-01-01T00:00:05Z", "obs://b/c")
    assert checkpoint_conflict(new, [old]) == "old"
    assert checkpoint_conflict(old, [new]) is None  # the older one keeps its path
    assert checkpoint_conflict(new, [body("other", "2026-01-01T00:00:00Z", "obs://b/d")]) is None
    assert checkpoint_conflict(new, [body("old", "2026-01-01T00:00:00Z", "obs://b/c", ns="elsewhere")]) is None
    assert checkpoint_conflict(new, [body("r", "2026-01-01T00:00:00Z", "obs://b/c", "CheckpointPathInUse")]) is None
    assert checkpoint_conflict(body("n", "2026-01-01T00:00:00Z", None), [old]) is None
    same_time = body("a", "2026-01-01T00:00:05Z", "obs://b/c")
    assert checkpoint_conflict(new, [same_time]) == "a" and checkpoint_conflict(same_time, [new]) is None


def test_observe_pods_picks_the_current_jobmanager_and_counts_taskmanagers() -> None:
    def p(name: str, role: str, phase: str, deleting: bool = False) -> dict[str, Any]:
        return {"name": name, "role": role, "phase": phase, "created_ms": T0, "deleting": deleting, "app": None}

    jmo, counts, fetch = observe_pods([p("wc-jm-1", "jobmanager", "Failed"), p("wc-jm-2", "jobmanager", "Running"),
                                       p("t1", "taskmanager", "Running"), p("t2", "taskmanager", "Pending"),
                                       p("t3", "taskmanager", "Running", deleting=True)], "wc-jm-2")
    assert jmo is not None and jmo.name == "wc-jm-2" and jmo.phase == "Running"
    assert counts == TaskManagerCounts(running=1, pending=1) and fetch is None
    failed = {**p("t4", "taskmanager", "Pending"), "fetch_failed": "lakejob-oss: fetch failed: s3://b/k: Timeout"}
    assert observe_pods([failed], "wc-jm-2")[2] == ("t4", "lakejob-oss: fetch failed: s3://b/k: Timeout")


def pod_body(init: dict[str, Any], restart_policy: str = "Always") -> dict[str, Any]:
    return {"metadata": {"name": "wc-taskmanager-x", "labels": {"lakejob.io/role": "taskmanager"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"restartPolicy": restart_policy},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "fetch", **init}]}}


def test_a_taskmanagers_failed_fetch_is_seen_while_its_kubelet_retries_it_and_forgotten_once_it_succeeds() -> None:
    failed = {"terminated": {"exitCode": 1, "message": "lakejob-oss: fetch failed: s3://b/k: NoSuchKey"}}
    backing_off = pod_body({"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": failed})
    assert summarize_flink_pod(backing_off)["fetch_failed"] == "lakejob-oss: fetch failed: s3://b/k: NoSuchKey"
    assert "fetch_failed" in summarize_flink_pod(pod_body({"state": failed}))
    done = pod_body({"state": {"terminated": {"exitCode": 0}}, "lastState": failed})
    assert "fetch_failed" not in summarize_flink_pod(done)
    assert "fetch_failed" not in summarize_flink_pod(pod_body({"state": {"running": {}}}))


# ------------------------------------------------------------------------------------ the job's files


def test_a_package_that_cannot_be_named_is_job_submit_fail_before_anything_is_created() -> None:
    d = step(spec(entrypoint="javaQueueStream.jar", smn_topic="alerts"), FlinkJarJobStatus(), obs(T0),
             SETTINGS.model_copy(update={"packages_url": ""}))
    s = d.status
    assert (s.status_name, s.state, s.reason) == ("job_submit_fail", "Failed", "InvalidPackage") and not d.actions
    assert (s.status_desc or "").startswith("entrypoint: 'javaQueueStream.jar' is a DLI package name, and the "
                                            "operator has no package store: set LAKEJOB_PACKAGES_URL")
    assert d.events[0][:2] == ("Warning", "InvalidPackage") and d.notifications[0][0] == "http://hook/alerts"


NO_SUCH_KEY = "lakejob-oss: fetch failed: s3://pkgs/dli/myGroup/test.jar: NoSuchKey (The specified key does not exist.)"
TIMEOUT = "lakejob-oss: fetch failed: s3://pkgs/dli/myGroup/test.jar: ConnectTimeoutError"


def started(sp: FlinkJarJobSpec) -> FlinkJarJobStatus:
    return step(sp, FlinkJarJobStatus(), obs(T0)).status


def fetch_failed_jm(message: str) -> PodObs:
    return jm("Failed", exit_code=1, term_reason="FetchFailed", term_message=message)


def test_a_package_missing_from_the_store_is_job_submit_fail_naming_it_and_never_restarted() -> None:
    sp = spec(dependency_jars=["myGroup/test.jar"], restart_when_exception=True, smn_topic="alerts")
    d = step(sp, started(sp), obs(T0 + 3000, fetch_failed_jm(NO_SUCH_KEY)))
    s = d.status
    assert (s.status_name, s.state, s.reason) == ("job_submit_fail", "Failed", "FetchFailed")
    assert (s.status_desc or "").startswith(
        "JobManager pod wc-jm-1: the job's files could not be fetched before Flink started: dependency_jars[0] "
        "'myGroup/test.jar' (s3://pkgs/dli/myGroup/test.jar): NoSuchKey (The specified key does not exist.). "
        "Upload it to the store"), s.status_desc
    assert s.nextRestartTime is None and verbs(d) == ["cleanup"] and is_finished(s)
    assert d.events[0][:2] == ("Warning", "FetchFailed") and "'myGroup/test.jar'" in d.events[0][2]
    assert d.notifications


def test_a_failed_fetch_of_the_jobmanager_restarts_only_with_restart_when_exception() -> None:
    sp = spec(dependency_jars=["myGroup/test.jar"], restart_when_exception=True)
    d = step(sp, started(sp), obs(T0 + 3000, fetch_failed_jm(TIMEOUT)))
    assert (d.status.status_name, d.status.state, d.status.reason) == \
        ("job_running_exception", "Restarting", "FetchFailed")
    assert "dependency_jars[0] 'myGroup/test.jar' (s3://pkgs/dli/myGroup/test.jar): ConnectTimeoutError" in \
        (d.status.status_desc or "")
    plain = spec(dependency_jars=["myGroup/test.jar"])
    d = step(plain, started(plain), obs(T0 + 3000, fetch_failed_jm(TIMEOUT)))
    assert (d.status.status_name, d.status.reason) == ("job_submit_fail", "FetchFailed") and is_finished(d.status)
    assert "set restart_when_exception: true" in (d.status.status_desc or "")


def test_a_taskmanagers_failed_fetch_while_starting_is_reported_and_waited_for_unless_missing() -> None:
    sp = spec(dependency_jars=["myGroup/test.jar"])
    s = step(sp, started(sp), obs(T0 + 1000, jm("Running"))).status
    s.status_name = "job_submitting"  # e.g. Flink INITIALIZING while the TaskManager cannot start
    d = step(sp, s, obs(T0 + 2000, jm("Running"), RestObs("RUNNING"), taskmanager_fetch=("wc-tm-a", TIMEOUT)))
    assert (d.status.status_name, d.status.reason) == ("job_submitting", "FetchFailed") and not d.actions
    assert "TaskManager pod wc-tm-a: the job's files could not be fetched" in (d.status.status_desc or "")
    assert d.events[0][0] == "Warning" and d.requeue_after_s == SETTINGS.flink_poll_interval_s
    again = step(sp, d.status, obs(T0 + 3000, jm("Running"), RestObs("RUNNING"),
                                   taskmanager_fetch=("wc-tm-a", TIMEOUT)))
    assert not again.events  # unchanged: no Event per poll
    d = step(sp, d.status, obs(T0 + 4000, jm("Running"), RestObs("RUNNING"),
                               taskmanager_fetch=("wc-tm-a", NO_SUCH_KEY)))
    assert (d.status.status_name, d.status.reason) == ("job_submit_fail", "FetchFailed")
    assert verbs(d) == ["delete_jobmanager", "cleanup"]


def test_a_taskmanagers_failed_fetch_once_running_is_left_to_flink() -> None:
    sp = spec(dependency_jars=["myGroup/test.jar"])
    s = running(sp)
    d = step(sp, s, obs(T0 + 5000, jm("Running"), taskmanager_fetch=("wc-tm-a", NO_SUCH_KEY)))
    assert d.status.status_name == "job_running" and not d.actions
