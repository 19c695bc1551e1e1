"""Kueue admission as every kind's pure decide reads it (docs/queues.md). No I/O.

- `summarize_workload`: what the Workload index keeps of a Workload (only what decide reads, so
  Kueue's other status writes wake no pass);
- `WorkloadObs`: that summary as decide sees it — admitted, waiting (with Kueue's reason and
  message), evicted and still holding its quota (the owner must stop the pods, then release it),
  finished;
- `Route`: where a job's queue name leads, as the reconciler resolved it (a LocalQueue; nowhere,
  so the job runs unqueued; or a reason to wait without a Workload);
- `set_admitted`: the `Admitted` condition, present only on jobs that go through a queue;
- `gate`: Kueue's gate in front of a kind's live states, the same for every kind (the kind says
  when its job is waiting, how it asks for its Workload, and what it does on "preempted" and
  "admitted"); `preempted`: what every kind records of an eviction.

Imported by controllers/<kind>_decide.py and, for the index and the routes, by controllers.queueing.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lakejob.controllers.decide_common import MESSAGE_BYTES, clip, iso
from lakejob.models.common import Condition, WorkloadStatus, set_condition
from lakejob.render.workload import RUN_LABEL, workload_name

ADMITTED = "Admitted"


def _conditions(body: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (body.get("status") or {}).get("conditions") or ()}


def summarize_workload(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Workload index's entry: name, whether Kueue reserved quota / admitted / evicted / finished
    it, and the reason and message of the condition that explains it."""
    conds = _conditions(body)

    def true(kind: str) -> bool:
        return conds.get(kind, {}).get("status") == "True"

    reserved, evicted = true("QuotaReserved"), true("Evicted")
    why = conds.get("Evicted" if evicted else "QuotaReserved", {})
    admission = (body.get("status") or {}).get("admission") or {}
    run = (body["metadata"].get("labels") or {}).get(RUN_LABEL)
    return {"name": body["metadata"]["name"], "run": run, "reserved": reserved, "admitted": true("Admitted"),
            "evicted": evicted, "finished": true("Finished"),
            "active": (body.get("spec") or {}).get("active", True) is not False,
            "reason": why.get("reason", ""), "message": why.get("message", ""),
            "clusterQueue": admission.get("clusterQueue")}


@dataclass(frozen=True)
class WorkloadObs:
    """A job's Workload as Kueue last left it."""

    name: str
    reserved: bool = False  # QuotaReserved: Kueue counts it against the queue
    admitted: bool = False
    evicted: bool = False
    finished: bool = False
    active: bool = True
    reason: str = ""  # of Evicted when evicted, else of QuotaReserved (Pending, Inadmissible, …)
    message: str = ""
    clusterQueue: str | None = None
    run: str | None = None  # the run of the job it was made for (its lakejob.io/run label), if the kind has runs

    @classmethod
    def of(cls, summary: Mapping[str, Any] | None) -> WorkloadObs | None:
        if summary is None:
            return None
        return cls(**{k: v for k, v in summary.items() if k in cls.__dataclass_fields__})

    @property
    def must_release(self) -> bool:
        """Evicted while still holding its quota: Kueue waits for the owner to stop the job's pods
        and then clear the reservation (as its own jobframework does)."""
        return self.evicted and self.reserved and not self.finished

    @property
    def runs(self) -> bool:
        """Admitted and not being taken back: the job may have pods."""
        return self.admitted and not self.evicted and not self.finished


@dataclass(frozen=True)
class Route:
    """Where a job's queue leads (controllers.queueing.route): `local_queue`, or a reason to wait
    without a Workload (`wait`, `message`); neither: the job runs unqueued, as without a queue."""

    local_queue: str | None = None
    wait: str | None = None  # KueueNotInstalled | InvalidQueueName
    message: str = ""

    @property
    def queued(self) -> bool:
        return self.local_queue is not None or self.wait is not None


UNQUEUED = Route()


def set_admitted(conditions: list[Condition] | None, admitted: bool, reason: str, message: str,
                 generation: int, now_ms: int) -> list[Condition]:
    """`conditions` with `Admitted` set (the only place it is set: a job in no queue has none)."""
    return set_condition(conditions, ADMITTED, admitted, clip(reason, 128) or "Pending",
                         clip(message, MESSAGE_BYTES), generation, iso(now_ms))


def waiting_message(wl: WorkloadObs | None, name: str, local_queue: str) -> tuple[str, str]:
    """(reason, message) of a job waiting for admission: Kueue's own while it has said something."""
    if wl is not None and wl.message and not wl.reserved:
        return wl.reason or "Pending", f"Workload {name} in LocalQueue {local_queue}: {wl.message}"
    return "Pending", f"Workload {name} waits for Kueue to admit it from LocalQueue {local_queue}"


class Queued(Protocol):
    """A kind's status as the gate reads and writes it."""

    workload: WorkloadStatus | None
    conditions: list[Condition] | None


class Deciding(Protocol):
    """A kind's decision as the gate adds to it."""

    events: list[tuple[str, str, str]]
    requeue_after_s: float | None


# How often a job waiting without a Workload (Kueue missing, a queue name no LocalQueue can have)
# looks again: Kueue may be installed, the operator's queue map changed.
QUEUE_RECHECK_S = 30.0

# What the gate found: go on with the live states; wait (this pass did what waiting needs); the
# kind must handle an eviction (`preempted`, then stop its pods and release); or Kueue admitted the
# job, recorded here, and the kind starts it now.
Gate = Literal["go", "wait", "preempted", "admitted"]


def gate(s: Queued, d: Deciding, kind: str, name: str, generation: int, now_ms: int, route: Route,
         wl: WorkloadObs | None, waiting: bool, ensure: Callable[[], None], run: int | None = None) -> Gate:
    """Kueue's gate in front of a kind's live states (docs/queues.md).

    `waiting`: the job is in its not-yet-running state with no pod of the current attempt (the only
    state in which it asks for admission or is started by it). `ensure` asks the reconciler for the
    Workload (idempotent). `run`: a kind whose job has runs (FlinkJarJob) makes one Workload per run,
    labelled with it; a Workload of another run is taken as not seen yet. A job that began unqueued is
    never queued mid-run (Kueue installed under it); one whose Workload is gone while it runs runs on
    (nothing is left to hold)."""
    if wl is not None and run is not None and wl.run != str(run):
        wl = None  # the previous run's, until the watch shows this run's
    if waiting and s.workload is not None and wl is None and route.local_queue is None:
        # Its Workload gone with Kueue's API (uninstalled, or LAKEJOB_QUEUEING now off) while it
        # waited: routed afresh below (unqueued under `auto`, KueueNotInstalled under `required`).
        s.workload = None
        s.conditions = [c for c in s.conditions or [] if c.type != ADMITTED] or None
    if s.workload is None:
        if not waiting or not route.queued:
            return "go"
        if route.local_queue is None:
            s.conditions = set_admitted(s.conditions, False, route.wait or "Pending", route.message, generation, now_ms)
            d.requeue_after_s = QUEUE_RECHECK_S
            return "wait"
        s.workload = WorkloadStatus(name=workload_name(kind, name), localQueue=route.local_queue)
        ensure()
        reason, message = waiting_message(None, s.workload.name, s.workload.localQueue)
        s.conditions = set_admitted(s.conditions, False, reason, message, generation, now_ms)
        d.events.append(("Normal", "Queued", message))
        return "wait"
    if wl is None:
        if waiting:
            ensure()  # not seen yet, or deleted by someone while it waited: made again
        return "wait" if waiting else "go"
    if wl.must_release:
        return "preempted"
    if not waiting:
        return "go"
    if not wl.runs:
        reason, message = waiting_message(wl, s.workload.name, s.workload.localQueue)
        s.conditions = set_admitted(s.conditions, False, reason, message, generation, now_ms)
        return "wait"
    s.workload.admitted, s.workload.clusterQueue = True, wl.clusterQueue
    message = f"Workload {s.workload.name} admitted by ClusterQueue {wl.clusterQueue}"
    s.conditions = set_admitted(s.conditions, True, "Admitted", message, generation, now_ms)
    d.events.append(("Normal", "Admitted", message))
    return "admitted"


def preempted(s: Queued, wl: WorkloadObs, generation: int, now_ms: int, first: bool) -> str:
    """Record an eviction (`first`: its first sight, counted once) in the Admitted condition and
    status.workload; the description of it, for the kind's transition."""
    assert s.workload is not None
    why = f"Kueue evicted Workload {s.workload.name} ({wl.reason}): {wl.message}"
    if first:
        s.workload.preemptions = (s.workload.preemptions or 0) + 1
        s.workload.admitted = False
    s.conditions = set_admitted(s.conditions, False, "Preempted", why, generation, now_ms)
    return why


def to_finish(s: Queued, wl: WorkloadObs | None, run: int | None = None) -> bool:
    """Whether an ended job's Workload still needs its Finished (Kueue frees the quota on it): until
    Kueue shows it Finished, so a lost write is made again; not a Workload of another run."""
    if s.workload is None or wl is None or wl.finished or (run is not None and wl.run is not None and wl.run != str(run)):
        return False
    s.workload.admitted = False
    return True
