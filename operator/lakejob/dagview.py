"""`lakejob get dag NAME`: a DagJob as `argo get` shows a workflow. Pure: the DagJob object as the
apiserver returns it, and the time now → the lines to print. lakejob.submit reads the object
(the user's kubeconfig) and prints them; tests/unit/test_dagview.py pins the format.

A header (Name, Namespace, Status, Message, Priority, Created, Started, Finished, Duration,
Progress), then one row per task under the job's own row, as a tree of the DAG:

    TASK                                         KIND        INSTANCES        RUNS  RETRIES  DURATION  MESSAGE
     ● etl                                       DagJob      3/5 (1 running)                 59s
     ├─✔ extract                                 command     2/2              1     max 2    12s
     │ └─✔ load                                  command     1/1              1     max 0    3s
     │   └─◷ report (also after extract, train)  command     0/1              0     max 0    -
     └─● train                                   SparkBatch  0/1 (1 running)  1     -        59s       run 1: etl-train-1

A task with several upstream tasks appears once, under the deepest of them (the one with the
longest chain of tasks above it; ties: the first by name), so every task sits as deep as its
longest chain of dependencies and a chain reads as a chain; the other upstream tasks are named
after it, "(also after …)". Without a valid spec (a cycle fails the job before any task runs)
the tasks the status has are listed flat.

Symbols are argo's: ✔ Finished, ✖ Failed, ◷ Waiting, ● Running, ○ Stopped. `wide` adds the
task's child (its Job or custom resource) and its start and end times.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from lakejob import dag_graph
from lakejob.models.dagjob import CHILD_KINDS, TERMINAL_STATES, Counts, DagJobSpec, DagJobStatus, TaskStatus

SYMBOLS = {"Finished": "✔", "Failed": "✖", "Waiting": "◷", "Running": "●", "Stopped": "○"}
NO_VALUE = "-"
COLUMNS = ("TASK", "KIND", "INSTANCES", "RUNS", "RETRIES", "DURATION")
WIDE_COLUMNS = ("CHILD", "STARTED", "FINISHED")


def lines(obj: Mapping[str, Any], now: datetime, wide: bool = False) -> list[str]:
    """What `lakejob get dag` prints for the DagJob `obj` at `now` (timezone-aware)."""
    meta = obj.get("metadata") or {}
    status = DagJobStatus.model_validate(obj.get("status") or {})
    spec = _spec(obj.get("spec"))
    return _header(meta, status, now) + [""] + _table(meta.get("name", ""), spec, status, now, wide)


def _spec(raw: Any) -> DagJobSpec | None:
    """The spec through the model, or None when it is not valid (the status then says why)."""
    try:
        return DagJobSpec.model_validate(raw or {})
    except ValidationError:
        return None


# ----------------------------------------------------------------------------- the header


def _header(meta: Mapping[str, Any], status: DagJobStatus, now: datetime) -> list[str]:
    started, ended = _time(status.StartTime), _time(status.EndTime)
    created = _time(meta.get("creationTimestamp")) or _time(status.CreationTime)
    fields: list[tuple[str, str | None]] = [
        ("Name", meta.get("name")),
        ("Namespace", meta.get("namespace")),
        ("Status", (status.State or "not seen by the operator yet")
         + (f" ({status.reason})" if status.reason else "")),
        ("Message", _one_line(status.message)),
        ("Priority", None if status.Priority is None else str(status.Priority)),
        ("Created", _moment(created, now)),
        ("Started", _moment(started, now)),
        ("Finished", _moment(ended, now)),
        ("Duration", _long(((ended or now) - started).total_seconds()) if started else None),
        ("Progress", status.TaskProgress),
    ]
    shown = [(k, v) for k, v in fields if v]
    width = max(len(k) for k, _ in shown) + 2
    return [f"{k + ':':<{width}}{v}" for k, v in shown]


# ----------------------------------------------------------------------------- the tree


def _placement(spec: DagJobSpec) -> tuple[dict[str | None, list[str]], dict[str, list[str]]]:
    """(parent → its children in the DAG's order, None being the job's own row; task → the
    upstream tasks it is not shown under)."""
    deps = spec.DAG.Dependencies or {}
    ups = dag_graph.upstream(deps, spec.DAG.Tasks)
    order = dag_graph.topological_order(deps, spec.DAG.Tasks)
    depth: dict[str, int] = {}
    children: dict[str | None, list[str]] = {}
    others: dict[str, list[str]] = {}
    for task in order:  # every upstream task comes first, so its depth is known
        parent = max(ups[task], key=lambda u: depth[u]) if ups[task] else None  # max: the first by name of the deepest
        depth[task] = 0 if parent is None else depth[parent] + 1
        children.setdefault(parent, []).append(task)
        others[task] = [u for u in ups[task] if u != parent]
    return children, others


def _tree(spec: DagJobSpec | None, status: DagJobStatus) -> list[tuple[str, str, str]]:
    """(glyphs before the task's symbol, task, its name cell's remark) per task, top to bottom."""
    if spec is None:
        names = sorted(status.Tasks or {})
        return [(" └─" if i == len(names) - 1 else " ├─", name, "") for i, name in enumerate(names)]
    children, others = _placement(spec)
    rows: list[tuple[str, str, str]] = []

    def walk(parent: str | None, indent: str) -> None:
        kids = children.get(parent, [])
        for i, task in enumerate(kids):
            last = i == len(kids) - 1
            remark = f" (also after {', '.join(others[task])})" if others[task] else ""
            rows.append((indent + ("└─" if last else "├─"), task, remark))
            walk(task, indent + ("  " if last else "│ "))

    walk(None, " ")
    return rows


def _table(name: str, spec: DagJobSpec | None, status: DagJobStatus, now: datetime, wide: bool) -> list[str]:
    job_state = status.State or "Waiting"
    tasks = status.Tasks or {}
    rows: list[list[str]] = []
    instances, all_instances = Counts(), 0  # the job's row: its tasks' rows summed
    for glyphs, task, remark in _tree(spec, status):
        spec_task = spec.DAG.Tasks[task] if spec is not None else None
        seen = tasks.get(task)
        # The job ended (over a quota) before it made its tasks' status: they never run.
        never = seen is None and job_state in TERMINAL_STATES
        t = seen or TaskStatus(Type=spec_task.kind if spec_task else "command")
        total = (spec_task.InstanceCount or 1) if spec_task else (_sum(t.InstanceMetrics) or 1)
        retries = (spec_task.MaxRetryCount or 0) if spec_task and t.Type == "command" else None
        row = [f"{glyphs}{SYMBOLS['Stopped' if never else t.State]} {task}{remark}", CHILD_KINDS.get(t.Type, t.Type),
               _instances(t.InstanceMetrics, total), str(t.Run), _retries(retries), _task_duration(t, now)]
        if wide:
            row += [t.Child or NO_VALUE, _stamp(_time(t.StartTime)), _stamp(_time(t.EndTime))]
        rows.append(row + ["not started" if never else _one_line(t.Message) or ""])
        instances = Counts(**{k: getattr(instances, k) + getattr(t.InstanceMetrics, k) for k in Counts.model_fields})
        all_instances += total
    started = _time(status.StartTime)
    job_row = [f" {SYMBOLS[job_state]} {name}", "DagJob", _instances(instances, all_instances), "", "",
               _short(((_time(status.EndTime) or now) - started).total_seconds()) if started else ""]
    header = [*COLUMNS, *(WIDE_COLUMNS if wide else ()), "MESSAGE"]
    return _columns([header, job_row + [""] * (len(header) - len(job_row)), *rows])


def _instances(c: Counts, total: int) -> str:
    """done/total, and how many run or failed when any do."""
    busy = [f"{n} {word}" for n, word in ((c.RunningCount, "running"), (c.FailedCount, "failed")) if n]
    return f"{c.FinishedCount}/{total}" + (f" ({', '.join(busy)})" if busy else "")


def _sum(c: Counts) -> int:
    return c.WaitingCount + c.RunningCount + c.StoppedCount + c.FinishedCount + c.FailedCount


def _retries(limit: int | None) -> str:
    """A command task's retries per instance (MaxRetryCount); a child kind retries by its own spec."""
    return NO_VALUE if limit is None else f"max {limit}"


def _task_duration(t: TaskStatus, now: datetime) -> str:
    """Start to end; a running task's so far. A stopped task records no end: none shown."""
    start, end = _time(t.StartTime), _time(t.EndTime)
    if start is None or (end is None and t.State != "Running"):
        return NO_VALUE
    return _short(((end or now) - start).total_seconds())


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


# ----------------------------------------------------------------------------- times and text


def _time(text: str | None) -> datetime | None:
    """A Kubernetes or status timestamp (…Z, maybe with milliseconds) as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(moment: datetime | None) -> str:
    """A time in a wide row: UTC, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else NO_VALUE


def _moment(moment: datetime | None, now: datetime) -> str | None:
    """A time as argo's header shows one: when, and how long ago."""
    if moment is None:
        return None
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC ({_long((now - moment).total_seconds())} ago)"


_UNITS = ((86400, "day", "d"), (3600, "hour", "h"), (60, "minute", "m"), (1, "second", "s"))


def _parts(seconds: float) -> list[tuple[int, str, str]]:
    """The two largest non-zero units of a duration (whole seconds, never negative)."""
    left = max(0, int(seconds))
    parts: list[tuple[int, str, str]] = []
    for size, word, letter in _UNITS:
        n, left = divmod(left, size)
        if n or parts:
            parts.append((n, word, letter))
    return [p for p in parts[:2] if p[0]] or [(0, "second", "s")]


def _long(seconds: float) -> str:
    """'4 minutes 50 seconds', as argo's header says it."""
    return " ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word, _ in _parts(seconds))


def _short(seconds: float) -> str:
    """'4m50s', as argo's tree says it."""
    return "".join(f"{n}{letter}" for n, _, letter in _parts(seconds))


def _one_line(text: str | None) -> str | None:
    """A message on one line (a child's message may carry a stack trace's newlines)."""
    return re.sub(r"\s+", " ", text).strip() if text else text
