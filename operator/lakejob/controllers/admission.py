"""Kueue admission as every kind's pure decide reads it (docs/queues.md). No I/O.

- `summarize_workload`: what the Workload index keeps of a Workload (only what decide reads, so
  Kueue's other status writes wake no pass);
- `WorkloadObs`: that summary as decide sees it — admitted, waiting (with Kueue's reason and
  message), evicted and still holding its quota (the owner must stop the pods, then release it),
  finished;
- `Route`: where a job's queue name leads, as the reconciler resolved it (a LocalQueue; nowhere,
  so the job runs unqueued; or a reason to wait without a Workload);
- `set_admitted`: the `Admitted` condition, present only on jobs that go through a queue.

Imported by controllers/<kind>_decide.py and, for the index and the routes, by controllers.queueing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lakejob.controllers.decide_common import MESSAGE_BYTES, clip, iso
from lakejob.models.common import Condition, set_condition

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
    return {"name": body["metadata"]["name"], "reserved": reserved, "admitted": true("Admitted"),
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
