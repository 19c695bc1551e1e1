"""The DAG of a DagJob as plain graph functions: validation, inversion, order, readiness. Pure.

BatchCompute writes `DAG.Dependencies` as {task: [downstream tasks]}; scheduling needs the other
direction (a task starts when all its *upstream* tasks have finished), so `upstream()` inverts
the map once. Used by models.dagjob (unknown names, cycles), controllers.dagjob_decide (what to start, what
to skip) and the unit tests.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Deps = Mapping[str, Sequence[str]]


def unknown_names(deps: Deps, tasks: Iterable[str]) -> list[str]:
    """Names used in Dependencies (as source or target) that are not tasks, sorted, each once."""
    known = set(tasks)
    used = set(deps) | {t for targets in deps.values() for t in targets}
    return sorted(used - known)


def upstream(deps: Deps, tasks: Iterable[str]) -> dict[str, list[str]]:
    """task → its upstream tasks (sorted), for every task, from BatchCompute's downstream lists."""
    out: dict[str, set[str]] = {t: set() for t in tasks}
    for source, targets in deps.items():
        for target in targets:
            out.setdefault(target, set()).add(source)
    return {t: sorted(ups) for t, ups in out.items()}


def find_cycle(deps: Deps) -> list[str] | None:
    """One cycle as a closed path [a, b, …, a], or None. Depth-first, nodes and edges in sorted order,
    so the same graph always reports the same cycle. An explicit stack, not a recursive closure:
    a closure that calls itself is a reference cycle, garbage for Python's cycle collector on every
    call, and this runs on every DagJob pass (docs/performance.md)."""
    done: set[str] = set()
    for start in sorted(deps):
        if start in done:
            continue
        path = [start]  # the grey nodes, in order
        on_path = {start}
        pending = [iter(sorted(set(deps.get(start, ()))))]  # each path node's edges not yet followed
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:  # every edge of the path's last node followed: it is done
                pending.pop()
                on_path.discard(node := path.pop())
                done.add(node)
            elif nxt in on_path:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                pending.append(iter(sorted(set(deps.get(nxt, ())))))
    return None


def topological_order(deps: Deps, tasks: Iterable[str]) -> list[str]:
    """Tasks so that every task comes after its upstream tasks (Kahn; ties by name). Raises
    ValueError naming the cycle when there is one."""
    cycle = find_cycle(deps)
    if cycle:
        raise ValueError(f"Dependencies form a cycle: {' -> '.join(cycle)}")
    ups = upstream(deps, tasks)
    waiting = {t: len(u) for t, u in ups.items()}
    ready = sorted(t for t, n in waiting.items() if n == 0)
    order: list[str] = []
    while ready:
        task = ready.pop(0)
        order.append(task)
        released = []
        for target in set(deps.get(task, ())):
            waiting[target] -= 1
            if waiting[target] == 0:
                released.append(target)
        ready = sorted(ready + released)
    return order


def descendants(deps: Deps, task: str) -> set[str]:
    """Every task downstream of `task`, transitively (what a failure of `task` skips)."""
    seen: set[str] = set()
    stack = list(deps.get(task, ()))
    while stack:
        t = stack.pop()
        if t not in seen:
            seen.add(t)
            stack.extend(deps.get(t, ()))
    return seen
