"""Kueue's gate as the Spark kinds' decide functions use it (docs/queues.md). Pure, no I/O.

SparkBatch and SparkSession go through a queue the same way, around admission.gate: a new job in a
queue waits in its kind's not-yet-running state (`waiting_state`: SparkBatch `starting`,
SparkSession `not_started`) with no driver until its Workload is admitted (`begin`, `gate`); once
admitted it starts a new attempt's driver; preempted, its driver is stopped, the quota handed back
once the driver and its executors are gone (`release_workload`), and it waits again in
`waiting_state` (reason Preempted: not a failure, not a retry, see `tries`); its end marks the
Workload Finished (`finish_workload`), which frees the quota.

Called by controllers.sparkbatch_decide and controllers.sparksession_decide, each with its own
step (decide_common.StateStep), which this module reads through the protocols below.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from lakejob.controllers import admission
from lakejob.controllers.admission import Route, WorkloadObs
from lakejob.controllers.decide_common import Meta, Outcome
from lakejob.models.spark import ExecutorCounts

# The actions this module asks of a kind's step (each kind's Verb holds them).
Verb = Literal["delete_driver", "ensure_workload", "release_workload", "finish_workload"]


class Driver(Protocol):
    """The current attempt's driver pod as observed (sparkbatch_decide.DriverObs)."""

    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def deleting(self) -> bool: ...


class Observed(Protocol):
    """What a Spark kind observed, as far as the gate reads it."""

    @property
    def now_ms(self) -> int: ...

    @property
    def driver(self) -> Driver | None: ...

    @property
    def executors(self) -> ExecutorCounts: ...

    @property
    def route(self) -> Route: ...

    @property
    def workload(self) -> WorkloadObs | None: ...


class Status(admission.Queued, Protocol):
    """A Spark kind's status (models.spark.SparkAppStatus and the kind's `state`)."""

    state: Any
    reason: str | None
    queue: str | None
    attempt: int | None
    driverPod: str | None
    nextAttemptTime: int | None


class Step(Protocol):
    """A Spark kind's decide step (decide_common.StateStep with the kind's `obs` and `act`)."""

    meta: Meta

    @property
    def s(self) -> Status: ...

    @property
    def d(self) -> admission.Deciding: ...

    @property
    def obs(self) -> Observed: ...

    def transition(self, state: str, reason: str, message: str, *, warning: bool = False) -> None: ...

    def act(self, verb: Verb, attempt: int = 0, pod: str = "", reason: str = "") -> None: ...

    def outcome_of(self, state: str, reason: str) -> Outcome: ...


def begin(step: Step, kind: str, waiting_state: str, start: Callable[[int], None]) -> None:
    """A new job's first pass: into its queue (`waiting_state`, reason Queued, its Workload asked
    for), or, in no queue, its first attempt's driver (`start(attempt)` records and creates it)."""
    s = step.s
    if step.obs.route.queued:
        step.transition(waiting_state, "Queued", f"waiting for admission to queue {s.queue}")
        gate(step, kind, waiting_state, start)
        return
    start(1)
    step.transition(waiting_state, "DriverCreated", f"driver pod {s.driverPod} created (attempt 1)")


def gate(step: Step, kind: str, waiting_state: str, start: Callable[[int], None], lost: str = "") -> bool:
    """Kueue's gate in front of the live states (admission.gate): True when the job may go on (it
    holds its admission, or it is in no queue); else it waits, and this pass has done what waiting
    needs. Waiting means `waiting_state` with no driver of the current attempt (status.driverPod
    unset). `lost`: what a preemption costs the job besides its driver, said in its messages."""
    s, obs, meta = step.s, step.obs, step.meta
    waiting = s.state == waiting_state and s.driverPod is None
    outcome = admission.gate(s, step.d, kind, meta.name, meta.generation, obs.now_ms, obs.route,
                             obs.workload, waiting, lambda: step.act("ensure_workload"))
    if outcome == "preempted" and obs.driver is not None and obs.driver.phase == "Succeeded":
        return True  # it ended well before the eviction was seen: a success, and Finished frees the quota
    if outcome == "preempted":
        assert obs.workload is not None
        _preempted(step, obs.workload, waiting_state, lost)
    elif outcome == "admitted" or (outcome == "go" and waiting):
        # (go while waiting: it waited for a queue that no longer applies — LAKEJOB_QUEUEING changed,
        # Kueue gone under `auto` — and starts unqueued.)
        start((s.attempt or 0) + 1)
        after = " after admission" if outcome == "admitted" else " (not queued)"
        step.transition(waiting_state, "DriverCreated",
                        f"driver pod {s.driverPod} created (attempt {s.attempt}){after}")
        return False
    return outcome == "go"


def _preempted(step: Step, wl: WorkloadObs, waiting_state: str, lost: str) -> None:
    """Kueue evicted the job's Workload: stop the driver (its executors go with it), then hand the
    quota back (release_workload) and wait in `waiting_state` to be admitted again. Not a failure."""
    s, obs, meta = step.s, step.obs, step.meta
    first = s.reason != "Preempted"  # first sight of this eviction
    why = admission.preempted(s, wl, meta.generation, obs.now_ms, first)
    if first:
        s.nextAttemptTime = None
        step.transition(waiting_state, "Preempted", f"{why}; {lost}it waits to be admitted again")
    # An ended driver (failed, say, and waiting out a retry's backoff) holds nothing: only a live one waits.
    live = obs.driver is not None and obs.driver.phase in ("Pending", "Running", "Unknown")
    if live or obs.executors.pending or obs.executors.running:
        stop_driver(step)
        step.d.requeue_after_s = 2  # the pods' deletion events wake it too
        return
    step.act("release_workload")
    s.driverPod = None


def stop_driver(step: Step) -> None:
    """Delete the current driver while it may still run (once: not while it is being deleted)."""
    drv = step.obs.driver
    if drv is not None and not drv.deleting and drv.phase in ("Pending", "Running", "Unknown"):
        step.act("delete_driver", pod=drv.name)


def finish_workload(step: Step) -> None:
    """The job ended: its Workload Finished (Kueue frees the quota), until Kueue shows it so."""
    s = step.s
    if admission.to_finish(s, step.obs.workload):
        # Succeeded: the kind's `success` (a session stopped as asked too) or an end it calls Complete
        # (a session's idle timeout, `dead`); any other end (a failure, a batch killed) is Failed.
        succeeded = s.state == "success" or step.outcome_of(s.state, s.reason or "") == "Complete"
        step.act("finish_workload", reason="Succeeded" if succeeded else "Failed")


def tries(s: Status) -> int:
    """The attempts that count against max_retry_times: a preemption's new attempt is no try."""
    assert s.attempt is not None
    return s.attempt - ((s.workload.preemptions or 0) if s.workload else 0)
