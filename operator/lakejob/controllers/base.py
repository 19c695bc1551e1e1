"""The reconcile loop every kind shares: event bookkeeping, per-CR serialisation, requeues, status writes.

Each kind's module (controllers/<kind>.py) subclasses `Reconciler`, implements `reconcile_one`
(observe → its pure decide → apply) and registers its kopf handlers, which only call
`cr_event` / `child_event` here. lakejob.operator makes one instance per registered kind at start-up.

What lives here and why:
- bodies: the latest CR body per key, so a child's event can reconcile its parent without a GET;
- child indexes: kopf indexes of the children (kopf fills them before any handler runs, so a
  restarted operator never mistakes "not listed yet" for "missing"), plus the children we created
  whose watch event has not arrived yet (no second create on the next pass);
- a per-CR lock (one reconcile of an object at a time) and a semaphore (bounded concurrency, so
  a burst is worked through in order rather than all at once);
- the status we wrote last per CR with its resourceVersion, because a watch event may still
  carry an older status than the one we just wrote;
- requeue timers and a periodic resync: the safety net against a lost event.
"""
from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import aiohttp
import kopf
from pydantic import BaseModel, ValidationError

from lakejob import kube as kubemod
from lakejob import metrics
from lakejob.crds import GROUP, VERSION
from lakejob.http import Http
from lakejob.notify import Notifier
from lakejob.render.common import short_name
from lakejob.settings import Settings

API_VERSION = f"{GROUP}/{VERSION}"
Key = tuple[str, str]  # (namespace, the CR's short name: its children's lakejob.io/name label)
log = logging.getLogger("lakejob")

REGISTRY: dict[str, type[Reconciler]] = {}


def register(cls: type[Reconciler]) -> type[Reconciler]:
    """Class decorator: the operator starts one instance of every registered reconciler."""
    REGISTRY[cls.kind] = cls
    kubemod.register_kind(API_VERSION, cls.kind, cls.plural)
    return cls


def ms(ts: str | None) -> int | None:
    """Milliseconds since the epoch of a Kubernetes timestamp."""
    if not ts:
        return None
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def parse_spec(model: type[BaseModel], body: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The spec, or why it is invalid: every broken rule, each naming its field under spec."""
    try:
        return model.model_validate(body.get("spec") or {}), None
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"spec.{loc}: {msg}" if loc else f"spec: {msg}")
        return None, "; ".join(parts)


Summarize = Callable[[Mapping[str, Any]], dict[str, Any]]


def watch(kind: str, plural: str, children: Mapping[str, tuple[tuple[str, ...], Summarize]]) -> None:
    """Register one kind's kopf handlers: per kind of child an index (named as given, e.g.
    "sparkbatch_pods") and an event handler that wakes the parent, and the CR's own event handler.

    `children` maps index name → (kopf resource spec, e.g. ("pods",) or ("batch", "v1", "jobs"),
    the summary kept in memory per child). Called once by each kind's module at import.
    """
    names = tuple(children)
    labels = {"lakejob.io/kind": kind}

    def reconciler() -> Reconciler:
        from lakejob.operator import reconciler

        return reconciler(kind)

    def indexes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {n: kwargs[n] for n in names}  # kopf passes each index by its handler id

    for index, (resource, summarize) in children.items():
        # async: kopf runs sync handlers in a thread pool, which costs more than these functions.
        async def index_fn(body: kopf.Body, _summarize: Summarize = summarize, **_: Any) -> dict[Key, dict[str, Any]]:
            return {child_key(body): _summarize(body)}

        async def child_fn(body: kopf.Body, type: str | None, _summarize: Summarize = summarize,
                           **kwargs: Any) -> None:
            reconciler().child_event(body, indexes(kwargs), _summarize(body), deleted=type == "DELETED")

        kopf.index(*resource, labels=labels, id=index)(index_fn)
        kopf.on.event(*resource, labels=labels, id=f"{index}_event")(child_fn)

    async def cr_fn(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        reconciler().cr_event(event.get("type"), dict(event.get("object") or body), indexes(kwargs))

    kopf.on.event(GROUP, VERSION, plural, id=f"{kind.lower()}_event")(cr_fn)


def child_key(body: Mapping[str, Any]) -> Key:
    """Which CR a child belongs to: its namespace and `lakejob.io/name` label."""
    meta = body["metadata"]
    return meta["namespace"], (meta.get("labels") or {}).get("lakejob.io/name", "")


def cr_key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return meta["namespace"], short_name(meta["name"])


class Reconciler(ABC):
    kind: ClassVar[str]
    plural: ClassVar[str]
    terminal_states: ClassVar[frozenset[str]]
    # The status field holding the state (DagJob keeps BatchCompute's spelling, `State`).
    state_field: ClassVar[str] = "state"
    # For metrics (lakejob_failures_total, lakejob_retries_total): states that mean "failed for
    # good" and "a new attempt is coming".
    failed_states: ClassVar[frozenset[str]] = frozenset()
    retry_states: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Settings, kube: kubemod.Kube, now_ms: Callable[[], int], http: Http,
                 notifier: Notifier):
        self.settings, self.kube, self.now_ms = settings, kube, now_ms
        self.http, self.notifier = http, notifier  # REST polls / notifications: one pool for the operator
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.indexes: dict[str, Mapping[Key, Iterable[dict[str, Any]]]] = {}
        self._created: dict[Key, dict[str, dict[str, Any]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._written: dict[str, tuple[int, dict[str, Any]]] = {}
        self._requeues: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: set[Key] = set()  # keys with a pass spawned that has not started yet
        self._slots: asyncio.Semaphore | None = None
        self._first_pod_seen: set[str] = set()  # uids whose first-pod latency was recorded
        self._child_summaries: dict[str, dict[str, Any]] = {}  # child uid → the summary last acted on
        metrics.STATES.sources[self.kind] = lambda: [self.state_of(b) for b in self.bodies.values()]

    # ------------------------------------------------------------------ inputs from kopf

    def cr_event(self, event_type: str | None, body: dict[str, Any],
                 indexes: Mapping[str, Mapping[Key, Iterable[dict[str, Any]]]]) -> None:
        self.indexes.update(indexes)
        meta = body["metadata"]
        key = cr_key(body)
        if event_type == "DELETED":
            self.forget(key, meta.get("uid", ""))
            return
        self.bodies[key] = body
        self._spawn(key)

    def child_event(self, body: Mapping[str, Any],
                    indexes: Mapping[str, Mapping[Key, Iterable[dict[str, Any]]]],
                    summary: dict[str, Any] | None = None, deleted: bool = False) -> None:
        """A child changed: reconcile its parent, unless nothing decide reads has changed (most of
        a pod's or Job's updates: conditions, timestamps, resourceVersion), which spares the parent
        a pass per child update in a fan-out."""
        self.indexes.update(indexes)
        key = child_key(body)
        uid = body["metadata"].get("uid", "")
        if deleted:
            self._child_summaries.pop(uid, None)
        elif summary is not None:
            if self._child_summaries.get(uid) == summary:
                return
            self._child_summaries[uid] = summary
        if key in self.bodies:
            self._spawn(key)

    def children(self, index: str, key: Key) -> list[dict[str, Any]]:
        """Summaries of a CR's children in one index, plus the ones we created but have not seen."""
        seen = {c["name"]: c for c in self.indexes.get(index, {}).get(key, ())}
        pending = self._created.get(key)
        if pending:
            for name in [n for n in pending if n in seen]:
                del pending[name]
            seen = {**{n: c for n, c in pending.items() if c.get("index") == index}, **seen}
        return list(seen.values())

    def note_created(self, key: Key, index: str, summary: dict[str, Any]) -> None:
        self._created.setdefault(key, {})[summary["name"]] = {**summary, "index": index}
        body = self.bodies.get(key)
        if body is not None and body["metadata"]["uid"] not in self._first_pod_seen:
            self._first_pod_seen.add(body["metadata"]["uid"])
            created = ms(body["metadata"].get("creationTimestamp"))
            if created is not None:
                metrics.FIRST_POD_SECONDS.labels(self.kind).observe(max(0.0, (self.now_ms() - created) / 1000))

    def forget(self, key: Key, uid: str) -> None:
        self.bodies.pop(key, None)
        self._created.pop(key, None)
        self._first_pod_seen.discard(uid)
        self._written.pop(uid, None)
        self._locks.pop(uid, None)
        handle = self._requeues.pop(uid, None)
        if handle:
            handle.cancel()

    # ------------------------------------------------------------------ scheduling

    def _spawn(self, key: Key) -> None:
        """Queue one pass for `key`, unless one is queued and not yet started: that pass will read
        the newest state anyway. (A burst of child events then costs one pass, not one each.)"""
        if key in self._queued:
            return
        self._queued.add(key)
        self.track(asyncio.get_running_loop().create_task(self.reconcile(key)))

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task of this kind (a pass, a delivery) until it ends; stop() ends it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel the tracked tasks (queued and running passes, deliveries) and the requeue timers,
        and wait for them to end."""
        for handle in self._requeues.values():
            handle.cancel()
        self._requeues.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def requeue(self, key: Key, uid: str, delay_s: float) -> None:
        old = self._requeues.pop(uid, None)
        if old:
            old.cancel()
        self._requeues[uid] = asyncio.get_running_loop().call_later(delay_s, self._spawn, key)

    async def resync(self) -> None:
        """Re-reconcile every non-terminal CR once per resync interval: the safety net against a
        lost event. Time-based transitions don't wait for it (decisions ask for their own timers);
        the passes are spread over the interval, so thousands of live CRs are no periodic burst."""
        interval = self.settings.resync_interval_s
        while True:
            keys = [k for k, b in self.bodies.items() if self.state_of(b) not in self.terminal_states]
            if not keys:
                await asyncio.sleep(interval)
                continue
            for key in keys:
                await asyncio.sleep(interval / len(keys))
                body = self.bodies.get(key)
                if body is not None and self.state_of(body) not in self.terminal_states:
                    self._spawn(key)

    def state_of(self, body: Mapping[str, Any]) -> str | None:
        state = (body.get("status") or {}).get(self.state_field)
        return str(state) if state is not None else None

    def _slot(self) -> asyncio.Semaphore:
        if self._slots is None:  # made lazily: it must belong to the running loop
            self._slots = asyncio.Semaphore(self.settings.max_concurrent_reconciles)
        return self._slots

    async def reconcile(self, key: Key) -> None:
        body = self.bodies.get(key)
        if body is None:
            self._queued.discard(key)
            return
        uid = body["metadata"]["uid"]
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock, self._slot():
            # Started: an event from now on needs a pass of its own after this one.
            self._queued.discard(key)
            body = self.bodies.get(key)
            if body is None or body["metadata"]["uid"] != uid:
                return
            started = time.monotonic()
            try:
                await self.reconcile_one(key, body)
            except (kubemod.KubeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
                # Transient API trouble: say so, and try again soon (all the work is idempotent).
                log.warning("reconcile %s %s/%s failed, retrying: %s", self.kind, *key, e)
                self.requeue(key, uid, 2.0)
            finally:
                metrics.RECONCILE_SECONDS.labels(self.kind).observe(time.monotonic() - started)

    @abstractmethod
    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        """Observe, decide (pure), apply: one pass for one CR."""

    # ------------------------------------------------------------------ helpers for apply

    def status_of(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The newer of the watched status and the one we wrote last."""
        uid = body["metadata"]["uid"]
        seen: dict[str, Any] = body.get("status") or {}
        written = self._written.get(uid)
        if written and written[0] > int(body["metadata"].get("resourceVersion", "0")):
            return written[1]
        return seen

    async def write_status(self, body: Mapping[str, Any], new: dict[str, Any]) -> None:
        """Merge-patch the status to `new` (keys it lacks are removed), when it changed."""
        old = self.status_of(body)
        if new == old:
            return
        meta = body["metadata"]
        patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
        patch.update({k: None for k in old if k not in new})
        rv = await self.kube.patch_status(API_VERSION, self.kind, meta["namespace"], meta["name"], patch)
        self._written[meta["uid"]] = (rv, new)
        self._count_transition(old.get(self.state_field), new.get(self.state_field), new.get("reason"))

    def _count_transition(self, old: str | None, new: str | None, reason: str | None) -> None:
        if new is None or new == old:
            return
        if old is None:
            metrics.SUBMISSIONS.labels(self.kind).inc()
        metrics.TRANSITIONS.labels(self.kind, new).inc()
        if new in self.failed_states:
            metrics.FAILURES.labels(self.kind, reason or "unknown").inc()
        if new in self.retry_states:
            metrics.RETRIES.labels(self.kind).inc()

    async def post_events(self, body: Mapping[str, Any], events: Iterable[tuple[str, str, str]]) -> None:
        obj = {"apiVersion": API_VERSION, "kind": self.kind, "metadata": body["metadata"]}
        await asyncio.gather(*(self.kube.event(obj, t, reason, message) for t, reason, message in events))
