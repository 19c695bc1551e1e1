"""DagJob's state machine: decide(what we know) → (new status, actions, Events, notifications). Pure.

Called by lakejob.controllers.dagjob after it has observed the tasks' Jobs and child resources.
BatchCompute's states, for the job and for every task:

    (new) → Waiting → Running → Finished                 (every task Finished; AutoRelease deletes it)
       │       │          └──→ Failed                    (a task failed; see JobFailOnInstanceFail)
       │       └── (waits for a slot: operator-wide limit, higher Priority first)
       └──→ Failed                                       (invalid spec, QuotaExhausted.*)
    Waiting/Running ⇄ Stopped                            (spec.suspend true / false)

A task starts when all its upstream tasks are Finished. JobFailOnInstanceFail true: the first
failed task (an instance out of retries) stops the running tasks and fails the job; false: the
failed task's downstream tasks are skipped (Stopped), the others run on, and the job ends Failed.
A task's run and child name are recorded in status with the action that creates it, and the name
follows from the run alone, so whichever of the two lands first, a restarted operator re-issues
the same idempotent create instead of starting a new run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from lakejob import dag_graph
from lakejob.controllers.admission import ADMITTED, UNQUEUED, Route, WorkloadObs, gate, preempted
from lakejob.controllers.decide_common import Meta as Meta  # re-exported
from lakejob.controllers.decide_common import MESSAGE_BYTES, REASON_BYTES, Outcome, clip, job_conditions
from lakejob.models.dagjob import TERMINAL_STATES, Counts, DagJobSpec, DagJobStatus, TaskStatus, parse_indexes
from lakejob.render.dag import child_name
from lakejob.render.workload import workload_name
from lakejob.settings import Settings


@dataclass(frozen=True)
class JobObs:
    """A command task's Job, as its status shows it."""

    name: str
    completions: int
    active: int = 0
    completed_indexes: str = ""
    failed_indexes: str = ""
    suspended: bool = False
    terminating: int = 0
    outcome: Literal["Complete", "Failed"] | None = None
    message: str | None = None
    # Why the Job controller cannot create its pods (its FailedCreate Event: a quota, a missing
    # PriorityClass, a policy), read only while a Job has none.
    create_error: str | None = None


@dataclass(frozen=True)
class ChildObs:
    """A child custom resource (SparkBatch, FlinkJarJob) of a task."""

    name: str
    state: str | None  # the child's own status.state
    message: str | None = None
    suspended: bool = False


@dataclass(frozen=True)
class Observed:
    now_ms: int
    jobs: dict[str, JobObs] = field(default_factory=dict)  # by name
    children: dict[str, ChildObs] = field(default_factory=dict)  # by name
    admitted: bool = True  # a Running slot is ours (the operator-wide limit)
    jobs_in_namespace: int = 1  # DagJobs in the namespace created up to this one (MaxJobCount)
    # Kueue (docs/queues.md): where each command task's ClusterId leads (absent: unqueued), and the
    # DagJob's Workloads by name.
    routes: dict[str, Route] = field(default_factory=dict)
    workloads: dict[str, WorkloadObs] = field(default_factory=dict)


Verb = Literal["create_job", "create_child", "suspend_job", "stop_child", "delete_self", "ensure_workload",
               "release_workload", "finish_workload", "activate_workload", "prioritize_workload"]


@dataclass(frozen=True)
class Action:
    verb: Verb
    task: str = ""
    run: int = 0
    name: str = ""
    value: bool = False


@dataclass(frozen=True)
class Note:
    """One BatchCompute event (OnTaskRunning, …): a Kubernetes Event, and a CloudEvent when listed."""

    event: str
    message: str
    task: str | None = None
    indexes: tuple[int, ...] = ()


@dataclass
class Decision:
    status: DagJobStatus
    actions: list[Action] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    requeue_after_s: float | None = None


# A child's own state → BatchCompute's. SparkBatch: starting/running/recovering/success/dead/killed;
# FlinkJarJob (DLI's job_*): only its end states matter here, the others are Running.
CHILD_STATES = {"success": "Finished", "dead": "Failed", "killed": "Stopped",
                "job_finish": "Finished", "job_submit_fail": "Failed", "job_cancel_success": "Stopped"}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The conditions' outcome of a job state (Stopped is reached only by spec.suspend, and left when it
# is set back to false).
OUTCOMES: dict[str, Outcome] = {"Finished": "Complete", "Failed": "Failed", "Stopped": "Suspended"}


class _Step:
    def __init__(self, spec: DagJobSpec | None, meta: Meta, status: DagJobStatus, obs: Observed, settings: Settings):
        self.spec, self.meta, self.obs, self.settings = spec, meta, obs, settings
        self.d = Decision(status=status.model_copy(deep=True))
        self.now = iso(obs.now_ms)

    @property
    def s(self) -> DagJobStatus:
        return self.d.status

    @property
    def tasks(self) -> dict[str, TaskStatus]:
        if self.s.Tasks is None:
            self.s.Tasks = {}
        return self.s.Tasks

    def note(self, event: str, message: str, task: str | None = None, indexes: tuple[int, ...] = ()) -> None:
        # Notes become Events and CloudEvents; a child's state in one is text from another object.
        self.d.notes.append(Note(event, clip(message, MESSAGE_BYTES), task, indexes))

    def act(self, verb: Verb, task: str = "", run: int = 0, name: str = "", value: bool = False) -> None:
        self.d.actions.append(Action(verb, task, run, name, value))

    def job_state(self, state: str, reason: str, message: str) -> None:
        s = self.s
        reason, message = clip(reason, REASON_BYTES), clip(message, MESSAGE_BYTES)
        if s.State == state and s.reason == reason:
            return
        s.State, s.reason, s.message = state, reason, message
        if state == "Running" and s.StartTime is None:
            s.StartTime = self.now
        if state in TERMINAL_STATES:
            s.EndTime = self.now
            for name, t in sorted((s.Tasks or {}).items()):
                if t.workload is not None and t.State not in ("Finished", "Failed"):  # no longer wanted
                    self.act("finish_workload", task=name, name=t.workload.name)
        self.conditions()
        self.note(f"OnJob{state}", f"{state}: {message}")

    def conditions(self) -> None:
        """Set the conditions from the status: on every transition, and on each pass over a finished
        job (an older operator set Complete on failures too)."""
        s = self.s
        if s.State is None:
            return
        s.conditions = job_conditions(s.conditions, ready=s.State in ("Running", "Finished"),
                                      outcome=OUTCOMES.get(s.State), reason=s.reason or "", message=s.message or "",
                                      generation=self.meta.generation, now=self.now)

    def task_state(self, name: str, state: str, message: str | None = None) -> None:
        t = self.tasks[name]
        if t.State == state:
            return
        # A child's status message or a Job's condition message: text from elsewhere, 16 tasks of it.
        message = clip(message, MESSAGE_BYTES) if message is not None else None
        t.State = state
        t.Message = message
        if state == "Running" and t.StartTime is None:
            t.StartTime = self.now
        if state in ("Finished", "Failed"):
            t.EndTime = self.now
            if t.workload is not None:  # frees its quota for the next task in the queue
                self.act("finish_workload", task=name, name=t.workload.name,
                         value=state == "Finished")
        self.note(f"OnTask{state}", f"task {name} {state}" + (f": {message}" if message else ""), task=name)


def decide(spec: DagJobSpec | None, spec_error: str | None, meta: Meta, status: DagJobStatus, obs: Observed,
           settings: Settings) -> Decision:
    step = _Step(spec, meta, status, obs, settings)
    s = step.s
    s.observedGeneration = meta.generation
    if s.State is None:
        _new(step, spec_error)  # → Waiting, Stopped or Failed; a Waiting job may start at once below
    elif s.State in TERMINAL_STATES:
        step.conditions()  # final; the conditions as this operator sets them
        return step.d
    elif spec is None:
        # Only reachable if admission was bypassed: stop what runs, don't guess.
        _stop_running(step, "the spec is invalid")
        step.job_state("Failed", "InvalidSpec", spec_error or "invalid spec")
    elif (changed := _tasks_changed(spec, s)) is not None:
        # Tasks are immutable at admission; a spec that got past it anyway names tasks the status
        # does not know (or of another kind): stop what runs, don't guess.
        _stop_running(step, "the spec's tasks changed")
        step.job_state("Failed", "InvalidSpec", changed)
    if spec is not None and s.State not in TERMINAL_STATES:
        _priority(step, spec)
        if spec.suspend:
            _stop(step)
            _park_workloads(step)
        elif s.State == "Stopped":
            _resume(step)
        if s.State == "Waiting" and obs.admitted and not spec.suspend:
            step.job_state("Running", "Admitted", "a slot is free; starting the tasks whose upstream tasks finished")
        if s.State == "Running":
            _running(step, spec)
    _metrics(step)
    return step.d


def _tasks_changed(spec: DagJobSpec, status: DagJobStatus) -> str | None:
    """Why the spec's tasks (names and kinds) are not the ones the job was started with, or None."""
    if status.Tasks is None:
        return None
    had = {name: t.Type for name, t in status.Tasks.items()}
    has = {name: task.kind for name, task in spec.DAG.Tasks.items()}
    if had == has:
        return None
    return (f"spec.DAG.Tasks changed after the job was created, which it cannot: it had {_names(had)}, "
            f"it has {_names(has)}")


def _names(tasks: dict[str, str]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in sorted(tasks.items()))


def _quota(spec: DagJobSpec, obs: Observed, settings: Settings) -> tuple[str, str] | None:
    """The first exhausted quota: (its QuotaExhausted.* name, BatchCompute's message plus detail)."""
    checks: list[tuple[str, int, int, str]] = [
        ("MaxJobCount", settings.dag_max_job_count, obs.jobs_in_namespace, "DagJobs in this namespace"),
        ("MaxJobTaskCount", settings.dag_max_job_task_count, len(spec.DAG.Tasks), "tasks in this job"),
    ]
    for name, task in sorted(spec.DAG.Tasks.items()):
        if task.InstanceCount is not None:
            checks.append(("MaxTaskInstanceCount", settings.dag_max_task_instance_count, task.InstanceCount,
                           f"InstanceCount of task {name}"))
        if task.Timeout is not None:
            checks.append(("MaxInstanceTimeout", settings.dag_max_instance_timeout, task.Timeout,
                           f"Timeout of task {name}"))
    for name, limit, value, what in checks:
        if value > limit:
            return f"QuotaExhausted.{name}", f"The {name} ({limit}) quota is exhausted: {what} is {value}."
    return None


def _new(step: _Step, spec_error: str | None) -> None:
    s, meta, spec = step.s, step.meta, step.spec
    s.Id = meta.uid
    s.CreationTime = iso(meta.created_ms)
    if spec is None:
        step.job_state("Failed", "InvalidSpec", spec_error or "invalid spec")
        return
    s.Name, s.Priority = spec.Name, spec.Priority
    quota = _quota(spec, step.obs, step.settings)
    if quota is not None:
        step.job_state("Failed", *quota)
        return
    s.Tasks = {name: TaskStatus(Type=task.kind, InstanceMetrics=Counts(WaitingCount=task.InstanceCount or 1))
               for name, task in sorted(spec.DAG.Tasks.items())}
    for name in dag_graph.topological_order(spec.DAG.Dependencies or {}, spec.DAG.Tasks):
        step.note("OnTaskWaiting", f"task {name} Waiting", task=name)
    if spec.suspend:
        step.job_state("Stopped", "Suspended", "created with suspend: true; nothing was started")
        return
    step.job_state("Waiting", "Queued", "waiting for a slot (Priority orders the queue)")


def _priority(step: _Step, spec: DagJobSpec) -> None:
    if step.s.Priority != spec.Priority:
        step.note("OnPriorityChange", f"Priority {step.s.Priority} -> {spec.Priority}")
        step.s.Priority = spec.Priority
        # The tasks' Workloads still waiting for Kueue take the new Priority (Kueue orders its queues
        # by it; an admitted one keeps its quota, as a running BatchCompute task keeps its slot).
        for name, t in sorted(step.tasks.items()):
            wl = step.obs.workloads.get(t.workload.name) if t.workload is not None else None
            if wl is not None and not wl.reserved and not wl.finished:
                step.act("prioritize_workload", task=name, name=wl.name)


def _stop_task(step: _Step, name: str, why: str) -> None:
    """Stop one running task: suspend its Job (its pods go; finished indexes are kept), or stop its child."""
    t = step.tasks[name]
    if t.Child:
        step.act("suspend_job" if t.Type == "command" else "stop_child", task=name, name=t.Child, value=True)
    step.task_state(name, "Stopped", why)
    m = t.InstanceMetrics
    if m.RunningCount:
        t.InstanceMetrics = Counts(WaitingCount=m.WaitingCount, StoppedCount=m.RunningCount,
                                   FinishedCount=m.FinishedCount, FailedCount=m.FailedCount)
        step.note("OnInstanceStopped", f"task {name}: {m.RunningCount} instance(s) stopped", task=name)


def _stop_running(step: _Step, why: str) -> None:
    for name, t in sorted(step.tasks.items()):
        if t.State == "Running":
            _stop_task(step, name, why)


def _stop(step: _Step) -> None:
    if step.s.State == "Stopped":
        return
    _stop_running(step, "stopped by spec.suspend")
    step.job_state("Stopped", "Suspended", "stopped by spec.suspend")


def _park_workloads(step: _Step) -> None:
    """A stopped job holds no quota (docs/queues.md, "A stop"): each task's Workload that is not
    finished is deactivated once the task's pods are gone (deactivating first would let Kueue admit
    the next job beside them), and released once Kueue has evicted it (reason Deactivated); the
    Workload stays, with the Job and its finished instances, for the resume."""
    for name, t in sorted(step.tasks.items()):
        wl = step.obs.workloads.get(t.workload.name) if t.workload is not None else None
        if wl is None or wl.finished:
            continue
        job = step.obs.jobs.get(t.Child or "")
        if job is not None and (job.active or job.terminating):
            continue  # its pods first: the Job's status change (the Job index) brings the next pass
        if wl.active:
            step.act("activate_workload", task=name, name=wl.name, value=False)
        elif wl.must_release:
            step.act("release_workload", task=name, name=wl.name)


def _resume(step: _Step) -> None:
    """suspend went back to false: the stopped tasks wait again (a Job continues with its remaining
    instances when it restarts; a child resource runs again as a new run), and so does the job (the
    Workloads the stop deactivated queue again when their tasks come to Kueue's gate: `_queue`)."""
    for name, t in sorted(step.tasks.items()):
        if t.State == "Stopped":
            step.task_state(name, "Waiting", "resumed")
    step.job_state("Waiting", "Resumed", "resumed; waiting for a slot")


def _running(step: _Step, spec: DagJobSpec) -> None:
    tasks, obs = step.tasks, step.obs
    for name, t in sorted(tasks.items()):
        if t.State == "Running" and _queue(step, name, ready=False):
            _observe_task(step, spec, name)
        elif t.State in ("Finished", "Failed") and t.workload is not None:
            wl = obs.workloads.get(t.workload.name)
            if wl is not None and not wl.finished:  # the finish of its end was lost: again
                step.act("finish_workload", task=name, name=t.workload.name, value=t.State == "Finished")
    failed = sorted(n for n, t in tasks.items() if t.State == "Failed")
    if failed and spec.JobFailOnInstanceFail:
        _stop_running(step, f"stopped: task {failed[0]} failed (JobFailOnInstanceFail)")
        for name, t in sorted(tasks.items()):
            if t.State == "Waiting":
                step.task_state(name, "Stopped", f"not started: task {failed[0]} failed (JobFailOnInstanceFail)")
        step.job_state("Failed", "TaskFailed", _summary(tasks))
        return
    deps = spec.DAG.Dependencies or {}
    for f in failed:
        for name in sorted(dag_graph.descendants(deps, f)):
            if tasks[name].State == "Waiting":
                step.task_state(name, "Stopped", f"skipped: upstream task {f} failed")
    ups = dag_graph.upstream(deps, spec.DAG.Tasks)
    for name in dag_graph.topological_order(deps, spec.DAG.Tasks):
        if tasks[name].State == "Waiting" and all(tasks[u].State == "Finished" for u in ups[name]) \
                and _queue(step, name, ready=True):
            _start_task(step, spec, name)
    if any(t.State in ("Running", "Waiting") for t in tasks.values()):
        if any(t.State == "Running" and t.Child and t.Child not in obs.jobs and t.Child not in obs.children
               for t in tasks.values()):
            step.d.requeue_after_s = 5  # created but not seen yet: look again (the create is re-issued)
        return
    if all(t.State == "Finished" for t in tasks.values()):
        step.job_state("Finished", "AllTasksFinished", f"{len(tasks)} tasks finished")
        if spec.AutoRelease:
            step.act("delete_self")
    else:
        step.job_state("Failed", "TaskFailed", _summary(tasks))


def _summary(tasks: dict[str, TaskStatus]) -> str:
    """Per task, its state (and why): the message of a failed DagJob."""
    return "; ".join(f"{n}: {t.State}" + (f" ({t.Message})" if t.Message and t.State != "Finished" else "")
                     for n, t in sorted(tasks.items()))


def _start_task(step: _Step, spec: DagJobSpec, name: str) -> None:
    t = step.tasks[name]
    task = spec.DAG.Tasks[name]
    existing = step.obs.jobs.get(t.Child or "")
    if t.Type == "command" and existing is not None:
        # A Job stopped by suspend (or a preemption): it continues with the instances that had not finished.
        step.act("suspend_job", task=name, name=existing.name, value=False)
    elif t.Type == "command" and _run_queued(t):
        step.act("create_job", task=name, run=t.Run, name=t.Child or "")  # its run began with its Workload
    else:
        t.Run += 1
        t.Child = child_name(step.meta.name, name, t.Run)
        t.ChildSeen = None
        if t.Type == "command":
            step.act("create_job", task=name, run=t.Run, name=t.Child)
        else:
            step.act("create_child", task=name, run=t.Run, name=t.Child)
    count = task.InstanceCount or 1
    if existing is None:
        t.InstanceMetrics = Counts(WaitingCount=count)
        t.FinishedIndexes = t.FailedIndexes = None
        step.note("OnInstanceWaiting", f"task {name}: {count} instance(s) waiting", task=name,
                  indexes=tuple(range(count)))
    step.task_state(name, "Running", f"run {t.Run}: {t.Child}")


@dataclass
class _GateOut:
    """What admission.gate adds to a decision (Events, a requeue), turned into the DagJob's notes."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after_s: float | None = None


def _run_queued(t: TaskStatus) -> bool:
    """The task's current run was begun by its Workload (named after the run's Job)."""
    return t.workload is not None and t.Child is not None and t.workload.name == workload_name("task", t.Child)


def _queue(step: _Step, name: str, ready: bool) -> bool:
    """Kueue's gate for a command task whose ClusterId is a queue (docs/queues.md): whether it may start
    (`ready`: Waiting with its upstream tasks finished) or run on. One Workload per task run, named
    after the run's Job; no Job until it is admitted. Preempted: the Job is suspended (finished
    instances stay finished), the reservation released once its pods are gone, the task Waiting again."""
    t = step.tasks[name]
    route = step.obs.routes.get(name, UNQUEUED)
    if t.Type != "command" or (t.workload is None and not route.queued):
        return True
    waiting = t.State == "Waiting" and ready
    if waiting and route.local_queue is not None and (t.workload is None or not _run_queued(t)) \
            and step.obs.jobs.get(t.Child or "") is None:
        # A new run: its Job's name first, since its Workload is named after it.
        t.Run += 1
        t.Child, t.ChildSeen, t.workload = child_name(step.meta.name, name, t.Run), None, None
    wl = step.obs.workloads.get(t.workload.name) if t.workload is not None else None
    if wl is not None and not wl.finished and (not wl.active or (wl.evicted and wl.reason == "Deactivated")):
        # Deactivated by a stop (`_park_workloads`), not preempted: queue it again, giving back the
        # quota Kueue may still count, and wait for Kueue to admit it as any other.
        if wl.must_release:
            step.act("release_workload", task=name, name=wl.name)
        if not wl.active:
            step.act("activate_workload", task=name, name=wl.name, value=True)
        return False  # Kueue's writes to the Workload (the Workload index) bring the next pass
    out = _GateOut()

    def ensure() -> None:
        assert t.workload is not None
        step.act("ensure_workload", task=name, run=t.Run, name=t.workload.name)

    outcome = gate(t, out, "task", t.Child or "", step.meta.generation, step.obs.now_ms, route, wl, waiting,
                   ensure, run=t.Run)
    for _, reason, message in out.events:
        step.note(f"On{reason}", f"task {name}: {message}", task=name)
    if out.requeue_after_s is not None:
        step.d.requeue_after_s = min(step.d.requeue_after_s or out.requeue_after_s, out.requeue_after_s)
    if outcome == "preempted":
        assert wl is not None and t.workload is not None
        why = preempted(t, wl, step.meta.generation, step.obs.now_ms, first=bool(t.workload.admitted))
        job = step.obs.jobs.get(t.Child or "")
        if t.State == "Running":
            m = t.InstanceMetrics
            t.InstanceMetrics = Counts(WaitingCount=m.WaitingCount + m.RunningCount, FinishedCount=m.FinishedCount,
                                       FailedCount=m.FailedCount)
            step.task_state(name, "Waiting", f"Preempted: {why}")
            step.note("OnTaskPreempted", f"task {name}: {why}", task=name)
        if job is not None and not job.suspended:
            step.act("suspend_job", task=name, name=job.name, value=True)
        elif job is None or (job.active == 0 and job.terminating == 0):
            step.act("release_workload", task=name, name=t.workload.name)  # its pods are gone
        step.d.requeue_after_s = min(step.d.requeue_after_s or 2.0, 2.0)
        return False
    if outcome == "wait":
        admitted = next((c for c in t.conditions or () if c.type == ADMITTED), None)
        if admitted is not None:
            t.Message = clip(f"{admitted.reason}: {admitted.message}", MESSAGE_BYTES)
        return False
    return True


def _observe_task(step: _Step, spec: DagJobSpec, name: str) -> None:
    t = step.tasks[name]
    task = spec.DAG.Tasks[name]
    if t.Type == "command":
        job = step.obs.jobs.get(t.Child or "")
        if job is None:
            _child_missing(step, name, "create_job")
            return
        t.ChildSeen = True
        if job.suspended:
            step.act("suspend_job", task=name, name=job.name, value=False)
        _instances(step, name, job, task.InstanceCount or job.completions)
        if job.create_error and job.outcome is None:
            _cannot_create_pods(step, name, job)
        elif t.Message and t.Message.startswith(f"{job.name}: {CANNOT_CREATE}"):
            t.Message = None  # it has pods now
        if job.outcome == "Complete":
            step.task_state(name, "Finished")
        elif job.outcome == "Failed" or (spec.JobFailOnInstanceFail and job.failed_indexes):
            why = f"instance(s) {job.failed_indexes} failed after {task.MaxRetryCount or 0} retries"
            step.task_state(name, "Failed", why + (f" ({job.message})" if job.message else ""))
        return
    child = step.obs.children.get(t.Child or "")
    if child is None:
        _child_missing(step, name, "create_child")
        return
    t.ChildSeen = True
    state = CHILD_STATES.get(child.state or "", "Running")
    if state == "Stopped":  # stopped by someone else than us (we mark our stops ourselves)
        state = "Failed"
    old = t.InstanceMetrics
    t.InstanceMetrics = Counts(**{f"{state}Count": 1})
    if state != "Running" or old.RunningCount == 0:
        step.note(f"OnInstance{state}", f"task {name}: {t.Child} {child.state or 'created'}", task=name, indexes=(0,))
    if state in ("Finished", "Failed"):
        step.task_state(name, state, None if state == "Finished" else f"{t.Child}: {child.message or child.state}")


def _child_missing(step: _Step, name: str, create: Verb) -> None:
    """A running task's child is not there. Never seen: its create was lost (a crash between the
    status write and the create), so create it. Seen before: someone deleted it, and the run fails
    (what it had done may not be repeatable; the task's retry is the user's call: docs/dagjob.md)."""
    t = step.tasks[name]
    if not t.ChildSeen:
        step.act(create, task=name, run=t.Run, name=t.Child or "")
        return
    step.task_state(name, "Failed", f"ChildDeleted: {t.Child} was deleted while the task ran; not run again")


def _instances(step: _Step, name: str, job: JobObs, count: int) -> None:
    """Instance counts of a command task from its Job, with an event per change."""
    t = step.tasks[name]
    done, failed = parse_indexes(job.completed_indexes), parse_indexes(job.failed_indexes)
    new_done = sorted(done - parse_indexes(t.FinishedIndexes))
    new_failed = sorted(failed - parse_indexes(t.FailedIndexes))
    running = 0 if job.suspended else max(0, min(job.active, count - len(done) - len(failed)))
    before = t.InstanceMetrics
    t.InstanceMetrics = Counts(WaitingCount=max(0, count - len(done) - len(failed) - running), RunningCount=running,
                               FinishedCount=len(done), FailedCount=len(failed))
    t.FinishedIndexes, t.FailedIndexes = job.completed_indexes or None, job.failed_indexes or None
    if running > before.RunningCount:
        step.note("OnInstanceRunning", f"task {name}: {running} instance(s) running", task=name)
    if new_done:
        step.note("OnInstanceFinished", f"task {name}: instance(s) {_ids(new_done)} finished", task=name,
                  indexes=tuple(new_done))
    if new_failed:
        step.note("OnInstanceFailed", f"task {name}: instance(s) {_ids(new_failed)} failed", task=name,
                  indexes=tuple(new_failed))


CANNOT_CREATE = "pods cannot be created"


def _cannot_create_pods(step: _Step, name: str, job: JobObs) -> None:
    """Kubernetes refuses the task's pods: the task's message and a Warning Event say why, at once
    (not only on the Job), while the Job keeps trying; once per distinct reason."""
    t = step.tasks[name]
    message = clip(f"{job.name}: {CANNOT_CREATE}: {job.create_error}", MESSAGE_BYTES)
    if t.Message != message:
        t.Message = message
        step.note("OnTaskCreateFailed", f"task {name}: {message}", task=name)
    step.d.requeue_after_s = 5  # look again: the Job controller retries with its own backoff


def _ids(indexes: list[int]) -> str:
    return ",".join(str(i) for i in indexes)


def _metrics(step: _Step) -> None:
    s = step.s
    if s.Tasks is None:
        return
    tasks = s.Tasks.values()
    s.TaskMetrics = Counts(**{f"{st}Count": sum(t.State == st for t in tasks)
                              for st in ("Waiting", "Running", "Stopped", "Finished", "Failed")})
    s.InstanceMetrics = Counts(**{k: sum(getattr(t.InstanceMetrics, k) for t in tasks)
                                  for k in Counts.model_fields})
    s.TaskProgress = f"{s.TaskMetrics.FinishedCount}/{len(s.Tasks)}"


def listed(spec: DagJobSpec | None) -> frozenset[str]:
    """The events the Topic lists (they are also the instance-level Events worth posting)."""
    if spec is None or spec.Notification is None or not spec.Notification.Topic.Events:
        return frozenset()
    return frozenset(spec.Notification.Topic.Events)


def is_instance_event(event: str) -> bool:
    return event.startswith("OnInstance")


def kube_events(notes: list[Note], listed_: frozenset[str]) -> list[tuple[str, str, str]]:
    """A pass's notes as Kubernetes Events (type, reason, message): instance events only when the
    Topic lists them, and the plain task events of one kind ("task X Running", nothing more to say)
    folded into one, "tasks a, b, c Running", where the first of them was. A fan-out's root that
    finishes starts 15 tasks in one pass: one Event instead of 15, which on a busy apiserver are
    writes in the way of the tasks' own (as client-go's event aggregation would have them)."""
    out: list[tuple[str, str, str]] = []
    folded: dict[str, tuple[int, list[str]]] = {}  # event → (its place in out, the tasks)
    for n in notes:
        if is_instance_event(n.event) and n.event not in listed_:
            continue
        kind = "Warning" if n.event.endswith("Failed") else "Normal"
        state = n.event.removeprefix("OnTask")
        if n.task is not None and n.event.startswith("OnTask") and n.message == f"task {n.task} {state}":
            if n.event in folded:
                folded[n.event][1].append(n.task)
                continue
            folded[n.event] = (len(out), [n.task])
        out.append((kind, n.event[2:], n.message))
    for event, (at, tasks) in folded.items():
        if len(tasks) > 1:
            kind, reason, _ = out[at]
            out[at] = (kind, reason, f"tasks {', '.join(tasks)} {event.removeprefix('OnTask')}")
    return out

