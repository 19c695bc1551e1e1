"""Pieces every kind's pure `decide` shares: the CR's identity, timestamps, the two conditions.

Imported by controllers/<kind>_decide.py (pure, no I/O) and by their reconcilers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from lakejob.models.common import Condition, set_condition


@dataclass(frozen=True)
class Meta:
    """What decide needs of the CR's metadata."""

    name: str
    namespace: str
    uid: str
    generation: int
    created_ms: int


def iso(ms: int) -> str:
    """A Kubernetes timestamp (seconds) from milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(value: str | None) -> int | None:
    """Milliseconds since the epoch from an ISO timestamp (with Z or an offset)."""
    if not value:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def ready_and_complete(conditions: list[Condition] | None, *, ready: bool, complete: bool, reason: str,
                       message: str, generation: int, now: str) -> list[Condition]:
    """Every kind's two conditions: Ready (working, or done well) and Complete (finished, and why)."""
    out = set_condition(conditions, "Ready", ready, reason, message, generation, now)
    return set_condition(out, "Complete", complete, reason if complete else "NotFinished",
                         message if complete else "", generation, now)


class StateStatus(Protocol):
    """A status with a `state` and the fields every transition sets (SparkBatch's, SparkSession's)."""

    state: Any
    reason: str | None
    message: str | None
    update_time: int | None
    conditions: list[Condition] | None


S = TypeVar("S", bound=BaseModel)
A = TypeVar("A")


@dataclass
class Decision(Generic[S, A]):
    """What decide returns: the new status, the actions to take, the Events to post, when to look again."""

    status: S
    actions: list[A] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after_s: float | None = None


class StateStep(Generic[S, A]):
    """Accumulates one decision over a status with a `state`: each transition sets reason, message,
    update_time, the Ready/Complete conditions, and one Event. Subclasses say which states are ready
    and which are terminal."""

    ready_states: frozenset[str] = frozenset()
    terminal_states: frozenset[str] = frozenset()

    def __init__(self, meta: Meta, status: S, now_ms: int):
        self.meta, self.now_ms = meta, now_ms
        self.d: Decision[S, A] = Decision(status=status.model_copy(deep=True))

    @property
    def s(self) -> S:
        return self.d.status

    def transition(self, state: str, reason: str, message: str, *, warning: bool = False) -> None:
        s: StateStatus = self.s  # type: ignore[assignment]
        if s.state == state and s.reason == reason:
            return
        s.state = state
        s.reason, s.message = reason, message
        s.update_time = self.now_ms
        s.conditions = ready_and_complete(s.conditions, ready=state in self.ready_states,
                                          complete=state in self.terminal_states, reason=reason, message=message,
                                          generation=self.meta.generation, now=iso(self.now_ms))
        self.d.events.append(("Warning" if warning else "Normal", reason, f"{state}: {message}"))

    def add(self, action: A) -> None:
        self.d.actions.append(action)
