"""SparkSession's state machine: decide(what we know) → (new status, actions). Pure, no I/O.

Called by controllers.sparksession after it has observed the driver pod (pod index), the last
poll of the driver's Spark REST API (its poller) and the heartbeat annotation. DLI's Table 4:

    (new) → not_started → starting → idle ⇄ busy       (driver pod Running → REST answers and the
                                                         driver is Ready (Connect listens) → jobs)
    idle for heartbeatTimeoutInSecond → shutting_down → dead      (reason IdleTimeout)
    spec.suspend: true (any live state) → shutting_down → success (reason Stopped)
    driver fails → error, or with auto_recovery → recovering → not_started … (a new driver)
    driver exits by itself with 0 → success

`rest_activity` turns a REST payload (GET /api/v1/applications/<appId>/jobs) into what decide
needs: running jobs (busy) and the latest job submission/completion time (activity, so a job
shorter than the poll period still resets the idle clock). When the REST API does not answer,
the state stays as it was, the RestReachable condition says so, and the idle timeout waits:
a session whose activity cannot be seen is not shut down for idleness.

Shutting down deletes the driver first (SIGTERM, so Spark stops its executors), then, once the
driver is gone, its ConfigMap, Service and RBAC: a dead session holds nothing but its record.

A session whose queue leads to a Kueue LocalQueue (docs/queues.md) waits in `not_started` with no
driver, ConfigMap or Service until its Workload is admitted (controllers.spark_admission, shared
with SparkBatch, in front of every live state). Preempted, its driver is stopped, the quota handed
back once its pods are gone, and it waits in `not_started` again (reason Preempted: not an error,
not a recovery); readmitted, a new driver starts empty (what the clients had in the old one is
lost, as the Preempted message says). Its end (success, dead, error) marks the Workload Finished.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from lakejob.controllers.decide_common import Meta as Meta  # re-exported
from lakejob.controllers import decide_common, spark_admission
from lakejob.controllers.admission import UNQUEUED, Route, WorkloadObs
from lakejob.controllers.decide_common import iso, iso_ms
from lakejob.controllers.sparkbatch_decide import DriverObs, headline, not_started_reason, record_sizing, status_log
from lakejob.models.common import parse_duration, set_condition
from lakejob.models.spark import ExecutorCounts, resolve_sizing
from lakejob.models.sparksession import TERMINAL_STATES, SparkSessionSpec, SparkSessionStatus, spark_at_least_3_4
from lakejob.render.sparksession import CONNECT_PORT, connect_url, spark_version
from lakejob.render.spark import Names, app_id, problem
from lakejob.settings import Settings

KIND = "SparkSession"
LIVE_STATES = ("not_started", "starting", "idle", "busy")
# What a preemption costs a session besides its driver (said in its Preempted message): a new driver
# starts empty, as after a recovery.
LOST = ("its in-memory state is lost (its clients' Spark Connect sessions, their temporary views and cached "
        "data; the next driver starts empty); ")
# What status keeps of the heartbeat annotation (a token: a timestamp, a counter). Annotations may
# hold 256 KiB; a change within the kept part is what counts as activity.
HEARTBEAT_BYTES = 256


@dataclass(frozen=True)
class RestActivity:
    """One answer of the driver's REST jobs list."""

    running_jobs: int
    last_activity_ms: int | None  # the latest job submission or completion


@dataclass(frozen=True)
class RestObs:
    """The poller's last look at the driver's REST API for one attempt (app)."""

    app: str
    at_ms: int
    activity: RestActivity | None  # None: unreachable, or not (yet) a jobs list


@dataclass(frozen=True)
class Observed:
    now_ms: int
    driver: DriverObs | None
    executors: ExecutorCounts
    rest: RestObs | None = None
    heartbeat: str | None = None  # the lakejob.io/heartbeat annotation
    # The driver pod's Ready condition: its readiness probe reached the Connect server's port
    # (render.sparksession). Spark's REST API answers well before that.
    driver_ready: bool = False
    route: Route = UNQUEUED  # where the session's queue leads (controllers.queueing.route)
    workload: WorkloadObs | None = None  # its Workload (status.workload), as Kueue left it


Verb = Literal["ensure_children", "create_driver", "delete_driver", "delete_children", "ensure_workload",
               "release_workload", "finish_workload"]


@dataclass(frozen=True)
class Action:
    verb: Verb
    attempt: int = 0
    pod: str = ""
    reason: str = ""  # finish_workload: Succeeded | Failed


Decision = decide_common.Decision[SparkSessionStatus, Action]


def spark_time_ms(value: str) -> int | None:
    """Spark REST's timestamps ("2026-11-22T18:41:06.711GMT") in ms since the epoch, or None when
    the text is not one (an answer we cannot read is no activity, and no reason to stop polling)."""
    try:
        return int(datetime.fromisoformat(value.removesuffix("GMT") + "+00:00").timestamp() * 1000)
    except ValueError:
        return None


def rest_activity(payload: Any) -> RestActivity | None:
    """The jobs list's meaning, or None when the payload is not a jobs list (e.g. the UI's
    "Spark is starting up" page)."""
    if not isinstance(payload, list) or not all(isinstance(j, dict) for j in payload):
        return None
    running = sum(1 for j in payload if j.get("status") == "RUNNING")
    times = [t for j in payload for k in ("submissionTime", "completionTime")
             if isinstance(j.get(k), str) and (t := spark_time_ms(j[k])) is not None]
    return RestActivity(running_jobs=running, last_activity_ms=max(times) if times else None)


class _Step(decide_common.StateStep[SparkSessionStatus, Action]):
    ready_states = frozenset({"idle", "busy"})

    def outcome_of(self, state: str, reason: str) -> decide_common.Outcome:
        # Livy's words: success is "successfully stopped", by spec.suspend (reason Stopped) or by
        # the server exiting 0 itself (DriverExited); dead is "exited", here only by the idle
        # timeout the spec asked for: neither is a failure. error is.
        if state == "success":
            return "Suspended" if reason == "Stopped" else "Complete"
        if state == "dead":
            return "Complete"
        return "Failed" if state == "error" else None

    def __init__(self, meta: Meta, status: SparkSessionStatus, obs: Observed):
        super().__init__(meta, status, obs.now_ms)
        self.obs = obs

    def rest_condition(self, reachable: bool, message: str) -> None:
        """RestReachable, with an Event when it flips (not on every poll)."""
        s = self.s
        old = next((c.status for c in s.conditions or [] if c.type == "RestReachable"), None)
        reason = "RestReachable" if reachable else "RestUnreachable"
        s.conditions = set_condition(s.conditions, "RestReachable", reachable, reason, message,
                                     self.meta.generation, iso(self.obs.now_ms))
        if old != ("True" if reachable else "False") and (old is not None or not reachable):
            self.d.events.append(("Normal" if reachable else "Warning", reason, message))

    def act(self, verb: Verb, attempt: int = 0, pod: str = "", reason: str = "") -> None:
        self.add(Action(verb, attempt, pod, reason))


def decide(spec: SparkSessionSpec | None, spec_error: str | None, meta: Meta, status: SparkSessionStatus,
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
        step.conditions()  # final; the conditions as this operator sets them
        spark_admission.finish_workload(step)  # a crash between the final status and the Workload's Finished lands here
    elif s.state == "shutting_down":
        _shutting_down(step)
    elif spec is None:
        # Only reachable if admission was bypassed (e.g. the CRD was replaced): stop, don't guess.
        _shutdown(step, "InvalidSpec", spec_error or "invalid spec", final="error")
    elif spec.suspend:
        _shutdown(step, "Stopped", "stopped by spec.suspend", final="success")
    else:
        _heartbeat(step)
        if spark_admission.gate(step, KIND, "not_started", lambda attempt: _start_attempt(step, attempt), LOST):
            {"not_started": _not_started, "starting": _starting, "idle": _live, "busy": _live,
             "recovering": _recovering}[s.state](step, spec, settings)
        elif s.reason == "Preempted":
            s.connectUrl = s.idleSince = s.runningJobs = None  # nothing listens until it is admitted again
    return step.d


def _new(step: _Step, spec: SparkSessionSpec | None, spec_error: str | None, settings: Settings) -> None:
    s, meta = step.s, step.meta
    s.id = meta.uid
    s.create_time = meta.created_ms
    if spec is None:
        step.transition("error", "InvalidSpec", spec_error or "invalid spec", warning=True)
        return
    if not spark_at_least_3_4(spark_version(spec, settings)):
        step.transition("error", "InvalidSpec", f"the operator's default Spark version {settings.default_spark_version} "
                        "has no Spark Connect: set spark_version 3.4 or later", warning=True)
        return
    if (refused := problem(spec, settings)) is not None:
        # No image for its spark_version, or a file that cannot be named: nothing is created.
        step.transition("error", *refused, warning=True)
        return
    record_sizing(s, spec, resolve_sizing(spec))  # the model refuses sizes that cannot be made (parse)
    s.kind = spec.kind
    s.heartbeat = _heartbeat_token(step.obs.heartbeat)  # the value at creation is not activity
    if spec.suspend:
        step.transition("success", "Stopped", "created with suspend: true; nothing was started")
        return
    spark_admission.begin(step, KIND, "not_started", lambda attempt: _start_attempt(step, attempt))


def _start_attempt(step: _Step, attempt: int) -> None:
    s = step.s
    s.attempt = attempt
    s.driverPod = Names.of(step.meta.name, "SparkSession").driver_pod(attempt)
    s.appId = app_id(step.meta.uid, attempt)
    s.driverStartTime = step.obs.now_ms
    s.nextAttemptTime = None
    s.connectUrl = connect_url(step.meta.name, step.meta.namespace)
    s.idleSince = s.runningJobs = None
    step.act("ensure_children", attempt)
    step.act("create_driver", attempt, s.driverPod)


def _timeout_s(spec: SparkSessionSpec, settings: Settings) -> int:
    return parse_duration(spec.schedulingTimeout) if spec.schedulingTimeout else settings.scheduling_timeout_s


def _waited_s(step: _Step) -> float:
    return (step.obs.now_ms - (step.s.driverStartTime or step.obs.now_ms)) / 1000


def _not_started(step: _Step, spec: SparkSessionSpec, settings: Settings) -> None:
    s, drv = step.s, step.obs.driver
    assert s.attempt is not None and s.driverPod is not None
    waited, timeout = _waited_s(step), _timeout_s(spec, settings)
    if drv is not None and drv.phase == "Running":
        step.transition("starting", "DriverRunning", f"driver pod {drv.name} is running; waiting for Spark")
        _starting(step, spec, settings)
    elif drv is not None and drv.phase in ("Succeeded", "Failed"):
        _driver_ended(step, spec, settings, drv)
    elif waited >= timeout:
        reason, why = not_started_reason(drv, s.driverPod)
        s.log = status_log([f"{reason}: {why}"])
        _shutdown(step, reason, f"driver not running after {timeout}s schedulingTimeout: {why}", final="error")
    else:
        if drv is None:
            # Recorded but not (yet) seen: create it (idempotent; a lost create after a crash lands here).
            step.act("ensure_children", s.attempt)
            step.act("create_driver", s.attempt, s.driverPod)
        step.d.requeue_after_s = max(1.0, min(timeout - waited + 0.5, settings.resync_interval_s))


def _rest(step: _Step) -> RestObs | None:
    """The poller's look at this attempt's driver (an older attempt's does not count)."""
    rest = step.obs.rest
    return rest if rest is not None and rest.app == step.s.appId else None


def _ended(drv: DriverObs | None) -> bool:
    return drv is None or drv.phase in ("Succeeded", "Failed")


def _starting(step: _Step, spec: SparkSessionSpec, settings: Settings) -> None:
    s, drv = step.s, step.obs.driver
    if _ended(drv):
        _driver_ended(step, spec, settings, drv)
        return
    rest = _rest(step)
    if rest is not None and rest.activity is not None:
        step.rest_condition(True, "the driver's REST API answers")
        if step.obs.driver_ready:
            s.lastActivityTime = iso(max(step.obs.now_ms, rest.activity.last_activity_ms or 0))
            _apply_activity(step, spec, settings, rest.activity, first=True)
            return
        # Not idle yet: a client told so now would find nothing listening on the Connect port.
        step.transition("starting", "WaitingForConnect", "Spark's REST API answers; waiting for the Spark "
                        f"Connect server to listen on port {CONNECT_PORT} (the driver pod's readiness)")
    waited, timeout = _waited_s(step), _timeout_s(spec, settings)
    if waited >= timeout:
        what = "the driver's REST API did not answer" if s.reason != "WaitingForConnect" else \
            f"the Spark Connect server did not listen on port {CONNECT_PORT}"
        s.log = [f"StartTimeout: {what} within {timeout}s"]
        _shutdown(step, "StartTimeout", f"Spark did not come up within {timeout}s schedulingTimeout", final="error")
        return
    step.d.requeue_after_s = max(1.0, min(timeout - waited + 0.5, settings.resync_interval_s))


def _live(step: _Step, spec: SparkSessionSpec, settings: Settings) -> None:
    s, drv = step.s, step.obs.driver
    if _ended(drv):
        _driver_ended(step, spec, settings, drv)
        return
    rest = _rest(step)
    if rest is None:
        _idle_clock(step, spec, settings)
        return
    if rest.activity is None:
        step.rest_condition(False, f"the driver's REST API did not answer at {iso(rest.at_ms)}; "
                                   f"the state stays {s.state} until it does")
        return  # what it is doing cannot be seen: no transition, and no idle timeout
    step.rest_condition(True, "the driver's REST API answers")
    _apply_activity(step, spec, settings, rest.activity, first=False)


def _apply_activity(step: _Step, spec: SparkSessionSpec, settings: Settings, activity: RestActivity,
                    first: bool) -> None:
    s, now = step.s, step.obs.now_ms
    s.runningJobs = activity.running_jobs
    if activity.last_activity_ms is not None and activity.last_activity_ms > (iso_ms(s.lastActivityTime) or 0):
        s.lastActivityTime = iso(activity.last_activity_ms)
    if activity.running_jobs > 0:
        s.idleSince = None
        step.transition("busy", "JobsRunning", f"{activity.running_jobs} Spark job(s) running")
        return
    if s.state != "idle" or first:
        # Idle from the last activity (a job that finished between polls), never earlier than now
        # minus one poll: a session is not timed out for an idleness we did not see.
        since = max(iso_ms(s.lastActivityTime) or now, now - int(settings.session_poll_interval_s * 1000))
        s.idleSince = iso(min(since, now))
        step.transition("idle", "Idle", "no Spark job running" if not first else "Spark Connect server is up")
    elif (iso_ms(s.lastActivityTime) or 0) > (iso_ms(s.idleSince) or 0):
        s.idleSince = s.lastActivityTime  # a job ran and finished between two polls
    _idle_clock(step, spec, settings)


def _heartbeat(step: _Step) -> None:
    """A changed lakejob.io/heartbeat annotation is activity: it resets the idle clock."""
    s, hb = step.s, _heartbeat_token(step.obs.heartbeat)
    if hb is None or hb == s.heartbeat:
        return
    s.heartbeat = hb
    s.lastActivityTime = iso(step.obs.now_ms)
    if s.state == "idle":
        s.idleSince = s.lastActivityTime


def _heartbeat_token(annotation: str | None) -> str | None:
    return decide_common.clip(annotation, HEARTBEAT_BYTES) if annotation is not None else None


def _idle_timeout_s(spec: SparkSessionSpec, settings: Settings) -> int:
    return spec.heartbeatTimeoutInSecond if spec.heartbeatTimeoutInSecond is not None \
        else settings.session_idle_timeout_s


def _idle_clock(step: _Step, spec: SparkSessionSpec, settings: Settings) -> None:
    """Shut an idle session down once its idle time passes heartbeatTimeoutInSecond (0: never)."""
    s, now = step.s, step.obs.now_ms
    timeout = _idle_timeout_s(spec, settings)
    since = iso_ms(s.idleSince)
    if s.state != "idle" or timeout == 0 or since is None:
        return
    unreachable = any(c.type == "RestReachable" and c.status == "False" for c in s.conditions or [])
    if unreachable:
        return
    due = since + timeout * 1000
    if now >= due:
        _shutdown(step, "IdleTimeout", f"idle since {s.idleSince}, longer than heartbeatTimeoutInSecond "
                                       f"({timeout}s)", final="dead")
    else:
        step.d.requeue_after_s = (due - now) / 1000 + 0.1


def _driver_ended(step: _Step, spec: SparkSessionSpec, settings: Settings, drv: DriverObs | None) -> None:
    s, obs = step.s, step.obs
    assert s.attempt is not None
    if drv is not None and drv.phase == "Succeeded":
        _shutdown(step, "DriverExited", f"the Spark Connect server in {drv.name} exited with code 0", final="success")
        return
    if drv is None:
        reason, message = "DriverPodMissing", f"driver pod {s.driverPod} disappeared"
        s.log = [message]
    else:
        why = _failure(drv)
        code = "unknown" if drv.exit_code is None else str(drv.exit_code)
        reason, message = drv.term_reason or "DriverFailed", f"driver pod {drv.name} failed with exit code {code}: {why}"
        s.log = status_log([f"exit code {code}, reason {drv.term_reason or 'unknown'}"
                            + (f": {drv.term_message}" if drv.term_message else "")])
    s.idleSince = s.runningJobs = None
    max_retries = spec.max_retry_times if spec.max_retry_times is not None else settings.default_max_retry_times
    tries = spark_admission.tries(s)
    if spec.auto_recovery and tries <= max_retries:
        delay = min(settings.retry_backoff_s * 2 ** (tries - 1), settings.retry_backoff_max_s)
        s.nextAttemptTime = obs.now_ms + int(delay * 1000)
        step.transition("recovering", reason, f"{message}; new driver {tries} of {max_retries} in {delay:.0f}s",
                        warning=True)
        step.d.requeue_after_s = delay
    else:
        retries = f" after {tries - 1} recoveries" if spec.auto_recovery else ""
        s.connectUrl = None
        step.transition("error", reason, message + retries, warning=True)
        spark_admission.finish_workload(step)


def _failure(drv: DriverObs) -> str:
    """Why a driver failed, in one line. A JVM killed by a signal (the OOM killer, a crash, kill -9)
    leaves no exception: its log's last line is whatever it logged before, so the signal is named;
    else the exception the log ends with (its termination message is the log's tail)."""
    if drv.term_reason != "OOMKilled" and drv.exit_code is not None and drv.exit_code > 128:
        number = drv.exit_code - 128  # a shell's (and tini's) way of reporting a child killed by a signal
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return headline(drv.term_message or "") or drv.term_reason or "the driver failed"


def _recovering(step: _Step, spec: SparkSessionSpec, settings: Settings) -> None:
    s, obs = step.s, step.obs
    assert s.attempt is not None
    due = s.nextAttemptTime or obs.now_ms
    if obs.now_ms < due:
        step.d.requeue_after_s = (due - obs.now_ms) / 1000
        return
    _start_attempt(step, s.attempt + 1)
    step.transition("not_started", "Recovering", f"driver pod {s.driverPod} created (attempt {s.attempt})")


# ------------------------------------------------------------------------------------ shutdown

# The state a shutdown ends in, by the reason it was started for (kept in status.reason meanwhile).
_FINAL_BY_REASON = {"IdleTimeout": "dead", "Stopped": "success", "DriverExited": "success"}


def _shutdown(step: _Step, reason: str, message: str, final: str) -> None:
    """Stop the driver (gracefully: Spark stops its executors), then finish in `final`."""
    s, drv = step.s, step.obs.driver
    s.idleSince = None
    if drv is not None and not drv.deleting and drv.phase in ("Pending", "Running", "Unknown"):
        step.act("delete_driver", pod=drv.name)
        if final == "error":  # errors are not a request to stop: no shutting_down
            s.connectUrl = None
            step.transition("error", reason, message, warning=True)
            spark_admission.finish_workload(step)
            return
        step.transition("shutting_down", reason, message, warning=reason == "IdleTimeout")
        step.d.requeue_after_s = 2
        return
    _finish(step, final, reason, message)


def _shutting_down(step: _Step) -> None:
    s, drv = step.s, step.obs.driver
    if drv is not None and drv.phase in ("Pending", "Running", "Unknown"):
        if not drv.deleting:
            step.act("delete_driver", pod=drv.name)
        step.d.requeue_after_s = 2
        return
    reason = s.reason or "Stopped"
    _finish(step, _FINAL_BY_REASON.get(reason, "success"), reason, s.message or "")


def _finish(step: _Step, final: str, reason: str, message: str) -> None:
    s = step.s
    s.connectUrl = s.idleSince = s.runningJobs = None
    s.nextAttemptTime = None
    if final != "error" and s.attempt is not None:
        # A session that ended as asked for holds nothing; one in error keeps its objects for inspection.
        step.act("delete_children", attempt=s.attempt)
    step.transition(final, reason, message, warning=final == "error")
    spark_admission.finish_workload(step)  # after the transition: its reason depends on the final state

