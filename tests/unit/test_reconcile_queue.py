"""controllers.base's queue of passes: events that arrive while a pass waits fold into it; none is lost."""
from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref
from typing import Any

import aiohttp

from lakejob.controllers.base import Key, Reconciler
from lakejob.settings import Settings


class Recording(Reconciler):
    kind = "Recording"
    plural = "recordings"
    terminal_states = frozenset({"done"})

    def __init__(self) -> None:
        super().__init__(Settings(), None, lambda: 0, None, None)  # type: ignore[arg-type]
        self.passes: list[str] = []
        self.gate = asyncio.Event()

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        self.passes.append(body["metadata"]["resourceVersion"])
        await self.gate.wait()


def cr(rv: str) -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": rv}}


async def settle(r: Reconciler) -> None:
    while r._tasks:
        await asyncio.gather(*list(r._tasks))


async def test_a_burst_of_events_during_a_pass_costs_one_more_pass_that_reads_the_newest_body() -> None:
    r = Recording()
    r.cr_event("ADDED", cr("1"), {})
    await asyncio.sleep(0)  # the first pass starts and blocks on the gate
    assert r.passes == ["1"]
    for rv in range(2, 12):  # ten events while it runs: a child's updates, a status echo, …
        r.cr_event("MODIFIED", cr(str(rv)), {})
        r.child_event({"metadata": {"namespace": "ns", "uid": f"c{rv}", "labels": {"lakejob.io/name": "a"}}}, {})
    r.gate.set()
    await settle(r)
    assert r.passes == ["1", "11"]


async def test_an_event_after_the_queued_pass_started_gets_a_pass_of_its_own() -> None:
    r = Recording()
    r.gate.set()
    r.cr_event("ADDED", cr("1"), {})
    await settle(r)
    r.cr_event("MODIFIED", cr("2"), {})
    await settle(r)
    assert r.passes == ["1", "2"]


async def test_a_pass_queued_for_a_deleted_object_does_nothing_and_leaves_no_mark() -> None:
    r = Recording()
    r.cr_event("ADDED", cr("1"), {})
    r.cr_event("DELETED", cr("1"), {})
    await settle(r)
    assert r.passes == [] and not r._queued
    r.gate.set()
    r.cr_event("ADDED", cr("3"), {})
    await settle(r)
    assert r.passes == ["3"]


async def test_no_lock_is_kept_for_a_cr_no_pass_holds_or_awaits() -> None:
    r = Recording()
    r.cr_event("ADDED", cr("1"), {})
    await asyncio.sleep(0)  # running, blocked on the gate
    r.cr_event("MODIFIED", cr("2"), {})  # queued behind it, on the same lock
    await asyncio.sleep(0)
    assert len(r._locks) == 1 and r.passes == ["1"]
    r.gate.set()
    await settle(r)
    assert r.passes == ["1", "2"] and not r._locks


async def test_stop_cancels_running_and_queued_passes_and_timers() -> None:
    r = Recording()
    r.cr_event("ADDED", cr("1"), {})
    await asyncio.sleep(0)  # running, blocked on the gate
    r.cr_event("MODIFIED", cr("2"), {})  # queued behind it
    r.requeue(("ns", "a"), "u", 60)
    await r.stop()
    assert not r._tasks and not r._requeues
    assert r.passes == ["1"]  # the queued pass never ran against a closing client


class Failing(Recording):
    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        self.passes.append(body["metadata"]["resourceVersion"])
        raise aiohttp.ServerDisconnectedError()


async def test_a_dropped_connection_is_transient_and_requeued() -> None:
    r = Failing()
    r.cr_event("ADDED", cr("1"), {})
    await settle(r)  # no exception escapes the task
    assert r.passes == ["1"] and "u" in r._requeues
    await r.stop()


async def test_resync_spreads_one_pass_per_live_object_over_the_interval(monkeypatch: Any) -> None:
    r = Recording()
    r.gate.set()
    r.settings = Settings(resync_interval_s=300)
    for name, state in (("a", None), ("b", "running"), ("c", "done"), ("d", None)):
        r.bodies[("ns", name)] = {"metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": name},
                                  **({"status": {"state": state}} if state else {})}
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        if len(sleeps) == 3:
            raise asyncio.CancelledError  # one round is enough
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    try:
        await r.resync()
    except asyncio.CancelledError:
        pass
    monkeypatch.undo()
    await settle(r)
    assert sleeps == [100, 100, 100]  # 300 s over the three live objects; "c" is terminal
    assert sorted(r.passes) == ["a", "b", "d"]


class KopfCause:
    """Stands for what a kopf handler's context holds: the cause, with the event's whole raw body."""


HANDLER_CONTEXT: contextvars.ContextVar[KopfCause | None] = contextvars.ContextVar("handler", default=None)


class Requeuing(Recording):
    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        self.passes.append(body["metadata"]["resourceVersion"])
        self.requeue(key, body["metadata"]["uid"], 600)  # e.g. a pending driver: look again later


async def test_a_waiting_requeue_timer_does_not_keep_the_kopf_handlers_context_alive() -> None:
    r = Requeuing()

    def kopf_handler() -> weakref.ref[KopfCause]:
        cause = KopfCause()
        HANDLER_CONTEXT.set(cause)  # as kopf does before calling a handler
        r.cr_event("ADDED", cr("1"), {})
        return weakref.ref(cause)

    cause = contextvars.copy_context().run(kopf_handler)  # the handler's context ends with it
    await settle(r)
    gc.collect()
    assert r.passes == ["1"] and r._requeues  # the timer waits…
    assert cause() is None  # …holding nothing of the handler that woke the pass
    await r.stop()


async def test_stored_bodies_share_keys_and_short_strings_and_keep_no_managed_fields() -> None:
    r = Recording()
    long = "x" * 100

    def decoded(name: str) -> dict[str, Any]:  # as kopf's watch stream hands each event over: freshly decoded
        return json.loads(json.dumps({
            "metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": "1",
                         "managedFields": [{"manager": "kubectl"}]},
            "status": {"state": "starting", "conditions": [{"type": "Ready", "reason": "DriverCreated"}],
                       "message": long}}))

    a, b = decoded("a"), decoded("b")
    r.cr_event("ADDED", a, {})
    r.cr_event("ADDED", b, {})
    stored_a, stored_b = r.bodies[("ns", "a")], r.bodies[("ns", "b")]
    assert stored_a == {**a, "metadata": {k: v for k, v in a["metadata"].items() if k != "managedFields"}}
    key_a, key_b = (next(k for k in body["status"] if k == "conditions") for body in (stored_a, stored_b))
    assert key_a is key_b  # one "conditions" for every body, not one each
    reason_a, reason_b = (body["status"]["conditions"][0]["reason"] for body in (stored_a, stored_b))
    assert reason_a is reason_b
    assert stored_a["status"]["message"] == long  # long strings are kept as they came
    await r.stop()


async def test_a_created_child_is_forgotten_as_pending_once_its_index_holds_it() -> None:
    r = Recording()
    r.cr_event("ADDED", cr("1"), {})
    r.note_created(("ns", "a"), "pods", {"name": "a-driver"})
    assert [c["name"] for c in r.children("pods", ("ns", "a"))] == ["a-driver"]  # made, not yet seen
    r.indexes["pods"] = {("ns", "a"): [{"name": "a-driver", "uid": "p", "owner": "u"}]}
    assert [c["name"] for c in r.children("pods", ("ns", "a"))] == ["a-driver"]
    assert not r._created  # no empty entry left behind per live CR
    await r.stop()


async def test_a_childs_event_wakes_its_parent_only_when_its_summary_changed() -> None:
    r = Recording()
    r.gate.set()
    r.cr_event("ADDED", cr("1"), {})
    await settle(r)
    child = {"metadata": {"namespace": "ns", "uid": "c", "labels": {"lakejob.io/name": "a"}}}
    for summary in ({"name": "a-1", "phase": "Pending"}, {"name": "a-1", "phase": "Pending"},
                    {"name": "a-1", "phase": "Running"}, {"name": "a-1", "nested": ["x"]},
                    {"name": "a-1", "nested": ["x"]}):  # unhashable: never taken as unchanged
        r.child_event(child, {}, summary)
        await settle(r)
    assert len(r.passes) == 1 + 4
