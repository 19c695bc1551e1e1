"""controllers.base's resync skips a CR whose inputs have not changed since a pass that changed
nothing (docs/performance.md, "5,000 live CRs"); every other pass, and every change, still runs."""
from __future__ import annotations

import asyncio
from typing import Any

from lakejob.controllers import base
from lakejob.controllers.base import Key, Reconciler
from lakejob.controllers.dagjob import ASK_AGAIN_MS, CREATE_GRACE_MS, DagJobReconciler
from lakejob.settings import Settings
from tests.unit.fakes import StatusKube

KEY: Key = ("ns", "a")
PODS = "quiet_pods"


class Kube(StatusKube):
    """Status writes answered with the next resourceVersion; Events counted."""

    def __init__(self) -> None:
        super().__init__()
        self.events = 0

    async def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events += 1


class Quiet(Reconciler):
    """A kind whose pass reads its pods and writes, peeks or fails only when a test says so."""

    kind = "Quiet"
    plural = "quiets"
    terminal_states = frozenset({"done"})

    def __init__(self) -> None:
        super().__init__(Settings(), Kube(), lambda: 0, None, None)  # type: ignore[arg-type]
        self.passes: list[str] = []
        self.write: dict[str, Any] | None = None  # a status the next pass writes
        self.peek = False  # the next pass looks at every CR (as a DagJob waiting for a slot does)
        self.fail = False
        self.extra: Any = None  # the kind's own input (pass_inputs)
        self.during: Any = None  # called in the middle of the next pass

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        self.passes.append(body["metadata"]["resourceVersion"])
        self.children(PODS, key)
        if self.during is not None:
            self.during()
            self.during = None
        if self.write is not None:
            await self.write_status(body, self.write)
            self.write = None
        if self.peek:
            self.peek = False
            [b for b in self.bodies.values() if b is not body]
        if self.fail:
            self.fail = False
            raise RuntimeError("boom")

    def pass_inputs(self, key: Key) -> Any:
        return self.extra


def cr(rv: str, state: str | None = "running") -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": rv},
            **({"status": {"state": state}} if state else {})}


def pod(phase: str) -> dict[str, Any]:
    return {"name": "a-driver", "uid": "p", "owner": "u", "phase": phase}


async def settle(r: Reconciler) -> None:
    while r._tasks:
        await asyncio.gather(*list(r._tasks))


async def started(pods: list[dict[str, Any]] | None = None) -> Quiet:
    """A CR with its pods after its first pass (which wrote nothing)."""
    r = Quiet()
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: pods if pods is not None else [pod("Pending")]}})
    await settle(r)
    assert r.passes == ["1"]
    return r


async def resync(r: Quiet) -> None:
    r.resync_one(KEY)
    await settle(r)


async def test_an_unchanged_cr_costs_its_resync_no_pass() -> None:
    r = await started()
    for _ in range(3):
        await resync(r)
    assert r.passes == ["1"] and r.resync_skipped == 3


async def test_a_new_resource_version_no_event_announced_gets_its_resync_pass() -> None:
    r = await started()
    r.bodies[KEY] = cr("2")  # e.g. the event was lost: what the resync is for
    await resync(r)
    assert r.passes == ["1", "2"]
    await resync(r)  # and that pass, settled, is remembered in turn
    assert r.passes == ["1", "2"]


async def test_a_changed_child_gets_its_resync_pass() -> None:
    r = await started()
    r.indexes[PODS] = {KEY: [pod("Running")]}  # kopf stored a new entry: the summary changed
    await resync(r)
    assert r.passes == ["1", "1"]


async def test_a_child_gone_or_added_gets_its_resync_pass() -> None:
    r = await started()
    entry = next(iter(r.indexes[PODS][KEY]))
    r.indexes[PODS] = {KEY: [entry, pod("Pending") | {"uid": "q", "name": "b"}]}
    await resync(r)
    r.indexes[PODS] = {KEY: [entry]}
    await resync(r)
    assert r.passes == ["1", "1", "1"]


async def test_the_same_child_entry_is_no_change() -> None:
    r = await started()
    r.indexes[PODS] = {KEY: list(r.indexes[PODS][KEY])}  # another container, the same entries
    await resync(r)
    assert r.passes == ["1"]


async def test_a_changed_kind_input_gets_its_resync_pass() -> None:
    r = await started()
    r.extra = "the poller saw something"
    await resync(r)
    assert r.passes == ["1", "1"]


async def test_a_timer_pass_always_runs() -> None:
    r = await started()
    r.requeue(KEY, "u", 0.01)
    await asyncio.sleep(0.05)
    await settle(r)
    assert r.passes == ["1", "1"]
    await r.stop()


async def test_events_always_get_their_pass() -> None:
    r = await started()
    r.cr_event("MODIFIED", cr("1"), {})  # a re-list's copy of the same object
    await settle(r)
    r.child_event({"metadata": {"namespace": "ns", "uid": "p", "labels": {"lakejob.io/name": "a"}}}, {},
                  summary={"phase": "Running"})
    await settle(r)
    assert r.passes == ["1", "1", "1"]


async def test_a_pass_that_wrote_is_not_remembered_as_settled() -> None:
    r = Quiet()
    r.write = {"state": "running", "message": "new"}
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: [pod("Pending")]}})
    await settle(r)
    assert "u" in r._written  # it patched the status
    await resync(r)
    assert r.passes == ["1", "1"]  # not skipped: its write's echo may not have come
    await resync(r)
    assert r.passes == ["1", "1"]  # the second pass wrote nothing (same status): now it is


async def test_the_status_we_wrote_is_kept_only_until_the_watch_brings_it() -> None:
    r = Quiet()
    r.write = {"state": "running", "message": "new"}
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: [pod("Pending")]}})
    await settle(r)
    assert r._written["u"][0] == 11  # written at resourceVersion 11
    r.cr_event("MODIFIED", cr("5"), {})  # an older event: the write is still what counts
    await settle(r)
    assert r.status_of(r.bodies[KEY])["message"] == "new"
    r.cr_event("MODIFIED", {**cr("11"), "status": {"state": "running", "message": "new"}}, {})  # its echo
    await settle(r)
    assert "u" not in r._written and r.status_of(r.bodies[KEY])["message"] == "new"


async def test_a_status_that_needs_no_write_is_no_write() -> None:
    r = Quiet()
    r.write = {"state": "running"}  # what the body says already: write_status sends nothing
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: [pod("Pending")]}})
    await settle(r)
    assert "u" not in r._written
    await resync(r)
    assert r.passes == ["1"]


async def test_a_pass_that_read_other_crs_is_not_remembered() -> None:
    r = Quiet()
    r.peek = True
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: [pod("Pending")]}})
    await settle(r)
    await resync(r)
    assert r.passes == ["1", "1"]


async def test_a_pass_that_failed_is_not_remembered() -> None:
    r = Quiet()
    r.fail = True
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: [pod("Pending")]}})
    await settle(r)
    assert r.kube.events == 1  # type: ignore[attr-defined]  # the failure's Warning
    await resync(r)  # the backoff timer is pending too; the resync does not wait for it
    assert r.passes == ["1", "1"]
    await r.stop()


async def test_a_change_during_a_pass_is_seen_by_the_next_resync() -> None:
    r = Quiet()
    r.during = lambda: r.bodies.__setitem__(KEY, cr("2"))  # lands after the pass read its body
    r.cr_event("ADDED", cr("1"), {PODS: {KEY: [pod("Pending")]}})
    await settle(r)
    await resync(r)
    assert r.passes == ["1", "2"]


async def test_terminal_and_forgotten_crs_are_not_resynced_nor_remembered() -> None:
    r = await started()
    r.cr_event("DELETED", cr("1"), {})
    assert "u" not in r._settled
    await resync(r)
    r.cr_event("ADDED", cr("3", state="done"), {PODS: {KEY: []}})
    await settle(r)
    await resync(r)
    assert r.passes == ["1", "3"] and r.resync_skipped == 0


async def test_requests_mark_the_pass_but_not_what_runs_outside_passes() -> None:
    class Kube:
        async def get(self) -> None:
            return None

    r = Quiet()
    r.kube = base._Reaching(Kube())  # type: ignore[assignment]
    await r.kube.get()  # type: ignore[call-arg]  # outside a pass: nothing to mark
    record = base._Pass()
    token = base._PASS.set(record)
    try:
        assert record.settled
        r.bodies.get(KEY)  # its own body: no look at the others
        assert record.settled
        await r.kube.get()  # type: ignore[call-arg]
        assert not record.settled
    finally:
        base._PASS.reset(token)


class Events:
    """kube.failed_creates: the namespaces asked about, and the FailedCreate messages it answers."""

    def __init__(self, found: dict[str, str] | None = None) -> None:
        self.asked: list[str] = []
        self.found = found or {}

    async def failed_creates(self, namespace: str, kind: str) -> dict[str, str]:
        assert kind == "Job"  # a ReplicaSet's or StatefulSet's FailedCreate Events are not the DAG's
        self.asked.append(namespace)
        await asyncio.sleep(0)  # passes that ask meanwhile share this LIST
        return self.found


def job(uid: str, created_ms: int, pods: int = 0) -> dict[str, Any]:
    return {"name": uid, "uid": uid, "pods": pods, "suspended": False, "outcome": None, "created_ms": created_ms}


async def test_a_dagjob_with_a_young_podless_job_keeps_its_resync() -> None:
    """A Job without pods is asked about once it is CREATE_GRACE_MS old, and no timer is set for
    that: the DagJob's pass depends on time alone, so its resync pass must run."""
    events = Events()
    r = DagJobReconciler(Settings(), events, lambda: 0, None, None)  # type: ignore[arg-type]
    now = 100_000

    async def settled(jobs: list[dict[str, Any]]) -> bool:
        record = base._Pass()
        token = base._PASS.set(record)
        try:
            await r._create_errors("ns", jobs, now)
        finally:
            base._PASS.reset(token)
        return record.settled

    assert await settled([job("running", now - 60_000, pods=1)])  # healthy: no read, nothing pending
    assert not await settled([job("young", now - 1000)])  # becomes stuck with time alone
    assert events.asked == []
    assert not await settled([job("stuck", now - CREATE_GRACE_MS - 1)])  # read: outside the fingerprint
    assert events.asked == ["ns"]


async def test_stuck_jobs_cost_one_events_list_per_namespace_per_interval() -> None:
    """Every child event is a pass, and a busy Job controller leaves hundreds of Jobs podless for
    seconds: however many Jobs and passes ask, a namespace's FailedCreate Events are listed once per
    ASK_AGAIN_MS (passes asking while it is under way wait for it), and each Job gets its message."""
    events = Events({"a": "pods \"a-1\" is forbidden: exceeded quota"})
    r = DagJobReconciler(Settings(), events, lambda: 0, None, None)  # type: ignore[arg-type]
    now, stuck = 100_000, [job(uid, 0) for uid in "abc"]
    answers = await asyncio.gather(*(r._create_errors("ns", stuck, now) for _ in range(20)))
    assert events.asked == ["ns"]
    assert all(a == {"a": events.found["a"]} for a in answers)
    await r._create_errors("ns", stuck, now + ASK_AGAIN_MS - 1)
    await r._create_errors("other", stuck, now + ASK_AGAIN_MS - 1)
    assert events.asked == ["ns", "other"]
    await r._create_errors("ns", stuck, now + ASK_AGAIN_MS)
    assert events.asked == ["ns", "other", "ns"]
    assert set(r._failed_creates) == {"ns", "other"}
    await r._create_errors("ns", stuck, now + 3 * ASK_AGAIN_MS)  # the stale answers are dropped
    assert set(r._failed_creates) == {"ns"}
