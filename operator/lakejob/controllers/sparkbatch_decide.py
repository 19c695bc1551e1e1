"""SparkBatch's state machine: decide(what we know) → (new status, actions). Pure, no I/O.

Called by lakejob.controllers.sparkbatch after it has observed the driver pod and the executors.
One function per state, as the Kubeflow Spark Operator does. DLI's states (Table 7) plus `killed`:

    (new) → starting → running → success
                 │          └──→ dead            (driver failed, no retries left)
                 ├──→ dead                       (not scheduled/started within schedulingTimeout)
                 └──→ recovering → starting …    (auto_recovery: a new driver after a backoff)
    any non-terminal → killed                    (spec.suspend: true)

A job in a queue (docs/queues.md) waits in `starting` without a driver until Kueue admits its
Workload (controllers.spark_admission, shared with SparkSession, in front of every live state); a
preemption stops the driver, hands the quota back once the pods are gone and waits again in
`starting` (reason Preempted): not a failure, not a retry. The Workload is marked Finished when the
job ends, which frees its quota.

Status is the write-ahead log: a new attempt is first recorded (attempt, driverPod), then
created, so a restarted operator continues the same attempt instead of starting another.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lakejob.controllers.decide_common import Meta as Meta  # re-exported
from lakejob.controllers import decide_common
from lakejob.controllers import spark_admission
from lakejob.controllers.admission import UNQUEUED, Route, WorkloadObs
from lakejob.models.common import parse_duration
from lakejob.models.spark import ExecutorCounts, ResolvedResources, SparkAppSpec, SparkAppStatus
from lakejob.sizing import SparkSizing
from lakejob.models.spark import resolve_sizing as resolve_sizing  # re-exported: the sizing decide records
from lakejob.models.sparkbatch import TERMINAL_STATES, SparkBatchSpec, SparkBatchStatus
from lakejob.render.packages import FETCH_FAILED, beyond_retry, explain_failure, locate
from lakejob.render.spark import Names, app_id, files_of, problem, queue_of
from lakejob.settings import Settings

KIND = "SparkBatch"
LOG_LINES = 10

# Lines read back from a finished driver: enough to find the program's own output under the lines
# Spark logs while it shuts down. A line may be of any length: `status_log` bounds what reaches status.
LOG_READ_LINES = 400
# Spark's own INFO/DEBUG/TRACE log lines: log4j's default pattern (`25/11/29 18:45:04 INFO Foo: …`)
# and Spark 4's structured JSON form (`{"ts":…,"level":"INFO",…}`).
_SPARK_CHATTER = re.compile(r'^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|DEBUG|TRACE) |\{"ts":.*"level":"(INFO|DEBUG|TRACE)")')


def _output(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not _SPARK_CHATTER.match(line)]


# A JVM stack frame (`\tat a.b.C.m(C.java:1)`, `\t... 22 more`) or a cause line's indentation.
_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")


def driver_output(lines: list[str], succeeded: bool = False) -> list[str]:
    """The last LOG_LINES lines of a driver's log that are not Spark's own INFO chatter: what the
    program printed, warnings, errors and stack traces (`kubectl logs` has the rest), bounded. A
    driver that succeeded keeps no stack frames: they belong to warnings Spark logs under load
    (a blocked event loop) and would push the program's own last lines out."""
    out = _output(lines)
    return status_log([line for line in out if not _FRAME.match(line)] if succeeded else out)


def status_log(lines: list[str]) -> list[str]:
    """status.log: the last LOG_LINES lines, each and all together cut to decide_common's bounds
    (one line of a driver's log may be megabytes; the status must stay an object etcd accepts)."""
    return decide_common.tail(lines, LOG_LINES)


def headline(message: str) -> str:
    """One line for an Event from a driver's termination message (with FallbackToLogsOnError, its
    log's last 2 KiB): the last line of its output that is not a stack frame, i.e. the exception
    (`ValueError: boom`, `Exception in thread "main" java.lang.…: boom`), else its first line."""
    lines = [line for line in _output(message.splitlines()) if not line[:1].isspace() and not line.startswith("...")]
    if lines:
        return lines[-1].strip()
    return message.strip().splitlines()[0] if message.strip() else ""


@dataclass(frozen=True)
class DriverObs:
    """What the driver pod of the current attempt shows."""

    name: str
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    created_ms: int
    deleting: bool = False
    unschedulable: str | None = None  # the PodScheduled=False message (the scheduler's reason)
    waiting_reason: str | None = None  # e.g. ImagePullBackOff, CreateContainerConfigError
    waiting_message: str | None = None
    exit_code: int | None = None
    term_reason: str | None = None
    term_message: str | None = None
    started_ms: int | None = None
    finished_ms: int | None = None


@dataclass(frozen=True)
class Observed:
    now_ms: int
    driver: DriverObs | None
    executors: ExecutorCounts
    log_tail: list[str] | None = None  # the driver's last lines, when the operator could read them
    route: Route = UNQUEUED  # where the job's queue leads (controllers.queueing.route)
    workload: WorkloadObs | None = None  # its Workload (status.workload), as Kueue left it


Verb = Literal["ensure_children", "create_driver", "delete_driver", "ensure_workload", "release_workload",
               "finish_workload"]


@dataclass(frozen=True)
class Action:
    verb: Verb
    attempt: int = 0
    pod: str = ""
    reason: str = ""  # finish_workload: Succeeded | Failed


Decision = decide_common.Decision[SparkBatchStatus, Action]


# The final states' conditions (killed is reached only by spec.suspend, at creation or later).
OUTCOMES: dict[str, decide_common.Outcome] = {"success": "Complete", "dead": "Failed", "killed": "Suspended"}


class _Step(decide_common.StateStep[SparkBatchStatus, Action]):
    ready_states = frozenset({"running", "success"})

    def outcome_of(self, state: str, reason: str) -> decide_common.Outcome:
        return OUTCOMES.get(state)

    def __init__(self, meta: Meta, status: SparkBatchStatus, obs: Observed):
        super().__init__(meta, status, obs.now_ms)
        self.obs = obs

    def act(self, verb: Verb, attempt: int = 0, pod: str = "", reason: str = "") -> None:
        self.add(Action(verb, attempt, pod, reason))


def decide(spec: SparkBatchSpec | None, spec_error: str | None, meta: Meta, status: SparkBatchStatus,
           obs: Observed, settings: Settings) -> Decision:
    step = _Step(meta, status, obs)
    s = step.s
    s.observedGeneration = meta.generation
    # From the first status on (all zero then): counted only once the driver was seen, the first
    # sight of it cost a status write of zeros and nothing else.
    if s.state is None or obs.driver is not None or s.executors is not None:
        s.executors = obs.executors
    if s.state is None:
        _new(step, spec, spec_error, settings)
    elif s.state in TERMINAL_STATES:
        step.conditions()  # final; executor counts above keep the record honest, and this its conditions
        spark_admission.finish_workload(step)  # a crash between the final status and the Workload's Finished lands here
    elif spec is not None and spec.suspend:
        _kill(step)
    elif spec is None:
        # Only reachable if admission was bypassed (e.g. the CRD was replaced): stop, don't guess.
        spark_admission.stop_driver(step)
        step.transition("dead", "InvalidSpec", spec_error or "invalid spec", warning=True)
        _finish(step)
    elif spark_admission.gate(step, KIND, "starting", lambda attempt: _start_attempt(step, attempt)):
        {"starting": _starting, "running": _running, "recovering": _recovering}[s.state](step, spec, settings)
    return step.d


def _new(step: _Step, spec: SparkBatchSpec | None, spec_error: str | None, settings: Settings) -> None:
    s, meta = step.s, step.meta
    s.id = meta.uid
    s.create_time = meta.created_ms
    if spec is None:
        step.transition("dead", "InvalidSpec", spec_error or "invalid spec", warning=True)
        return
    record_sizing(s, spec, resolve_sizing(spec))  # the model refuses sizes that cannot be made (parse)
    if spec.suspend:
        step.transition("killed", "Suspended", "created with suspend: true; nothing was started")
        _finish(step)
        return
    if (refused := problem(spec, settings, spec.file)) is not None:
        # Nothing is created for a job whose image or files the operator cannot name.
        step.transition("dead", *refused, warning=True)
        _finish(step)
        return
    spark_admission.begin(step, KIND, "starting", lambda attempt: _start_attempt(step, attempt))


def record_sizing(s: SparkAppStatus, spec: SparkAppSpec, sz: SparkSizing) -> None:
    """What a new Spark job's status says of its request (DLI returns sc_type, queue, …)."""
    s.name = spec.name
    s.sc_type = sz.sc_type
    s.queue = queue_of(spec)
    s.cluster_name = s.queue
    s.resources = ResolvedResources.of(sz)
    s.log = []


def not_started_reason(drv: DriverObs | None, driver_pod: str | None) -> tuple[str, str]:
    """Why a driver is not running: the scheduler's reason, the kubelet's, or that it never came."""
    if drv is None:
        return "StartTimeout", f"driver pod {driver_pod} could not be created"
    if drv.unschedulable:
        return "FailedScheduling", drv.unschedulable
    if drv.waiting_reason:
        return drv.waiting_reason, drv.waiting_message or drv.waiting_reason
    return "StartTimeout", "the driver did not start"


def _start_attempt(step: _Step, attempt: int) -> None:
    s = step.s
    s.attempt = attempt
    s.driverPod = Names.of(step.meta.name).driver_pod(attempt)
    s.appId = app_id(step.meta.uid, attempt)
    s.driverStartTime = step.obs.now_ms
    s.nextAttemptTime = None
    step.act("ensure_children", attempt)
    step.act("create_driver", attempt, s.driverPod)


def _timeout_s(spec: SparkBatchSpec, settings: Settings) -> int:
    return parse_duration(spec.schedulingTimeout) if spec.schedulingTimeout else settings.scheduling_timeout_s


def _starting(step: _Step, spec: SparkBatchSpec, settings: Settings) -> None:
    s, obs, drv = step.s, step.obs, step.obs.driver
    assert s.attempt is not None and s.driverPod is not None
    waited_s = (obs.now_ms - (s.driverStartTime or (drv.created_ms if drv else obs.now_ms))) / 1000
    timeout = _timeout_s(spec, settings)
    if drv is None and waited_s < timeout:
        # Recorded but not (yet) seen: create it (idempotent; a lost create after a crash lands here).
        step.act("ensure_children", s.attempt)
        step.act("create_driver", s.attempt, s.driverPod)
        step.d.requeue_after_s = 5
        return
    if drv is not None and drv.phase == "Running":
        step.transition("running", "DriverRunning", f"driver pod {drv.name} is running")
        return
    if drv is not None and drv.phase in ("Succeeded", "Failed"):
        _running(step, spec, settings)  # it ran and ended between two looks
        return
    if waited_s >= timeout:
        reason, why = not_started_reason(drv, s.driverPod)
        s.log = status_log([f"{reason}: {why}"])
        spark_admission.stop_driver(step)
        step.transition("dead", reason, f"driver not running after {timeout}s schedulingTimeout: {why}", warning=True)
        _finish(step)
        return
    step.d.requeue_after_s = max(1.0, min(timeout - waited_s + 0.5, settings.resync_interval_s))


def _running(step: _Step, spec: SparkBatchSpec, settings: Settings) -> None:
    s, drv = step.s, step.obs.driver
    assert s.attempt is not None
    if drv is None:
        _failed(step, spec, settings, "DriverPodMissing", f"driver pod {s.driverPod} disappeared", None)
        return
    if drv.phase == "Succeeded":
        if step.obs.log_tail:
            s.log = driver_output(step.obs.log_tail, succeeded=True)
        step.transition("success", "Completed", f"driver pod {drv.name} succeeded")
        _finish(step)
    elif drv.phase == "Failed" and drv.term_reason == FETCH_FAILED:
        fetches = [*files_of(spec, settings).fetches, *filter(None, [locate(spec.file, "file", settings)[1]])]
        why = explain_failure(drv.term_message or "", fetches)
        message = f"driver pod {drv.name}: its files could not be fetched before the driver started: {why}"
        if beyond_retry(why):
            s.log = status_log([why])
            step.transition("dead", FETCH_FAILED, message, warning=True)  # a retry would find it missing too
            _finish(step)
        else:
            _failed(step, spec, settings, FETCH_FAILED, message, None)
    elif drv.phase == "Failed":
        why = headline(drv.term_message or "") or drv.term_reason or "the driver failed"
        _failed(step, spec, settings, drv.term_reason or "DriverFailed",
                f"driver pod {drv.name} failed with exit code {_code(drv)}: {why}", drv)


def _failed(step: _Step, spec: SparkBatchSpec, settings: Settings, reason: str, message: str,
            drv: DriverObs | None) -> None:
    s, obs = step.s, step.obs
    assert s.attempt is not None
    lines = driver_output(obs.log_tail or [])
    if drv is not None:
        lines.append(f"exit code {_code(drv)}, reason {drv.term_reason or 'unknown'}"
                     + (f": {headline(drv.term_message)}" if drv.term_message else ""))
    else:
        lines.append(message)
    s.log = status_log(lines)
    max_retries = spec.max_retry_times if spec.max_retry_times is not None else settings.default_max_retry_times
    tries = spark_admission.tries(s)
    if spec.auto_recovery and tries <= max_retries:
        delay = min(settings.retry_backoff_s * 2 ** (tries - 1), settings.retry_backoff_max_s)
        s.nextAttemptTime = obs.now_ms + int(delay * 1000)
        step.transition("recovering", reason,
                        f"{message}; retry {tries} of {max_retries} in {delay:.0f}s", warning=True)
        step.d.requeue_after_s = delay
    else:
        retries = f" after {tries - 1} retries" if spec.auto_recovery else ""
        step.transition("dead", reason, message + retries, warning=True)
        _finish(step)


def _recovering(step: _Step, spec: SparkBatchSpec, settings: Settings) -> None:
    s, obs = step.s, step.obs
    assert s.attempt is not None
    due = s.nextAttemptTime or obs.now_ms
    if obs.now_ms < due:
        step.d.requeue_after_s = (due - obs.now_ms) / 1000
        return
    _start_attempt(step, s.attempt + 1)
    step.transition("starting", "Retrying", f"driver pod {s.driverPod} created (attempt {s.attempt})")


def _code(drv: DriverObs) -> str:
    return "unknown" if drv.exit_code is None else str(drv.exit_code)


def _kill(step: _Step) -> None:
    spark_admission.stop_driver(step)
    step.transition("killed", "Suspended", "stopped by spec.suspend")
    _finish(step)


def _finish(step: _Step) -> None:
    s = step.s
    s.nextAttemptTime = None
    s.duration = step.obs.now_ms - (s.create_time or step.obs.now_ms)
    spark_admission.finish_workload(step)
