"""Keeps the operator's memory small: gives the C allocator's free memory back to the operating
system (glibc's `malloc_trim`), reads TLS into smaller buffers, keeps kopf's views out of reference
cycles and runs Python's cycle collector less (`quiet_collector`).

Python's small objects live in its own arenas, but everything larger (a LIST's body, the watch
streams' read buffers, the tables of large dicts and lists) comes from glibc's heap, which keeps
what it freed: after a burst of 1,000 CRs about 36 MiB of it was free and still resident
(docs/performance.md). `keep_trimmed` hands it back every half minute; a trim takes well under a
millisecond, and nothing when there is nothing to give back.
Started by lakejob.operator's start-up handler as a background task; where the C library is not
glibc (musl, macOS) there is nothing to call and it returns at once.

asyncio gives every TLS connection a 256 KiB read buffer for good; the operator holds one per
watch and per pooled API connection (64), up to ~18 MiB for buffers that mostly receive a few KiB at a
time (at 32 KiB the operator with 5,000 live CRs still held 6.6 MiB more than at 16 KiB).
`small_tls_buffers`, called by lakejob.operator at import, makes them TLS_READ_BUFFER: a large LIST
then takes a few more reads, nothing else changes.

kopf's `Body` and `Patch` (kopf 1.45) build their `meta`, `spec` and `status` views when made,
and each view points back at its body (a `Meta` at its own `labels` and `annotations` views too):
reference cycles, so a body kopf is done with waits for Python's cycle collector instead of
going at once, and with it the event's whole raw body. Python runs the full collection rarely
when the heap is large: a burst of 1,000 CRs left ~250,000 such objects behind
(docs/performance.md), a peak whose freed arenas the process then keeps. `acyclic_kopf_views`,
called by lakejob.operator at import, makes kopf build those views on each read instead, as
views of the same live source (nothing of what they show changes).

kopf keeps a memory of every object it watches for as long as the object exists: the CRs, their
pods, Jobs, Services (~1.8 objects per CR). Each is a ResourceMemory holding a memo, an error
throttler, an indexing memory and a daemons memory, kopf 1.45's dataclasses, each instance with a
`__dict__`, the last with an empty set of daemons stopped for good: ~820 bytes per object.
`lean_kopf_memories`, called by lakejob.operator at import, gives kopf the same dataclasses with
`__slots__`, and, while no daemon or timer is registered (lakejob has none), one shared empty and
immutable set of stopped daemons and mapping of running ones, which only daemons write to: ~400
bytes per object.
"""
from __future__ import annotations

import asyncio
import asyncio.sslproto
import ctypes
import dataclasses
import gc
import logging
import types
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("lakejob")

TRIM_EVERY_S = 30.0
TLS_READ_BUFFER = 16 * 1024  # bytes; a TLS record at most (a larger read only fills more of it)


def small_tls_buffers() -> None:
    """Every TLS connection opened from now on reads into a TLS_READ_BUFFER buffer (asyncio's
    class-level default is 256 KiB)."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


class _ViewOnRead:
    """Stands for an attribute in which kopf keeps a view of the object itself: what kopf assigns
    is dropped, and each read makes the view anew (a data descriptor: it wins over the instance)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else self.make(obj)

    def __set__(self, obj: Any, value: Any) -> None:
        pass


def acyclic_kopf_views() -> None:
    """kopf's bodies and patches, and their metadata views, keep no view of themselves. These are
    kopf's internals: a kopf without them is said in the log and left as it is (the operator runs,
    with more memory), never a failed start; tests/unit/test_operator_wiring.py notices."""
    try:
        from kopf._cogs.structs import bodies, dicts, patches

        def view(cls: type[dicts.MappingView[str, Any]], field: str) -> Callable[[Any], Any]:
            path = dicts.parse_field(field)

            def make(src: Any) -> Any:
                # What kopf's MappingView.__init__ sets, without running the view's own __init__ (a
                # Meta's would make its labels and annotations views only for them to be dropped):
                # made on every read of body.meta, so it must be cheap.
                made = cls.__new__(cls)
                made._src, made._path = src, path
                return made
            return make

        views: dict[type, dict[str, Callable[[Any], Any]]] = {
            bodies.Meta: {"_labels": view(dicts.MappingView, "labels"),
                          "_annotations": view(dicts.MappingView, "annotations")},
            bodies.Body: {"_meta": view(bodies.Meta, "metadata"), "_spec": view(bodies.Spec, "spec"),
                          "_status": view(bodies.Status, "status")},
            patches.MetaPatch: {"_labels": view(dicts.MutableMappingView, "labels"),
                                "_annotations": view(dicts.MutableMappingView, "annotations")},
            patches.Patch: {"_meta": view(patches.MetaPatch, "metadata"), "_spec": view(patches.SpecPatch, "spec"),
                            "_status": view(patches.StatusPatch, "status")},
        }
    except (ImportError, AttributeError) as exc:
        log.warning("kopf's body views are not where lakejob expects them (%s): left as they are", exc)
        return
    for cls, attributes in views.items():
        for name, make in attributes.items():
            setattr(cls, name, _ViewOnRead(make))


_NO_DAEMONS_STOPPED: frozenset[Any] = frozenset()  # each frozenset() is a new one (Python 3.10+)
_NO_DAEMONS_RUNNING: Mapping[Any, Any] = types.MappingProxyType({})


def _slotted(cls: type, **factories: Callable[[], Any]) -> type:
    """`cls`, a dataclass, made anew with `__slots__`: the same fields and defaults, except the
    default factories named in `factories`."""
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in factories:
            default = dataclasses.field(default_factory=factories[f.name])
        elif f.default_factory is not dataclasses.MISSING:
            default = dataclasses.field(default_factory=f.default_factory)
        else:
            default = dataclasses.field(default=f.default)
        fields.append((f.name, f.type, default))
    made = dataclasses.make_dataclass(cls.__name__, fields, slots=True)
    made.__module__ = cls.__module__  # where kopf's reprs and tracebacks say it is from
    return made


def lean_kopf_memories(registry: Any) -> None:
    """kopf's per-object memories made with `__slots__` from now on; `registry` (kopf's, its
    handlers registered) says whether a daemon or timer could ever run: if none can, the set of
    those stopped and the mapping of those running are one shared, immutable empty pair. kopf
    without these internals is said in the log and left as it is; tests/unit/test_operator_wiring.py
    notices."""
    try:
        from kopf._core.actions import throttlers
        from kopf._core.engines import daemons, indexing
        from kopf._core.reactor import inventory

        spawning = registry._spawning.get_all_handlers()
        throttler = _slotted(throttlers.Throttler)
        indexed = _slotted(indexing.IndexingMemory)
        daemon_memory = _slotted(daemons.DaemonsMemory) if spawning else _slotted(
            daemons.DaemonsMemory, forever_stopped=lambda: _NO_DAEMONS_STOPPED,
            running_daemons=lambda: _NO_DAEMONS_RUNNING)
        memory = _slotted(inventory.ResourceMemory, error_throttler=throttler, indexing_memory=indexed,
                          daemons_memory=daemon_memory)
    except (ImportError, AttributeError, TypeError) as exc:
        log.warning("kopf's per-object memories are not what lakejob expects (%s): left as they are", exc)
        return
    # What `ResourceMemories.recall` makes for a newly seen object (a module global it reads per call).
    setattr(inventory, "ResourceMemory", memory)


YOUNG_OBJECTS = 50_000  # Python's youngest-generation threshold; its default is 700


def quiet_collector() -> None:
    """Python's cycle collector with little left to collect runs less: the start-up's objects
    (modules, kopf's registry, the models) are frozen out of its scans, and the youngest
    generation waits for YOUNG_OBJECTS allocations. With 700, every object alive across 700
    allocations (any in-flight event's) was promoted and counted toward a full collection, a scan
    of every live object: ~54 of them over 5,000 CRs, a third of the operator's CPU per CR and
    the part of it that grew with live CRs (docs/performance.md). Once kopf's views make no
    cycles (acyclic_kopf_views) almost nothing is cyclic garbage, so waiting costs no memory."""
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])


def trimmer() -> Callable[[], int] | None:
    """glibc's malloc_trim(0), or None where there is none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: its C library's
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


async def keep_trimmed() -> None:
    """Trim the heap every TRIM_EVERY_S, for as long as the operator runs."""
    trim = trimmer()
    if trim is None:
        log.debug("no malloc_trim in this C library: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(TRIM_EVERY_S)
        trim()
