"""FlinkJarJob's state machine: decide(what we know) → (new status, actions, Events, notifications).

Pure, no I/O. Called by lakejob.controllers.flinkjarjob after it has observed the JobManager pod,
the TaskManager pods and (when it answers) the JobManager's REST API. One function per state;
the states are DLI's Flink job statuses:

    (new) → job_init → job_submitting → job_running → job_finish
       │                    │   ▲    │       │
       │                    │   └────┼── job_running_exception (Flink restarting tasks, REST says RESTARTING)
       │                    ▼        ▼
       │             job_running_exception ──(restart_when_exception, under resume_max_num/hour)──→ job_submitting
       │                    └── otherwise terminal: the job failed, status_desc says why
       ├──→ job_submit_fail  (invalid spec, files that cannot be named or fetched, checkpoint_path
       │                      already used, JobManager never scheduled)
    any non-terminal → job_canceling → job_cancel_success   (spec.suspend: true; a job whose REST API
                                                              answers is cancelled in Flink first)

A run is the spec's generation the job started from (status.runGeneration). A newer one — the spec
edited (DLI's update), suspend set back to false (DLI's run), restartNonce changed — starts a new
run: an ended job goes to job_init at once; a live one is cancelled as a stop is (job_canceling),
then started again with the new spec instead of ending. With resume_checkpoint a new run resumes
from the newest completed checkpoint (kept on cancellation).

A job whose queue_name goes through Kueue (docs/queues.md) waits in job_submitting (phase Pending)
with no JobManager, TaskManager, ConfigMap or Service until Kueue admits its run's Workload
(`_admission`, in front of the live states); a preemption deletes what the run created, as a stop
does, hands the quota back once the pods are gone and waits again (reason Preempted, a Normal Event:
not a failure, not counted against resume_max_num), then resumes as a restart does (from the newest
checkpoint with resume_checkpoint). The Workload is Finished when the job ends; a new run gets a new
one (admission.gate tells them apart by the run label).

What the job is doing comes from the REST API when it answers and from the JobManager pod's phase
otherwise (a running pod is taken as a running job; the JobManager exits 0 when the job finished
and 1443 when it failed). A `fetch` init container that failed (render.packages: the job's files
from the package store) is reported with the package's name. Status is the write-ahead log: a new attempt (attempt, jobManagerPod,
job_id, restart time) is recorded before its JobManager is created, so a crash never repeats it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lakejob import sizing
from lakejob.controllers import admission
from lakejob.controllers.admission import UNQUEUED, Route, WorkloadObs
from lakejob.controllers.decide_common import Meta as Meta  # re-exported
from lakejob.controllers.decide_common import MESSAGE_BYTES, REASON_BYTES, Outcome, clip, iso, job_conditions
from lakejob.models.flinkjarjob import (
    HOUR_MS,
    TERMINAL_PHASES,
    FlinkJarJobSpec,
    FlinkJarJobStatus,
    FlinkResources,
    PodResources,
    TaskManagerCounts,
    TaskManagerResources,
)
from lakejob.render.flink import Names, files_of, job_id, problem, resolve_sizing
from lakejob.render.packages import FETCH_FAILED, beyond_retry, explain_failure
from lakejob.settings import Settings

# Flink's exit code for an application whose job FAILED (ApplicationStatus.FAILED).
FLINK_FAILED_EXIT = 1443
EVENT_TYPE = "io.lakejob.flinkjarjob.failed"
# How long a stop waits for Flink to cancel the job (REST: CANCELED, or the JobManager exits) before
# it deletes the pods anyway.
CANCEL_TIMEOUT_MS = 60_000
# How long a JobManager whose job Flink reports FINISHED is given to exit by itself (keeping its
# log) before it is deleted.
FINISH_EXIT_MS = 30_000
# A checkpoint path the REST API reports is kept only up to this length (Linux's PATH_MAX): a longer
# one is no path a restart could resume from, and a cut one would be a wrong one.
CHECKPOINT_BYTES = 4096


@dataclass(frozen=True)
class PodObs:
    """What the JobManager pod of the current attempt shows."""

    name: str
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    created_ms: int
    deleting: bool = False
    unschedulable: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    exit_code: int | None = None
    term_reason: str | None = None
    term_message: str | None = None


@dataclass(frozen=True)
class RestObs:
    """The job as the JobManager's REST API reports it (/jobs/overview, checkpoints, exceptions)."""

    state: str  # Flink's JobStatus: INITIALIZING, CREATED, RUNNING, RESTARTING, FAILING, FAILED, FINISHED, …
    last_checkpoint: str | None = None
    exception: str | None = None


@dataclass(frozen=True)
class Observed:
    now_ms: int
    jobmanager: PodObs | None
    taskmanagers: TaskManagerCounts
    rest: RestObs | None = None  # None: not polled, or the REST API did not answer
    pods_left: int = 0  # pods of this job that still exist (a cancel is done when none are)
    checkpoint_conflict: str | None = None  # an older FlinkJarJob here with the same checkpoint_path
    # A TaskManager pod whose `fetch` init container failed (the kubelet retries it): (pod, its message).
    taskmanager_fetch: tuple[str, str] | None = None
    route: Route = UNQUEUED  # where the job's queue_name leads (controllers.queueing.route)
    workload: WorkloadObs | None = None  # its Workload (status.workload), as Kueue left it


Verb = Literal["ensure_children", "create_jobmanager", "delete_jobmanager", "cleanup", "cancel_job",
               "ensure_workload", "release_workload", "finish_workload"]


@dataclass(frozen=True)
class Action:
    verb: Verb
    attempt: int = 0
    pod: str = ""
    savepoint: str | None = None
    reason: str = ""  # finish_workload: Succeeded | Failed


@dataclass
class Decision:
    status: FlinkJarJobStatus
    actions: list[Action] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (url, CloudEvent data)
    requeue_after_s: float | None = None


def is_finished(status: FlinkJarJobStatus) -> bool:
    return status.state in TERMINAL_PHASES


def outcome(phase: str, reason: str) -> Outcome:
    """The conditions' outcome of a phase: Cancelled is Suspended when spec.suspend asked for it
    (reason Suspended), and Failed when the job was cancelled in Flink itself (JobCanceled), which
    ended it without its work done and without the spec asking."""
    if phase == "Cancelled":
        return "Suspended" if reason == "Suspended" else "Failed"
    return "Complete" if phase == "Succeeded" else "Failed" if phase == "Failed" else None


def phase(status_name: str, final: bool, restart_pending: bool) -> str:
    """lakejob's lifecycle phase of a DLI status (job_running_exception is three things in DLI)."""
    if status_name == "job_running_exception":
        return "Failed" if final else "Restarting" if restart_pending else "Running"
    return {"job_init": "Pending", "job_submitting": "Pending", "job_running": "Running",
            "job_submit_fail": "Failed", "job_canceling": "Cancelling", "job_cancel_success": "Cancelled",
            "job_finish": "Succeeded"}[status_name]


def resources(sz: sizing.FlinkSizing) -> FlinkResources:
    return FlinkResources(
        parallelism=sz.parallelism,
        jobManager=PodResources(cus=sz.manager_cu_number, cpu=sizing.k8s_millicpu(sz.jobmanager_millicpu),
                                memory=sizing.k8s_quantity_mib(sz.jobmanager_memory_mib)),
        taskManager=TaskManagerResources(cus=sz.tm_cus, cpu=sizing.k8s_millicpu(sz.taskmanager_millicpu),
                                         memory=sizing.k8s_quantity_mib(sz.taskmanager_memory_mib),
                                         replicas=sz.taskmanagers, slots=sz.slots),
        unusedCUs=sz.unused_cus)


class _Step:
    """Accumulates one decision: status edits with their conditions and Event, and actions."""

    def __init__(self, meta: Meta, status: FlinkJarJobStatus, obs: Observed, settings: Settings):
        self.meta, self.obs, self.settings = meta, obs, settings
        self.d = Decision(status=status.model_copy(deep=True))

    @property
    def s(self) -> FlinkJarJobStatus:
        return self.d.status

    def transition(self, state: str, reason: str, desc: str, *, warning: bool = False, final: bool = False) -> None:
        s, now = self.s, self.obs.now_ms
        # Bounded before the comparison, so an unchanged long description is no new transition.
        reason, desc = clip(reason, REASON_BYTES), clip(desc, MESSAGE_BYTES)
        if s.status_name == state and s.reason == reason and s.status_desc == desc:
            return
        s.status_name, s.reason, s.status_desc, s.update_time = state, reason, desc, now
        s.state = phase(state, final, s.nextRestartTime is not None)
        self.conditions()
        self.d.events.append(("Warning" if warning else "Normal", reason, f"{state}: {desc}" if desc else state))

    def conditions(self) -> None:
        """Set the conditions from the status: on every transition, and on each pass over a finished
        job (an older operator set Complete on failures too)."""
        s = self.s
        if s.status_name is None or s.state is None:
            return
        s.conditions = job_conditions(s.conditions, ready=s.status_name == "job_running",
                                      outcome=outcome(s.state, s.reason or ""), reason=s.reason or "",
                                      message=s.status_desc or "", generation=self.meta.generation,
                                      now=iso(self.obs.now_ms))

    def act(self, verb: Verb, attempt: int = 0, pod: str = "", savepoint: str | None = None,
            reason: str = "") -> None:
        self.d.actions.append(Action(verb, attempt, pod, savepoint, reason))

    def notify(self, spec: FlinkJarJobSpec | None) -> None:
        """A failure: a CloudEvent to the URL smn_topic maps to (the Event is the transition's own)."""
        if spec is None or spec.smn_topic is None:
            return
        url = self.settings.notification_topics.get(spec.smn_topic)
        if url is None:
            self.d.events.append(("Warning", "NotificationTopicUnknown",
                                  f"smn_topic {spec.smn_topic!r} is not in the operator's LAKEJOB_NOTIFICATION_TOPICS; "
                                  "no notification sent"))
            return
        s = self.s
        self.d.notifications.append((url, {
            "name": self.meta.name, "namespace": self.meta.namespace, "job_name": s.name, "job_id": s.job_id,
            "status_name": s.status_name, "status_desc": s.status_desc, "reason": s.reason,
            "attempt": s.attempt, "restarts": s.restarts or 0, "final": is_finished(s), "smn_topic": spec.smn_topic}))


def decide(spec: FlinkJarJobSpec | None, spec_error: str | None, meta: Meta, status: FlinkJarJobStatus,
           obs: Observed, settings: Settings) -> Decision:
    step = _Step(meta, status, obs, settings)
    _decide(step, spec, spec_error)
    if is_finished(step.s):
        # Every end (success, failure, stop); a crash between the final status and the Workload's
        # Finished lands here too.
        _finish_workload(step)
    return step.d


def _decide(step: _Step, spec: FlinkJarJobSpec | None, spec_error: str | None) -> None:
    s, meta, obs = step.s, step.meta, step.obs
    s.observedGeneration = meta.generation
    if s.status_name is None:
        _new(step, spec, spec_error)
        return
    if s.runGeneration is None:  # made by an operator before runs: its first run is the generation it has
        s.runGeneration = meta.generation
    rerun = spec is not None and not spec.suspend and s.runGeneration != meta.generation
    if is_finished(s):
        if rerun:
            assert spec is not None
            _run(step, spec)
        else:
            step.conditions()
        return  # final until the spec changes (and is not suspended)
    s.taskManagers = obs.taskmanagers
    if obs.rest is not None:
        s.flinkState = clip(obs.rest.state, REASON_BYTES)  # a JobStatus name, unless the answer is junk
        checkpoint = obs.rest.last_checkpoint
        if checkpoint and len(checkpoint.encode("utf-8", "surrogatepass")) <= CHECKPOINT_BYTES:
            s.last_checkpoint = checkpoint
    # Restarts older than an hour no longer count against resume_max_num.
    if s.restart_times:
        s.restart_times = [t for t in s.restart_times if t > obs.now_ms - HOUR_MS] or None
    if s.status_name == "job_canceling" or (spec is not None and spec.suspend) or rerun:
        _canceling(step, spec)
    elif spec is None:
        # Only reachable if admission was bypassed (e.g. the CRD was replaced): stop, don't guess.
        _fail_for_good(step, None, "InvalidSpec", spec_error or "invalid spec",
                       "Fix the spec and re-create the job.")
    elif not _admission(step, spec):
        pass  # waiting for Kueue, preempted, or just admitted and started
    elif s.status_name == "job_running_exception" and s.nextRestartTime is not None:
        _restarting(step, spec)
    else:
        _follow(step, spec)


# ------------------------------------------------------------------------------------ states


def _new(step: _Step, spec: FlinkJarJobSpec | None, spec_error: str | None) -> None:
    s, meta, obs = step.s, step.meta, step.obs
    s.create_time = meta.created_ms
    s.restarts = 0
    s.runGeneration = meta.generation
    if spec is None:
        step.transition("job_submit_fail", "InvalidSpec", f"{spec_error or 'invalid spec'}. Fix the spec and "
                        "re-create the job.", warning=True)
        return
    if not _runnable(step, spec, "re-create the job"):
        return
    if obs.checkpoint_conflict is not None:
        step.transition("job_submit_fail", "CheckpointPathInUse",
                        f"checkpoint_path {spec.checkpoint_path} is already used by FlinkJarJob {obs.checkpoint_conflict} "
                        "in this namespace; checkpoint paths must be unique. Choose another checkpoint_path and "
                        "re-create the job.", warning=True)
        step.notify(spec)
        return
    if spec.suspend:
        step.transition("job_cancel_success", "Suspended", "created with suspend: true; nothing was started")
        return
    if obs.route.queued:
        step.transition("job_submitting", "Queued", f"waiting for admission to queue {spec.queue_name}")
        _admission(step, spec)
        return
    _start_attempt(step, 1, None)
    step.transition("job_init", "JobManagerCreated", f"JobManager pod {s.jobManagerPod} created (attempt 1)")


def _start_attempt(step: _Step, attempt: int, savepoint: str | None) -> None:
    s = step.s
    s.attempt = attempt
    s.jobManagerPod = Names.of(step.meta.name).jobmanager(attempt)
    s.job_id = job_id(step.meta.uid, attempt)
    s.savepointPath = savepoint
    s.start_time = step.obs.now_ms
    s.nextRestartTime = None
    s.flinkState = None
    step.act("ensure_children", attempt)
    step.act("create_jobmanager", attempt, s.jobManagerPod, savepoint)


def _runnable(step: _Step, spec: FlinkJarJobSpec, then: str) -> bool:
    """What a run (the first or a new one) records of its spec, and whether it can start: its CU
    arithmetic (had admission been bypassed) and files the operator can name; else job_submit_fail
    with a notification, nothing created, the message ending in `then` (what the user does next)."""
    s = step.s
    s.name, s.queue_name = spec.name, spec.queue_name
    try:
        s.resources = resources(resolve_sizing(spec, step.settings))
    except ValueError as e:
        step.transition("job_submit_fail", "InvalidSpec", f"{e}. Fix the CU numbers and {then}.", warning=True)
        step.notify(spec)
        return False
    if (refused := problem(spec, step.settings)) is not None:
        step.transition("job_submit_fail", *refused, warning=True)
        step.notify(spec)
        return False
    return True


def _run(step: _Step, spec: FlinkJarJobSpec) -> None:
    """A new run of an ended job: the spec's new generation from job_init, as a first run does, from
    the newest checkpoint when resume_checkpoint says so. Automatic restarts count afresh."""
    s, meta = step.s, step.meta
    s.runGeneration = meta.generation
    s.restart_times = None
    if not _runnable(step, spec, "edit the job again"):
        return
    s.workload = None  # a new run, a new Workload (the previous run's is replaced: queueing's ensure)
    if step.obs.route.queued:
        s.jobManagerPod, s.nextRestartTime = None, None
        step.transition("job_submitting", "Queued", f"new run of the spec's generation {meta.generation}: waiting "
                        f"for admission to queue {spec.queue_name}")
        _admission(step, spec)
        return
    savepoint = s.last_checkpoint if spec.resume_checkpoint else None
    _start_attempt(step, (s.attempt or 0) + 1, savepoint)
    how = f", resuming from checkpoint {savepoint}" if savepoint else ""
    step.transition("job_init", "Rerun", f"new run of the spec's generation {meta.generation}: JobManager pod "
                    f"{s.jobManagerPod} created (attempt {s.attempt}){how}")


def _admission(step: _Step, spec: FlinkJarJobSpec) -> bool:
    """Kueue's gate in front of the live states (admission.gate): True when the job may go on (it
    holds its run's admission, or it is in no queue); else it waits, and this pass did what waiting
    needs. Waiting means job_submitting with no JobManager of the current attempt (jobManagerPod
    unset); admitted, the run starts (again, after a preemption: from its newest checkpoint with
    resume_checkpoint, as a restart does, but not counted as one)."""
    s, obs, meta = step.s, step.obs, step.meta
    waiting = s.status_name == "job_submitting" and s.jobManagerPod is None
    outcome = admission.gate(s, step.d, "FlinkJarJob", meta.name, meta.generation, obs.now_ms, obs.route,
                             obs.workload, waiting, lambda: step.act("ensure_workload"), run=s.runGeneration)
    if outcome == "preempted":
        assert obs.workload is not None
        _preempted(step, obs.workload)
    elif outcome == "admitted" or (outcome == "go" and waiting):
        # (go while waiting: it waited for a queue that no longer applies — LAKEJOB_QUEUEING changed,
        # Kueue gone under `auto` — and starts unqueued.)
        savepoint = s.last_checkpoint if spec.resume_checkpoint else None
        _start_attempt(step, (s.attempt or 0) + 1, savepoint)
        how = f", resuming from checkpoint {savepoint}" if savepoint else ""
        after = " after admission" if outcome == "admitted" else " (not queued)"
        step.transition("job_submitting", "JobManagerCreated", f"JobManager pod {s.jobManagerPod} created "
                        f"(attempt {s.attempt}){after}{how}")
        return False
    return outcome == "go"


def _preempted(step: _Step, wl: WorkloadObs) -> None:
    """Kueue evicted the run's Workload: delete the JobManager, the TaskManagers and the rest, as a
    stop does (the checkpoints stay), then, once no pod is left, hand the quota back
    (release_workload) and wait in job_submitting to be admitted again. Not a failure, no restart."""
    s, obs, meta = step.s, step.obs, step.meta
    first = s.reason != "Preempted"  # first sight of this eviction
    why = admission.preempted(s, wl, meta.generation, obs.now_ms, first)
    if first:
        s.nextRestartTime = None
        step.transition("job_submitting", "Preempted", f"{why}; the JobManager and TaskManagers are deleted and the "
                        "job waits to be admitted again")
    if obs.pods_left != 0 or first:
        _cleanup(step, keep_ended_jobmanager=False)  # idempotent: again while pods are left (a lost pass)
        step.d.requeue_after_s = 2  # the pods' deletion events wake it too
        return
    step.act("release_workload")
    s.jobManagerPod = None


def _finish_workload(step: _Step) -> None:
    """The job ended: its run's Workload Finished (Kueue frees the quota), once."""
    s = step.s
    if admission.to_finish(s, step.obs.workload, s.runGeneration):
        step.act("finish_workload", reason="Succeeded" if s.state == "Succeeded" else "Failed")


View = Literal["pending", "submitting", "running", "restarting", "failed", "finished", "canceled", "missing",
               "unchanged"]


def _view(step: _Step) -> tuple[View, str, str]:
    """(what the job is doing, reason, description), from the JobManager pod and the REST API."""
    jm, rest = step.obs.jobmanager, step.obs.rest
    if jm is None:
        return "missing", "JobManagerPodMissing", f"JobManager pod {step.s.jobManagerPod} disappeared"
    if jm.phase == "Failed" or jm.deleting:
        code = "unknown" if jm.exit_code is None else str(jm.exit_code)
        if jm.exit_code == FLINK_FAILED_EXIT:
            why = "the Flink job failed (the JobManager exited with 1443)"
        elif jm.deleting:
            why = f"JobManager pod {jm.name} was deleted"
        else:
            why = f"JobManager pod {jm.name} failed with exit code {code}"
        detail = (rest.exception if rest and rest.exception else None) or jm.term_message or jm.term_reason
        return "failed", jm.term_reason or ("JobManagerDeleted" if jm.deleting else "JobManagerFailed"), \
            why + (f": {detail}" if detail else "")
    if jm.phase == "Succeeded":
        return "finished", "JobFinished", f"the job finished (JobManager pod {jm.name} exited 0)"
    if jm.phase != "Running":
        return "pending", "Pending", f"JobManager pod {jm.name} is {jm.phase}"
    if rest is None:
        if step.s.flinkState is not None:
            # The REST API has answered this attempt before (flinkState is reset per attempt): one
            # silent poll is a JobManager too busy to answer in time (seen on a loaded real node),
            # not news. Taken as "running" it flipped the reason and sent an Event per missed poll.
            return "unchanged", "", ""
        # KWOK, or REST unreachable: a running JobManager is taken as a running job.
        return "running", "JobManagerRunning", ""
    state = rest.state
    if state == "RUNNING":
        return "running", "JobRunning", ""
    if state in ("RESTARTING", "FAILING"):
        return "restarting", "JobRestarting", f"Flink reports the job {state}" + \
            (f": {rest.exception}" if rest.exception else "") + \
            ". Flink is recovering it; check the TaskManagers and the job's exception history."
    if state == "FAILED":
        return "failed", "JobFailed", "Flink reports the job FAILED" + (f": {rest.exception}" if rest.exception else "")
    if state == "FINISHED":
        return "finished", "JobFinished", "the job finished"
    if state in ("CANCELLING", "CANCELED"):
        return "canceled", "JobCanceled", f"the job was cancelled in Flink ({state})"
    return "submitting", "JobSubmitting", f"Flink reports the job {state}"


def _follow(step: _Step, spec: FlinkJarJobSpec) -> None:
    """job_init, job_submitting, job_running, and job_running_exception while Flink restarts in place."""
    s, obs, settings = step.s, step.obs, step.settings
    view, reason, desc = _view(step)
    waited_s = (obs.now_ms - (s.start_time or obs.now_ms)) / 1000
    starting = s.status_name in ("job_init", "job_submitting")
    jm = obs.jobmanager
    if view == "failed" and jm is not None and jm.term_reason == FETCH_FAILED:
        _fetch_failed(step, spec, f"JobManager pod {jm.name}", jm.term_message, retrying=False)
        return
    # Once the job runs, a TaskManager that cannot start is Flink's to report (it fails the job).
    if starting and obs.taskmanager_fetch is not None and view not in ("failed", "finished", "canceled"):
        _fetch_failed(step, spec, f"TaskManager pod {obs.taskmanager_fetch[0]}", obs.taskmanager_fetch[1],
                      retrying=True)
        return
    if view == "missing" and not starting:
        _failed(step, spec, reason, desc)
        return
    if view == "missing" and waited_s < settings.scheduling_timeout_s:
        # Recorded but not (yet) seen: create it (idempotent; a lost create after a crash lands here).
        assert s.attempt is not None
        step.act("ensure_children", s.attempt)
        step.act("create_jobmanager", s.attempt, s.jobManagerPod or "", s.savepointPath)
        step.d.requeue_after_s = 5
        return
    if view in ("missing", "pending") and waited_s >= settings.scheduling_timeout_s:
        jm = obs.jobmanager
        why = (jm.unschedulable or jm.waiting_message or jm.waiting_reason) if jm else None
        _submit_fail(step, spec, "FailedScheduling" if jm and jm.unschedulable else "StartTimeout",
                     f"the JobManager was not running after {settings.scheduling_timeout_s}s"
                     + (f": {why}" if why else "") + ". Free resources in the namespace or lower cu_number.")
        return
    if view == "unchanged":
        step.d.requeue_after_s = settings.flink_poll_interval_s
    elif view in ("pending", "missing"):
        if s.status_name == "job_init":
            step.transition("job_submitting", "JobManagerPending", desc)
        step.d.requeue_after_s = max(1.0, min(settings.scheduling_timeout_s - waited_s + 0.5,
                                              settings.resync_interval_s))
    elif view == "submitting":
        step.transition("job_submitting", reason, desc)
        step.d.requeue_after_s = settings.flink_poll_interval_s
    elif view == "running":
        step.transition("job_running", reason, desc)
        step.d.requeue_after_s = settings.flink_poll_interval_s
    elif view == "restarting":
        step.transition("job_running_exception", reason, desc, warning=True)
        step.d.requeue_after_s = settings.flink_poll_interval_s
    elif view == "failed":
        _failed(step, spec, reason, desc)
    elif view == "finished" and jm is not None and jm.phase == "Running" and \
            not (s.reason == "JobFinishing" and obs.now_ms - (s.update_time or obs.now_ms) >= FINISH_EXIT_MS):
        # The JobManager of a finished application exits 0 by itself (Flink shuts the cluster down),
        # a moment after the REST API says FINISHED: deleted then, its log (the job's main()) was lost.
        step.transition("job_running", "JobFinishing", "Flink reports the job FINISHED; waiting for the JobManager "
                        "to exit")
        # The pod's exit wakes the next pass (its watch); the timer is only the deadline.
        step.d.requeue_after_s = max(1.0, (FINISH_EXIT_MS - (obs.now_ms - (s.update_time or obs.now_ms))) / 1000)
    elif view == "finished":
        step.transition("job_finish", reason, desc)
        _cleanup(step, keep_ended_jobmanager=True)  # a JobManager still running after FINISH_EXIT_MS is stopped
    else:  # canceled in Flink itself
        step.transition("job_cancel_success", reason, desc)
        _cleanup(step, keep_ended_jobmanager=True)


def _fetch_failed(step: _Step, spec: FlinkJarJobSpec, pod: str, message: str | None, retrying: bool) -> None:
    """A `fetch` init container failed: Flink never started in that pod. The message names the spec
    field, the name as given, the object and the store's reason (packages.explain_failure). A failed
    JobManager pod is kept: `kubectl logs -c fetch` shows the whole story."""
    why = explain_failure(message or "", files_of(spec, step.settings).fetches)
    desc = f"{pod}: the job's files could not be fetched before Flink started: {why}"
    if beyond_retry(why):  # a retry would find it missing too
        _submit_fail(step, spec, FETCH_FAILED, f"{desc}. Upload it to the store or correct the name, and re-create "
                     "the job.", keep_ended_jobmanager=True)
    elif retrying:  # a TaskManager's: its ReplicaSet's kubelet retries the fetch, backing off
        step.transition("job_submitting", FETCH_FAILED, f"{desc}; the TaskManager retries it", warning=True)
        step.d.requeue_after_s = step.settings.flink_poll_interval_s
    elif spec.restart_when_exception:
        _failed(step, spec, FETCH_FAILED, desc)
    else:
        _submit_fail(step, spec, FETCH_FAILED, f"{desc}. Fix the store and re-create the job, or set "
                     "restart_when_exception: true to retry automatically.", keep_ended_jobmanager=True)


def _failed(step: _Step, spec: FlinkJarJobSpec, reason: str, desc: str) -> None:
    """The job failed: restart it if allowed and under resume_max_num in the sliding hour, else end it."""
    s, obs, settings = step.s, step.obs, step.settings
    _stop_jobmanager(step)
    if not spec.restart_when_exception:
        _fail_for_good(step, spec, reason, desc, "Fix the cause and re-create the job, or set "
                       "restart_when_exception: true to redeploy it automatically.")
        return
    at = obs.now_ms + int(settings.flink_restart_delay_s * 1000)
    recent = [t for t in s.restart_times or [] if t > at - HOUR_MS]
    cap = spec.resume_max_num if spec.resume_max_num is not None else -1
    if cap != -1 and len(recent) >= cap:
        times = ", ".join(iso(t) for t in recent)
        _fail_for_good(step, spec, reason, f"{desc}; not restarted: resume_max_num is {cap} restart(s) per hour and "
                       f"{len(recent)} were made in the last hour (at {times})",
                       "Fix the cause and re-create the job, or raise resume_max_num.")
        return
    s.nextRestartTime = at
    limit = "unlimited" if cap == -1 else str(cap)
    step.transition("job_running_exception", reason,
                    f"{desc}; restarting in {settings.flink_restart_delay_s:g}s (restart {len(recent) + 1} in the "
                    f"last hour, resume_max_num {limit})", warning=True)
    step.notify(spec)
    step.d.requeue_after_s = settings.flink_restart_delay_s


def _restarting(step: _Step, spec: FlinkJarJobSpec) -> None:
    s, obs = step.s, step.obs
    assert s.nextRestartTime is not None and s.attempt is not None
    if obs.now_ms < s.nextRestartTime:
        step.d.requeue_after_s = (s.nextRestartTime - obs.now_ms) / 1000
        return
    # Recorded at the moment of the restart: every restart then has fewer than resume_max_num others
    # in the hour before it, so no sliding hour holds more than resume_max_num.
    s.restart_times = [*(s.restart_times or []), obs.now_ms]
    s.restarts = (s.restarts or 0) + 1
    old = obs.jobmanager
    if old is not None and not old.deleting:
        # The failed attempt's ended pod: its failure is in the Event and status_desc already (with
        # its last log lines), and kept, a job failing again and again would keep a pod per restart.
        step.act("delete_jobmanager", pod=old.name)
    savepoint = s.last_checkpoint if spec.resume_checkpoint else None
    _start_attempt(step, s.attempt + 1, savepoint)
    if savepoint:
        how = f", resuming from checkpoint {savepoint}"
    elif spec.resume_checkpoint:
        how = ", from the initial state: no completed checkpoint was reported by the REST API"
    else:
        how = ""
    step.transition("job_submitting", "Restarted", f"restart {s.restarts}: JobManager pod {s.jobManagerPod} "
                    f"created (attempt {s.attempt}){how}")


def _canceling(step: _Step, spec: FlinkJarJobSpec | None) -> None:
    """spec.suspend: DLI's stop. When the job's REST API has answered, Flink cancels the job first
    (reason CancellingJob), so it ends CANCELED with its checkpoints kept as configured, and the
    JobManager exits by itself; then, or at once without REST (KWOK), or after CANCEL_TIMEOUT_MS,
    every child is deleted (reason Suspended), and job_cancel_success once no pod is left. A new
    run (a changed spec, not suspended) is cancelled the same way, then started instead of ending."""
    s, obs = step.s, step.obs
    jm, rest = obs.jobmanager, obs.rest
    doing = "stopping" if spec is None or spec.suspend else \
        f"restarting with the spec's generation {step.meta.generation}"
    if s.status_name != "job_canceling":
        s.nextRestartTime = None
        if jm is not None and jm.phase == "Running" and not jm.deleting and s.flinkState is not None:
            step.transition("job_canceling", "CancellingJob", f"{doing}: the Flink job is being cancelled")
            step.act("cancel_job")
            step.d.requeue_after_s = 1
            return
        step.transition("job_canceling", "Suspended", f"{doing}: the JobManager and TaskManagers are being deleted")
        _cleanup(step, keep_ended_jobmanager=False)
    elif s.reason == "CancellingJob":
        ended = jm is None or jm.deleting or jm.phase not in ("Pending", "Running", "Unknown")
        if rest is not None and rest.state in ("CANCELED", "FINISHED", "FAILED"):
            how = f"Flink reports the job {rest.state}"
        elif ended:
            how = "its JobManager ended" + (f" with exit code {jm.exit_code}" if jm and jm.exit_code is not None else "")
        elif obs.now_ms - (s.update_time or obs.now_ms) >= CANCEL_TIMEOUT_MS:
            how = f"Flink did not cancel it within {CANCEL_TIMEOUT_MS // 1000}s"
        else:
            step.d.requeue_after_s = 1
            return
        step.transition("job_canceling", "Suspended", f"{doing}: {how}; the JobManager and TaskManagers are "
                        "being deleted")
        _cleanup(step, keep_ended_jobmanager=False)
    if obs.pods_left != 0:
        step.d.requeue_after_s = 2
    elif spec is not None and not spec.suspend:
        if any(a.verb == "cleanup" for a in step.d.actions):
            # The children are deleted after this step's creates would run (controllers.flinkjarjob's
            # apply): the new run starts on the next pass, with the deletions done.
            step.d.requeue_after_s = 1
        else:
            _run(step, spec)
    else:
        step.transition("job_cancel_success", "Suspended", "stopped by spec.suspend; every pod was removed")


def _submit_fail(step: _Step, spec: FlinkJarJobSpec, reason: str, desc: str,
                 keep_ended_jobmanager: bool = False) -> None:
    step.transition("job_submit_fail", reason, desc, warning=True)
    _cleanup(step, keep_ended_jobmanager)
    step.notify(spec)


def _fail_for_good(step: _Step, spec: FlinkJarJobSpec | None, reason: str, desc: str, suggestion: str) -> None:
    step.s.nextRestartTime = None
    step.transition("job_running_exception", reason, f"{desc}. {suggestion}", warning=True, final=True)
    _cleanup(step, keep_ended_jobmanager=True)
    step.notify(spec)


def _stop_jobmanager(step: _Step) -> None:
    jm = step.obs.jobmanager
    if jm is not None and not jm.deleting and jm.phase in ("Pending", "Running", "Unknown"):
        step.act("delete_jobmanager", pod=jm.name)


def _cleanup(step: _Step, keep_ended_jobmanager: bool) -> None:
    """Delete what a finished job no longer needs: the TaskManagers, Service and ConfigMap, and the
    JobManager unless it ended by itself and is kept for its logs."""
    if keep_ended_jobmanager:
        _stop_jobmanager(step)
    elif step.obs.jobmanager is not None and not step.obs.jobmanager.deleting:
        step.act("delete_jobmanager", pod=step.obs.jobmanager.name)
    step.act("cleanup")
