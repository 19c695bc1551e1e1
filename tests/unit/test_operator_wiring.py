"""lakejob.operator's kopf wiring: the diff base that keeps nothing is safe only while no handler needs
one; start-up hands every reconciler the fetch/upload image read from the operator's own pod."""
from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import kopf
import pytest

from lakejob import heap, operator
from lakejob.controllers import base, queueing
from lakejob.kube import KubeError
from lakejob.settings import Settings


def test_no_handler_needs_a_diff_base() -> None:
    """on.create/update/resume/delete and daemons/timers read kopf's diff base; NoDiffBase keeps none.
    Adding such a handler must replace NoDiffBase (lakejob.operator.startup) first."""
    assert operator.STATE is not None  # the controllers are imported: their handlers are registered
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers(), "the event handlers are registered"
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_the_diff_base_is_empty_and_never_stored() -> None:
    storage = operator.NoDiffBase()
    body = kopf.Body({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"big": list(range(100))},
                      "status": {"s": 1}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None


class _OwnPod:
    """Kube as the start-up handler uses it: connect, then read the operator's own pod."""

    fence = None

    def __init__(self, status: int = 200, unserved: int = 0):
        self.status, self.unserved, self.asked = status, unserved, list[str]()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if self.status != 200:
            raise KubeError(self.status, "pods is forbidden", f"get Pod {name}")
        return {"metadata": {"name": name}, "spec": {"containers": [{"name": "operator", "image": "mirror/lj:3"}]}}

    async def request(self, method: str, path: str, *_: Any, **__: Any) -> tuple[int, Any]:
        """API discovery: lakejob's CRDs served once `unserved` answers have been given, no Kueue."""
        self.asked.append(path)
        if path == "/apis":
            return 200, {"groups": [{"name": "lakejob.io"}]}
        if path == "/apis/lakejob.io/v1alpha1":
            self.unserved -= 1
            plurals = ["sparkbatches"] if self.unserved >= 0 else ["dagjobs", "flinkjarjobs", "sparkbatches",
                                                                    "sparksessions"]
            return 200, {"resources": [{"name": p} for p in plurals]}
        return 404, {"kind": "Status", "code": 404}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[_OwnPod], Awaitable[None]]]:
    """operator.startup against a fake own pod, run in a pod (POD_NAME/POD_NAMESPACE), no metrics."""
    monkeypatch.setenv("POD_NAME", "lakejob-abc")
    monkeypatch.setenv("POD_NAMESPACE", "lakejob-system")
    monkeypatch.setattr(operator.STATE, "settings", Settings(metrics_port=0))
    for name, value in (("elector", None), ("kube", None), ("http", None), ("background", [])):
        monkeypatch.setattr(operator.STATE, name, value)  # put back afterwards
    monkeypatch.setattr(base, "RUNNING", {})
    monkeypatch.setattr(queueing, "PROBE", queueing.KueueProbe())

    async def start(kube: _OwnPod) -> None:
        async def connect() -> _OwnPod:
            return kube
        monkeypatch.setattr(operator.Kube, "connect", staticmethod(connect))
        await operator.startup(settings=kopf.OperatorSettings())

    thresholds = gc.get_threshold()
    yield start
    for task in operator.STATE.background:
        task.cancel()
    gc.unfreeze()  # start-up froze the test process's objects and changed its collector: undone
    gc.set_threshold(*thresholds)


async def test_every_reconciler_gets_the_image_of_the_operators_own_container(
        started: Callable[[_OwnPod], Awaitable[None]]) -> None:
    await started(_OwnPod())
    assert operator.STATE.settings.fetcher_image == "mirror/lj:3"
    assert {r.settings.fetcher_image for r in base.RUNNING.values()} == {"mirror/lj:3"}


async def test_an_unreadable_own_pod_stops_the_operator_saying_why(
        started: Callable[[_OwnPod], Awaitable[None]]) -> None:
    with pytest.raises(kopf.PermanentError, match="grant get on pods in my namespace"):
        await started(_OwnPod(status=403))


async def test_start_up_asks_whether_kueue_is_installed_and_restarts_the_operator_when_that_changes(
        started: Callable[[_OwnPod], Awaitable[None]]) -> None:
    """kopf watches the Workloads only if their API is served at its start (tests/unit/test_restart.py)."""
    kube = _OwnPod()
    await started(kube)
    assert kube.asked[-1] == "/apis/kueue.x-k8s.io/v1beta2"
    assert queueing.PROBE.on_change is operator._kueue_changed
    assert any("follow" in repr(t.get_coro()) for t in operator.STATE.background)


async def test_start_up_waits_until_lakejobs_own_resources_are_served_saying_so_once(
        started: Callable[[_OwnPod], Awaitable[None]], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """kopf scans the resources once start-up is done (with exact namespaces never again): CRDs not
    yet in discovery then would never be watched."""
    monkeypatch.setattr(operator, "SERVED_POLL_S", 0.001)
    monkeypatch.setattr(operator, "SERVED_NOTICE_S", 0.002)
    kube = _OwnPod(unserved=5)
    await started(kube)
    assert kube.asked.count("/apis/lakejob.io/v1alpha1") == 6 and base.RUNNING
    waits = [r.getMessage() for r in caplog.records if "to be served" in r.getMessage()]
    assert waits == ["waiting for lakejob.io/v1alpha1 (dagjobs, flinkjarjobs, sparkbatches, sparksessions) to be "
                     "served: are lakejob's CRDs installed? (crds/, or the chart)"]


async def test_start_up_keeps_the_heap_trimmed_and_kopfs_idle_workers_short_lived(
        started: Callable[[_OwnPod], Awaitable[None]], monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps the operator small with thousands of live CRs (docs/performance.md)."""
    trims: list[int] = []
    monkeypatch.setattr(heap, "TRIM_EVERY_S", 0.01)
    monkeypatch.setattr(heap, "trimmer", lambda: lambda: trims.append(1) or 1)
    settings = kopf.OperatorSettings()
    monkeypatch.setattr(kopf, "OperatorSettings", lambda: settings)
    await started(_OwnPod())
    await asyncio.sleep(0.05)
    assert trims  # trimmed, again and again
    assert settings.queueing.idle_timeout == operator.WORKER_IDLE_S < 1
    assert gc.get_freeze_count() > 10_000  # what start-up made is out of the collector's scans
    assert gc.get_threshold()[0] == heap.YOUNG_OBJECTS > 700


def test_glibcs_malloc_trim_is_found() -> None:
    trim = heap.trimmer()
    assert trim is not None  # this machine's C library is glibc, as the operator image's is
    assert trim() in (0, 1)  # 1: memory was given back, 0: there was none to give


def test_tls_connections_read_into_small_buffers() -> None:
    import asyncio.sslproto
    assert asyncio.sslproto.SSLProtocol.max_size == heap.TLS_READ_BUFFER < 256 * 1024  # asyncio's own


def test_kopfs_bodies_and_patches_go_without_the_cycle_collector_and_their_views_still_work() -> None:
    raw = {"metadata": {"name": "a", "labels": {"l": "v"}}, "spec": {"s": 1}}
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            body = kopf.Body(raw)  # as kopf wraps each event (operator's import applied the mend)
            patch = kopf.Patch(body=body)
            patch.status["state"] = "running"
            patch.meta.labels["l"] = "w"
            assert (body.meta.name, body.metadata.labels["l"], body.meta.annotations.get("x")) == ("a", "v", None)
            assert (body.spec["s"], dict(body.status)) == (1, {})
            assert patch == {"status": {"state": "running"}, "metadata": {"labels": {"l": "w"}}}
            body._replace_with({"metadata": {"name": "b"}})  # views see the body's source as it is now
            assert (body.meta.name, dict(body.meta.labels), dict(body.spec)) == ("b", {}, {})
        del body, patch
        assert gc.collect() == 0  # nothing was left in a cycle: each went when its last reference did
    finally:
        gc.enable()


def test_a_kopf_without_those_views_is_said_and_left_as_it_is(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from kopf._cogs.structs import bodies
    monkeypatch.delattr(bodies, "Status")  # as a kopf that moved or renamed it would be
    heap.acyclic_kopf_views()  # no exception: the operator still starts
    assert "kopf's body views are not where lakejob expects them" in caplog.text


async def test_kopfs_memory_of_each_watched_object_is_slotted_and_still_recalled() -> None:
    from kopf._core.reactor import inventory
    memories = inventory.ResourceMemories()
    raw = {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "ns", "name": "p", "uid": "u"}}
    memory = await memories.recall(raw, noticed_by_listing=True)  # as kopf's processing does per event
    assert await memories.recall(raw) is memory  # the same object's one memory
    parts = (memory, memory.error_throttler, memory.indexing_memory, memory.daemons_memory)
    assert not any(hasattr(part, "__dict__") for part in parts)  # operator's import made them slotted
    assert memory.noticed_by_listing and not memory.fully_handled_once and memory.remaining_patch is None
    memory.error_throttler.active_until = 1.0  # what kopf writes still takes
    memory.indexing_memory.indexing_state = None
    # No daemon or timer is registered (test_no_handler_needs_a_diff_base): nothing writes these two.
    assert not memory.daemons_memory.forever_stopped and not memory.daemons_memory.running_daemons
    assert memory.daemons_memory.forever_stopped is (await memories.recall({**raw, "metadata": {
        "namespace": "ns", "name": "q", "uid": "v"}})).daemons_memory.forever_stopped  # one shared


async def test_a_registered_daemon_keeps_its_own_sets_of_stopped_and_running_daemons(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf._core.reactor import inventory
    monkeypatch.setattr(inventory, "ResourceMemory", inventory.ResourceMemory)  # restored afterwards
    registry = kopf.OperatorRegistry()

    @kopf.daemon("lakejob.io", "v1alpha1", "sparkbatches", registry=registry)
    def watch(**_: Any) -> None: ...

    heap.lean_kopf_memories(registry)
    one, two = inventory.ResourceMemory(), inventory.ResourceMemory()
    one.daemons_memory.forever_stopped.add("watch")  # as a daemon's end does
    one.daemons_memory.running_daemons["watch"] = object()
    assert not two.daemons_memory.forever_stopped and not two.daemons_memory.running_daemons
    assert not hasattr(one, "__dict__")


def test_a_kopf_without_those_memories_is_said_and_left_as_it_is(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from kopf._core.engines import indexing
    from kopf._core.reactor import inventory
    monkeypatch.setattr(inventory, "ResourceMemory", inventory.ResourceMemory)
    before = inventory.ResourceMemory
    monkeypatch.delattr(indexing, "IndexingMemory")  # as a kopf that moved or renamed it would be
    heap.lean_kopf_memories(kopf.get_default_registry())  # no exception: the operator still starts
    assert "kopf's per-object memories are not what lakejob expects" in caplog.text
    assert inventory.ResourceMemory is before
