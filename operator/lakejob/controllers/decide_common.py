"""Pieces every kind's pure `decide` shares: the CR's identity, timestamps, the conditions, and
the bounds on what a status may hold.

Conditions (the same four on every kind, so that automation waits on each the same way, and named
as a Kubernetes Job's, which is what `kubectl wait` users and Argo Workflows expect): `Ready`
(working, or done well), and at most one of `Complete` (ended well), `Failed` (ended badly) and
`Suspended` (stopped by spec.suspend) True. A user's stop is neither success nor failure, so
neither `kubectl wait --for=condition=Complete` nor `--for=condition=Failed` may return for it;
Suspended is the condition a Job has for it. Each kind's decide maps its states to an `Outcome`
from its status alone, so that a pass over a finished object (made by an older operator, which set
Complete on failures too) puts its conditions right.

Imported by controllers/<kind>_decide.py (pure, no I/O) and by their reconcilers.

Bounds: a status is one etcd object (1.5 MiB with the spec, metadata and everything else), and
text decide copies into it comes from outside (a driver's log, a termination message, a REST
answer, a child's status, the parse error of a spec): a driver that prints one 2 MB line and fails
would otherwise make a status the API server refuses on every pass, and the job would stick.
`clip` and `tail` cut such text on a UTF-8 character boundary and say so in the text.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from lakejob.models.common import Condition, set_condition


# A status message or description (each is stored at most three times: the field, the Ready
# condition and the outcome's condition). The kubelet's own termination messages are at most 4096 bytes too.
MESSAGE_BYTES = 4096
# A machine-readable reason, one word (events.k8s.io/v1 refuses an Event reason longer than 128).
REASON_BYTES = 128
# A log tail in status (status.log): each line, and all of them together.
LOG_LINE_BYTES = 2048
LOG_BYTES = 8192


def clip(text: str, max_bytes: int) -> str:
    """`text` when its UTF-8 form fits in `max_bytes`, else its beginning cut on a character
    boundary and followed by a mark with the full size, all within `max_bytes` (at least 64)."""
    # surrogatepass: a lone surrogate (JSON allows "\ud800") is counted, not an error.
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    mark = f" …[cut: {len(data)} bytes in all]"
    keep = max_bytes - len(mark.encode())
    while keep > 0 and data[keep] & 0xC0 == 0x80:  # a continuation byte: the cut is inside a character
        keep -= 1
    return data[:keep].decode("utf-8", "surrogatepass") + mark


def tail(lines: list[str], max_lines: int, line_bytes: int = LOG_LINE_BYTES,
         total_bytes: int = LOG_BYTES) -> list[str]:
    """The last `max_lines` (at least 1) lines, each clipped to `line_bytes`, and of those the last
    ones that fit in `total_bytes` together (the earliest kept one clipped to what is left, when
    that is enough to be read): the end of a log is what tells why a program failed."""
    out: list[str] = []
    left = total_bytes
    for line in reversed(lines[-max_lines:]):
        line = clip(line, line_bytes)
        size = len(line.encode("utf-8", "surrogatepass"))
        if size > left:
            if left >= 256:  # room for the cut mark and a readable part of the line
                out.append(clip(line, left))
            break
        out.append(line)
        left -= size
    return out[::-1]


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


# How a run ended; None: it has not (or it runs again after a stop).
Outcome = Literal["Complete", "Failed", "Suspended"] | None
OUTCOMES = ("Complete", "Failed", "Suspended")


def job_conditions(conditions: list[Condition] | None, *, ready: bool, outcome: Outcome, reason: str,
                   message: str, generation: int, now: str) -> list[Condition]:
    """`conditions` with Ready, Complete, Failed and Suspended set (others, such as Reconciled or
    RestReachable, kept). Each has the transition's reason (on a False one it says why not: a
    Complete=False with reason Error); only Ready and the True outcome carry its message."""
    out = set_condition(conditions, "Ready", ready, reason, message, generation, now)
    for kind in OUTCOMES:
        out = set_condition(out, kind, outcome == kind, reason, message if outcome == kind else "", generation, now)
    return out


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


class StateStep(ABC, Generic[S, A]):
    """Accumulates one decision over a status with a `state`: each transition sets reason, message,
    update_time, the conditions, and one Event. Subclasses say which states are ready and how a
    state (entered for a reason) ended the run."""

    ready_states: frozenset[str] = frozenset()

    def __init__(self, meta: Meta, status: S, now_ms: int):
        self.meta, self.now_ms = meta, now_ms
        self.d: Decision[S, A] = Decision(status=status.model_copy(deep=True))

    @property
    def s(self) -> S:
        return self.d.status

    def transition(self, state: str, reason: str, message: str, *, warning: bool = False) -> None:
        s: StateStatus = self.s  # type: ignore[assignment]
        reason, message = clip(reason, REASON_BYTES), clip(message, MESSAGE_BYTES)
        if s.state == state and s.reason == reason:
            return
        s.state = state
        s.reason, s.message = reason, message
        s.update_time = self.now_ms
        self.conditions()
        self.d.events.append(("Warning" if warning else "Normal", reason, f"{state}: {message}"))

    @abstractmethod
    def outcome_of(self, state: str, reason: str) -> Outcome:
        """How `state`, entered for `reason`, ended the run; None: it has not."""

    def conditions(self) -> None:
        """Set the conditions from the status's state, reason and message: on every transition, and
        on each pass over a finished object (an older operator may have set them otherwise)."""
        s: StateStatus = self.s  # type: ignore[assignment]
        if s.state is None:
            return
        reason = s.reason or ""
        s.conditions = job_conditions(s.conditions, ready=s.state in self.ready_states,
                                      outcome=self.outcome_of(s.state, reason), reason=reason,
                                      message=s.message or "", generation=self.meta.generation, now=iso(self.now_ms))

    def add(self, action: A) -> None:
        self.d.actions.append(action)
