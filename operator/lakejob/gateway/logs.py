"""A job's driver log as the Livy-derived APIs (Livy's and DLI's batch logs) serve it: the driver
pod's own log while the pod exists (the operator keeps it until the CR is deleted), else the lines
the operator kept in status.log; paged as Livy pages it. Also the paging of their lists
(`window`). Called by lakejob.gateway.livy, .livy_sessions, .dli and .dli_sessions.
"""
from __future__ import annotations

from typing import Any, TypeVar

from lakejob.gateway.jobs import Jobs

T = TypeVar("T")
DEFAULT_SIZE = 100  # Livy's default page, for lists and logs


async def driver_lines(jobs: Jobs, namespace: str, obj: dict[str, Any]) -> list[str]:
    st = obj.get("status") or {}
    lines = await jobs.pod_log(namespace, st["driverPod"]) if st.get("driverPod") else None
    return lines if lines is not None else list(st.get("log") or [])


def window(items: list[T], from_: int, size: int | None) -> list[T]:
    """One page of a Livy-derived list: `size` items (100 by default; negative: all) from `from_`."""
    size = DEFAULT_SIZE if size is None else size
    start = max(0, from_)
    return items[start:] if size < 0 else items[start:start + size]


def page(total: int, from_: int | None, size: int | None) -> tuple[int, int]:
    """(start, end) of a page as Livy computes it: `size` lines (100 by default; negative: all),
    from `from` or else the last `size`."""
    size = DEFAULT_SIZE if size is None else size
    size = total if size < 0 else size
    start = max(0, total - size) if from_ is None or from_ < 0 else min(from_, total)
    return start, min(total, start + size)
