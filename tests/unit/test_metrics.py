"""lakejob.metrics as the reconcile loop feeds them: passes in flight and queued, run durations,
build info, read back from the registry the /metrics endpoint serves."""
from __future__ import annotations

import asyncio
from importlib import metadata
from typing import Any

from prometheus_client import REGISTRY

from lakejob.controllers.base import Key, Reconciler
from lakejob.controllers.dagjob import DagJobReconciler
from lakejob.settings import Settings
from tests.unit.fakes import StatusKube


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Gated(Reconciler):
    """Each pass waits at the gate, so a test sees passes in flight and queued."""

    kind = "Gated"
    plural = "gateds"
    terminal_states = frozenset({"done", "failed"})

    def __init__(self, limit: int = 64) -> None:
        super().__init__(Settings(max_concurrent_reconciles=limit), StatusKube(), lambda: self.now,  # type: ignore[arg-type]
                         None, None)  # type: ignore[arg-type]
        self.now = 0
        self.gate = asyncio.Event()

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        await self.gate.wait()


def cr(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": "1"}}


def test_build_info_carries_the_package_version() -> None:
    assert sample("lakejob_build_info", version=metadata.version("lakejob")) == 1.0


async def test_passes_beyond_the_limit_wait_in_the_queue_and_none_stays_counted() -> None:
    r = Gated(limit=2)
    for name in "abcde":
        r.cr_event("ADDED", cr(name), {})
    assert sample("lakejob_reconcile_queue_depth", kind="Gated") == 5  # spawned, none started yet
    await asyncio.sleep(0.01)
    assert sample("lakejob_reconciles_in_flight", kind="Gated") == 2
    assert sample("lakejob_reconcile_queue_depth", kind="Gated") == 3
    r.cr_event("MODIFIED", cr("e"), {})  # already queued: folds into its pass
    assert sample("lakejob_reconcile_queue_depth", kind="Gated") == 3
    r.gate.set()
    while r._tasks:
        await asyncio.gather(*list(r._tasks))
    assert sample("lakejob_reconciles_in_flight", kind="Gated") == 0
    assert sample("lakejob_reconcile_queue_depth", kind="Gated") == 0


async def test_stopping_running_and_waiting_passes_leaves_nothing_in_flight() -> None:
    r = Gated(limit=1)
    for name in "ab":
        r.cr_event("ADDED", cr(name), {})
    await asyncio.sleep(0.01)
    assert sample("lakejob_reconciles_in_flight", kind="Gated") == 1
    await r.stop()
    assert sample("lakejob_reconciles_in_flight", kind="Gated") == 0


async def test_a_run_is_timed_from_its_start_to_its_terminal_state_once() -> None:
    r = Gated()
    body = cr("a")
    count, total = sample("lakejob_run_duration_seconds_count", kind="Gated"), \
        sample("lakejob_run_duration_seconds_sum", kind="Gated")
    r.now = 5_000
    await r.write_status(body, {"state": "running", "create_time": 1_000})
    assert sample("lakejob_run_duration_seconds_count", kind="Gated") == count  # not ended
    r.now = 91_000
    await r.write_status(body, {"state": "done", "create_time": 1_000})
    r.now = 95_000
    await r.write_status(body, {"state": "failed", "create_time": 1_000})  # terminal to terminal: no new run
    assert sample("lakejob_run_duration_seconds_count", kind="Gated") == count + 1
    assert sample("lakejob_run_duration_seconds_sum", kind="Gated") == total + 90
    assert sample("lakejob_run_duration_seconds_bucket", kind="Gated", le="120.0") >= 1


def test_a_dagjob_run_starts_when_it_leaves_the_queue() -> None:
    r = DagJobReconciler(Settings(), StatusKube(), lambda: 0, None, None)  # type: ignore[arg-type]
    assert r.run_started_ms({"CreationTime": "2026-01-01T00:00:00Z", "StartTime": "2026-01-01T00:05:00Z"}) == \
        1_767_225_900_000
    assert r.run_started_ms({"CreationTime": "2026-01-01T00:00:00Z"}) is None  # never ran: not timed
