"""The reconcile loop every kind shares: event bookkeeping, per-CR serialisation, requeues, status writes.

Each kind's module (controllers/<kind>.py) subclasses `Reconciler`, implements `reconcile_one`
(observe → its pure decide → apply) and registers its kopf handlers, which only call
`cr_event` / `child_event` here. lakejob.operator makes one instance per registered kind at start-up
and puts it in `RUNNING` (base never imports lakejob.operator: the import goes one way).

What lives here and why:
- bodies: the latest CR body per key, so a child's event can reconcile its parent without a GET
  (kept `compact`: thousands of live CRs are held, and what each costs is the operator's memory);
- child indexes: kopf indexes of the children (kopf fills them before any handler runs, so a
  restarted operator never mistakes "not listed yet" for "missing"), plus the children we created
  whose watch event has not arrived yet (no second create on the next pass);
- a per-CR lock (one reconcile of an object at a time) and a semaphore (bounded concurrency, so
  a burst is worked through in order rather than all at once);
- the status we wrote last per CR with its resourceVersion, because a watch event may still
  carry an older status than the one we just wrote;
- requeue timers and a periodic resync: the safety net against a lost event. A resync pass is
  skipped when nothing it reads has changed since a pass that changed nothing (`_unchanged`):
  thousands of idle CRs then cost no parsing and no deciding;
- whose a child is (`ownership`: only this CR's, by its controller UID, are its children);
- what a re-list leaves out (`_after_listing`): kopf lists again after a watch failed (410 Gone,
  an apiserver restart) but reports nothing of the objects deleted in between, and its indexes
  keep them; those CRs are forgotten and those children no longer count;
- what a pass that raises leaves behind (`failed`): a Reconciled=False condition, one Warning
  Event per distinct error, a metric and per-object backoff with jitter (docs/reliability.md).
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import aiohttp
import kopf
from pydantic import BaseModel, ValidationError

from lakejob import kube as kubemod
from lakejob import logs, metrics
from lakejob.crds import GROUP, VERSION
from lakejob.http import Http
from lakejob.models.common import Condition, describe_errors, now_iso, set_condition
from lakejob.notify import Notifier
from lakejob.render.common import Unrenderable, short_name
from lakejob.settings import Settings

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

API_VERSION = f"{GROUP}/{VERSION}"
Key = tuple[str, str]  # (namespace, the CR's short name: its children's lakejob.io/name label)
log = logging.getLogger("lakejob")

REGISTRY: dict[str, type[Reconciler]] = {}
# kind → its running reconciler: filled by lakejob.operator's start-up handler, read by the kopf
# handlers of watch(). Here rather than in lakejob.operator, so that base never imports the
# module that imports it.
RUNNING: dict[str, Reconciler] = {}


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
    """The spec, or why it is invalid: every broken rule, each naming its field under spec.

    Fields this version does not know are ignored (`unknown_fields` names them): admission already
    accepted them, so the CRD is newer than this operator (e.g. after a `helm rollback`), and
    refusing the spec would kill running work over a field it cannot act on anyway."""
    spec = body.get("spec") or {}
    try:
        return model.model_validate(spec), None
    except ValidationError as e:
        error = e
    unknown = [err["loc"] for err in error.errors() if err["type"] == "extra_forbidden"]
    if unknown and len(unknown) == len(error.errors()):
        try:
            return model.model_validate(_without(spec, unknown)), None
        except ValidationError as e:
            error = e
    return None, describe_errors(error, "spec.")


def unknown_fields(model: type[BaseModel], body: Mapping[str, Any]) -> list[str]:
    """The spec's fields this version of the model does not know (what parse_spec ignores)."""
    try:
        model.model_validate(body.get("spec") or {})
    except ValidationError as e:
        return ["spec." + ".".join(str(x) for x in err["loc"]) for err in e.errors() if err["type"] == "extra_forbidden"]
    return []


def _without(spec: Any, paths: list[tuple[int | str, ...]]) -> Any:
    """A copy of `spec` without the fields at `paths` (pydantic error locations)."""
    def strip(node: Any, path: tuple[int | str, ...]) -> Any:
        if not path:
            return node
        head, rest = path[0], path[1:]
        if isinstance(node, dict) and head in node:
            if not rest:
                return {k: v for k, v in node.items() if k != head}
            return {**node, head: strip(node[head], rest)}
        if isinstance(node, list) and isinstance(head, int) and 0 <= head < len(node):
            return [strip(v, rest) if i == head else v for i, v in enumerate(node)]
        return node

    for path in paths:
        spec = strip(spec, path)
    return spec


Summarize = Callable[[Mapping[str, Any]], dict[str, Any]]


def watch(kind: str, plural: str, children: Mapping[str, tuple[tuple[str, ...], Summarize]]) -> None:
    """Register one kind's kopf handlers: per kind of child an index (named as given, e.g.
    "sparkbatch_pods") and an event handler that wakes the parent, and the CR's own event handler.

    `children` maps index name → (kopf resource spec, e.g. ("pods",) or ("batch", "v1", "jobs"),
    the summary kept in memory per child). Called once by each kind's module at import.
    """
    names = tuple(children)
    labels = {"lakejob.io/kind": kind}
    RESOURCES.update({index: resource for index, (resource, _) in children.items()})

    def reconciler() -> Reconciler:
        return RUNNING[kind]

    def indexes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {n: kwargs[n] for n in names}  # kopf passes each index by its handler id

    for index, (resource, summarize) in children.items():
        # async: kopf runs sync handlers in a thread pool, which costs more than these functions.
        async def index_fn(body: kopf.Body, _summarize: Summarize = summarize, **_: Any) -> dict[Key, dict[str, Any]]:
            entry = {**_summarize(body), **ownership(body), "uid": body["metadata"].get("uid", "")}
            return {child_key(body): compact(entry)}

        async def child_fn(body: kopf.Body, type: str | None, _summarize: Summarize = summarize,
                           _index: str = index, **kwargs: Any) -> None:
            # type None: the object came from a listing (kopf's start, or a re-list after a failed watch).
            reconciler().child_event(body, indexes(kwargs), _summarize(body), deleted=type == "DELETED",
                                     index=_index, listed=type is None)

        kopf.index(*resource, labels=labels, id=index)(index_fn)
        kopf.on.event(*resource, labels=labels, id=f"{index}_event")(child_fn)

    async def cr_fn(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        reconciler().cr_event(event.get("type"), dict(event.get("object") or body), indexes(kwargs))

    kopf.on.event(GROUP, VERSION, plural, id=f"{kind.lower()}_event")(cr_fn)


RESOURCES: dict[str, tuple[str, ...]] = {}  # child index → its kopf resource spec (watch())
LISTING_QUIET_S = 5.0  # a listing is over when none of its objects has come for this long


def collection(resource: tuple[str, ...], namespace: str) -> str:
    """The API path of a namespace's objects of a kopf resource spec: ("pods",), ("batch", "v1", "jobs")."""
    *group_version, plural = resource
    prefix = f"/apis/{'/'.join(group_version)}" if group_version else "/api/v1"
    return f"{prefix}/namespaces/{namespace}/{plural}"


NO_OWNER = "-"


def ownership(body: Mapping[str, Any]) -> dict[str, str]:
    """Who controls a labelled child, as `children()` checks it: the UID of its lakejob controller;
    NO_OWNER when nothing controls it (made by hand with our labels); nothing when its controller is
    not a lakejob kind, or it has only non-lakejob owners (executors owned by their driver pod,
    TaskManagers by a ReplicaSet: descendants of our children, which carry our labels from our
    templates)."""
    refs = body["metadata"].get("ownerReferences") or ()
    for ref in refs:
        if ref.get("controller"):
            return {"owner": ref["uid"]} if str(ref.get("apiVersion", "")).startswith(GROUP + "/") else {}
    if any(not str(ref.get("apiVersion", "")).startswith(GROUP + "/") for ref in refs):
        return {}  # owned, without a controller, by something of ours' making (a driver pod)
    return {"owner": NO_OWNER}


OUTBOX_MAX = 100  # notifications one CR may have waiting for its endpoint
RECONCILED = "Reconciled"  # the condition a failed pass sets False (the kinds' own are Ready, Complete)


def classify(error: Exception) -> tuple[str, str, str]:
    """(metric label, condition reason, message) of what a pass raised. The message names the
    refused request and carries the API's own words, so the status says what to fix."""
    if isinstance(error, kubemod.NotOwned):
        return "conflict", "ChildConflict", f"{error.message}: left alone; delete or rename it to go on"
    if isinstance(error, kubemod.KubeError):
        if error.transient:
            return "transient", "APIUnavailable", str(error)
        return "rejected", "Rejected", f"the API refused to {error.what}: {error.status} {error.message}"
    if isinstance(error, Unrenderable):  # the spec or the operator's settings must change
        return "unrenderable", "CannotRender", str(error)
    if isinstance(error, (OSError, asyncio.TimeoutError, aiohttp.ClientError)):
        return "transient", "APIUnavailable", f"the API could not be reached: {type(error).__name__}: {error}"
    return "internal", "InternalError", f"{type(error).__name__}: {error}"[:1024]


def child_key(body: Mapping[str, Any]) -> Key:
    """Which CR a child belongs to: its namespace and `lakejob.io/name` label."""
    meta = body["metadata"]
    return meta["namespace"], (meta.get("labels") or {}).get("lakejob.io/name", "")


def cr_key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return meta["namespace"], short_name(meta["name"])


INTERN_MAX = 64  # strings up to this long are shared between stored bodies: keys, states, reasons, names


def summary_hash(summary: Mapping[str, Any]) -> int | None:
    """What tells a child's summary from its last one: the hash of its (flat) items. Two different
    summaries of one child with the same 64-bit hash are not a risk worth a copy of each. None for
    a summary with an unhashable (nested) value: never taken as unchanged."""
    try:
        return hash(tuple(summary.items()))
    except TypeError:
        return None


def compact(node: Any) -> Any:
    """A copy of a decoded JSON document whose keys and short strings are interned. Each decoded
    body holds its own copy of every key ("metadata", "lastTransitionTime", …) and of every
    repeated value ("DriverCreated", the namespace, the image): of a SparkBatch body's 8 KB in
    memory, 5 KB. Kept compact, thousands of live CRs share them (docs/performance.md)."""
    if isinstance(node, dict):
        return {sys.intern(k): compact(v) for k, v in node.items()}
    if isinstance(node, list):
        return [compact(v) for v in node]
    if isinstance(node, str) and len(node) <= INTERN_MAX:
        return sys.intern(node)
    return node


class _Pass:
    """What the running pass did beyond reading its fingerprint's inputs (`Reconciler._unchanged`)."""

    __slots__ = ("settled",)

    def __init__(self) -> None:
        self.settled = True  # nothing yet: no request, no look at other CRs, nothing time alone changes


_PASS: contextvars.ContextVar[_Pass | None] = contextvars.ContextVar("lakejob_pass", default=None)


def detached() -> contextvars.Context:
    """An empty context for a reconciler's tasks and timers. asyncio copies the caller's context
    into each, and the caller is often a kopf handler, whose context holds kopf's cause: the event's
    whole body as received (managedFields too), wrapped in kopf's Body, patch and logger. A requeue
    timer waiting minutes kept all of that alive, a raw body per live CR: most of the operator's
    memory growth with live CRs (docs/performance.md). Nothing here reads kopf's context."""
    return contextvars.Context()


def unsettled() -> None:
    """The running pass (if any) read or did something its fingerprint does not cover: an API or
    REST request (every call through `Reconciler.kube` / `.http` says so itself), other CRs'
    bodies (`_Bodies` says so), or what time alone changes with no timer set for it. Its CR's next
    resync pass then runs in full. Outside a pass (pollers, the outbox, sweeps) it does nothing."""
    current = _PASS.get()
    if current is not None:
        current.settled = False


class _Reaching:
    """A client (the reconciler's `kube`, its `http`) as a pass sees it: calling any of its public
    methods marks the running pass unsettled (a write changes the world, a read looks outside the
    fingerprint), so no kind has to say so at each call."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            unsettled()
            return value(*args, **kwargs)
        return call


class _Bodies(dict[Key, dict[str, Any]]):
    """`Reconciler.bodies`: a pass that looks through all of them (a DagJob's slot, a FlinkJarJob's
    checkpoint path) read other CRs, which its fingerprint does not cover: it is marked unsettled.
    Its own body by key (`get`, `[]`, `in`) is no such read."""

    def values(self) -> dict_values[Key, dict[str, Any]]:
        unsettled()
        return super().values()

    def items(self) -> dict_items[Key, dict[str, Any]]:
        unsettled()
        return super().items()

    def keys(self) -> dict_keys[Key, dict[str, Any]]:
        unsettled()
        return super().keys()

    def __iter__(self) -> Iterator[Key]:
        unsettled()
        return super().__iter__()


# A settled pass's inputs: the CR's resourceVersion, its children's index entries (kopf stores an
# entry anew only when it differs from the one it holds, so the same objects mean no child's
# summary or ownership changed, none came and none went), the kind's own extra inputs.
Fingerprint = tuple[str, tuple[Any, ...], Any]


class _Exclusive:
    """A CR's lock and how many hold or await it (`Reconciler._exclusive`)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _Slots(asyncio.Semaphore):
    """The bound on a kind's passes at once, counting the slots held as lakejob_reconciles_in_flight."""

    def __init__(self, value: int, kind: str) -> None:
        super().__init__(value)
        self._held = metrics.IN_FLIGHT.labels(kind)

    async def acquire(self) -> Literal[True]:
        await super().acquire()  # a cancelled wait raises here: nothing held, nothing counted
        self._held.inc()
        return True

    def release(self) -> None:
        self._held.dec()
        super().release()


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
    # The spec's model: fields a newer CRD has and it lacks are ignored, and said so once per generation.
    spec_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, settings: Settings, kube: kubemod.Kube, now_ms: Callable[[], int], http: Http,
                 notifier: Notifier):
        self.settings, self.now_ms = settings, now_ms
        # Calls through these mark the running pass unsettled (`_Reaching`); typed as what they wrap.
        self.kube = cast(kubemod.Kube, _Reaching(kube))
        self.http = cast(Http, _Reaching(http))  # REST polls: one pool for the operator
        self.notifier = notifier  # notifications (the outbox task, outside passes)
        self.bodies: dict[Key, dict[str, Any]] = _Bodies()
        self.indexes: dict[str, Mapping[Key, Iterable[dict[str, Any]]]] = {}
        self._created: dict[Key, dict[str, dict[str, Any]]] = {}
        self._locks: dict[str, _Exclusive] = {}  # CR uid → its lock, while a pass or delivery holds or awaits it
        self._written: dict[str, tuple[int, dict[str, Any]]] = {}
        self._requeues: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: set[Key] = set()  # keys with a pass spawned that has not started yet
        self._slots: asyncio.Semaphore | None = None
        self._first_pod_seen: set[str] = set()  # uids whose first-pod latency was recorded
        # child uid → the hash of the summary last acted on: its index holds the summary itself, and a
        # second copy per child was megabytes at thousands of live CRs (`summary_hash`)
        self._child_summaries: dict[str, int | None] = {}
        self._settled: dict[str, Fingerprint] = {}  # CR uid → the inputs of its last pass, if it was settled
        self.resync_skipped = 0  # resync passes skipped: nothing they read had changed
        # CR uid → (failed passes in a row, the error last logged, the error last put in the status)
        self._failures: dict[str, tuple[int, str, str]] = {}
        self._draining: set[str] = set()  # CR uids whose outbox task runs
        self._checked_fields: dict[str, int] = {}  # CR uid → the generation whose unknown fields were named
        # What each watch's last event said, to tell what a re-list left out (`_after_listing`):
        self._seen: dict[Key, float] = {}  # CR → when an event last named it (monotonic)
        self._child_seen: dict[str, float] = {}  # child uid → the same
        self._gone: set[str] = set()  # uids of children kopf's indexes still hold, deleted unseen
        self._listings: dict[str, tuple[float, float]] = {}  # CR plural or child index → (first, last)
        self._listing_timers: dict[str, asyncio.TimerHandle] = {}
        self._listed_before: set[str] = set()  # resources past their first listing: the next is a re-list
        self._relisted_at = 0.0  # when the last re-list of any of them began (monotonic)
        metrics.STATES.sources[self.kind] = lambda: [self.state_of(b) for b in self.bodies.values()]
        metrics.QUEUE_DEPTH.labels(self.kind).set_function(lambda: len(self._queued))

    # ------------------------------------------------------------------ inputs from kopf

    def cr_event(self, event_type: str | None, body: dict[str, Any],
                 indexes: Mapping[str, Mapping[Key, Iterable[dict[str, Any]]]]) -> None:
        self.indexes.update(indexes)
        meta = body["metadata"]
        key = cr_key(body)
        if event_type == "DELETED":
            self.forget(key, meta.get("uid", ""))
            return
        self._seen[key] = now = time.monotonic()
        if event_type is None:
            self._listed(self.plural, now)
        else:
            self._listed_before.add(self.plural)
        # Kept without managedFields, which nothing here reads and which is about as large as the
        # spec and status together: thousands of live CRs are held in memory (docs/performance.md).
        self.bodies[key] = compact({**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}})
        written = self._written.get(meta.get("uid", ""))
        if written and written[0] <= int(meta.get("resourceVersion") or 0):
            del self._written[meta["uid"]]  # the watch caught up with our write: status_of reads the body
        self._spawn(key)

    def child_event(self, body: Mapping[str, Any],
                    indexes: Mapping[str, Mapping[Key, Iterable[dict[str, Any]]]],
                    summary: dict[str, Any] | None = None, deleted: bool = False, index: str = "",
                    listed: bool = False) -> None:
        """A child changed: reconcile its parent, unless nothing decide reads has changed (most of
        a pod's or Job's updates: conditions, timestamps, resourceVersion), which spares the parent
        a pass per child update in a fan-out."""
        self.indexes.update(indexes)
        key = child_key(body)
        uid = body["metadata"].get("uid", "")
        if deleted:
            self._child_summaries.pop(uid, None)
            self._child_seen.pop(uid, None)
            self._gone.discard(uid)
        else:
            self._child_seen[uid] = now = time.monotonic()
            if listed and index:
                self._listed(index, now)
            elif index:
                self._listed_before.add(index)
            if summary is not None:
                digest = summary_hash(summary)
                if digest is not None and self._child_summaries.get(uid) == digest:
                    return
                self._child_summaries[uid] = digest
        if key in self.bodies:
            self._spawn(key)

    def children(self, index: str, key: Key) -> list[dict[str, Any]]:
        """Summaries of a CR's children in one index, plus the ones we created but have not seen.

        Only this very CR's: a same-named predecessor's children still terminating, or objects
        made by hand with our labels, are not its children (see `ownership`)."""
        body = self.bodies.get(key)
        uid = body["metadata"]["uid"] if body else None
        seen = {c["name"]: c for c in self.indexed(index, key) if c.get("owner", uid) == uid}
        pending = self._created.get(key)
        if pending:
            for name in [n for n in pending if n in seen]:
                del pending[name]
            if not pending:
                del self._created[key]  # nothing awaited: no empty entry kept per live CR
            seen = {**{n: c for n, c in pending.items() if c.get("index") == index}, **seen}
        return list(seen.values())

    def indexed(self, index: str, key: Key) -> list[dict[str, Any]]:
        """What kopf's index holds of a CR's children, less those deleted while no watch saw it."""
        return [c for c in self.indexes.get(index, {}).get(key, ()) if c.get("uid") not in self._gone]

    def note_created(self, key: Key, index: str, summary: dict[str, Any]) -> None:
        self._created.setdefault(key, {})[summary["name"]] = {**summary, "index": index}
        body = self.bodies.get(key)
        if body is not None and body["metadata"]["uid"] not in self._first_pod_seen:
            self._first_pod_seen.add(body["metadata"]["uid"])
            created = ms(body["metadata"].get("creationTimestamp"))
            if created is not None:
                metrics.FIRST_POD_SECONDS.labels(self.kind).observe(max(0.0, (self.now_ms() - created) / 1000))

    def forget(self, key: Key, uid: str) -> None:
        self._seen.pop(key, None)
        self._failures.pop(uid, None)
        self._checked_fields.pop(uid, None)
        self.bodies.pop(key, None)
        self._created.pop(key, None)
        self._first_pod_seen.discard(uid)
        self._written.pop(uid, None)
        self._settled.pop(uid, None)
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
        self.track(asyncio.get_running_loop().create_task(self.reconcile(key), context=detached()))

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task of this kind (a pass, a delivery) until it ends; stop() ends it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel the tracked tasks (queued and running passes, deliveries) and the requeue timers,
        and wait for them to end."""
        for handle in [*self._requeues.values(), *self._listing_timers.values()]:
            handle.cancel()
        self._requeues.clear()
        self._listing_timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def requeue(self, key: Key, uid: str, delay_s: float) -> None:
        old = self._requeues.pop(uid, None)
        if old:
            old.cancel()
        self._requeues[uid] = asyncio.get_running_loop().call_later(delay_s, self._spawn, key, context=detached())

    async def resync(self) -> None:
        """Re-reconcile every non-terminal CR once per resync interval: the safety net against a
        lost event. Time-based transitions don't wait for it (decisions ask for their own timers);
        the passes are spread over the interval, so thousands of live CRs are no periodic burst.
        A CR whose inputs have not changed since a pass that changed nothing is skipped
        (`_unchanged`): that pass would decide the same again."""
        interval = self.settings.resync_interval_s
        while True:
            keys = [k for k, b in self.bodies.items() if self.state_of(b) not in self.terminal_states]
            if not keys:
                await asyncio.sleep(interval)
                continue
            for key in keys:
                await asyncio.sleep(interval / len(keys))
                self.resync_one(key)

    def resync_one(self, key: Key) -> None:
        """A CR's turn in the resync: a pass, unless it ended meanwhile or nothing it reads changed."""
        body = self.bodies.get(key)
        if body is None or self.state_of(body) in self.terminal_states:
            return
        if self._unchanged(key, body):
            self.resync_skipped += 1
            self._kick_outbox(key, body["metadata"]["uid"])  # as a pass would, should that task have ended
            return
        self._spawn(key)

    def pass_inputs(self, key: Key) -> Any:
        """What else a kind's pass reads that may change with no event or timer waking the CR (e.g.
        a poller's last look); part of the fingerprint, compared with ==. None: nothing."""
        return None

    def _fingerprint(self, key: Key, body: Mapping[str, Any]) -> Fingerprint:
        entries = tuple(c for index in self.indexes.values() for c in index.get(key, ()))
        return str(body["metadata"].get("resourceVersion", "")), entries, self.pass_inputs(key)

    def _unchanged(self, key: Key, body: Mapping[str, Any]) -> bool:
        """Whether a pass now would read what the CR's last pass read, and that pass was settled:
        it sent no request (no status patch, create, delete, Event, REST call), read no other CR,
        did not fail, and nothing in it changes with time alone without a timer of its own (a
        timer's pass is never skipped). The same inputs then give the same decision: nothing to do.

        Any change that comes with an event or a timer gets a pass of its own anyway, which
        records its inputs again; the fingerprint catches what changes without one: the body (its
        resourceVersion), the children's index entries (by identity: e.g. a child whose ownership
        alone changed wakes no pass, but its entry is new), the kind's extra inputs (`pass_inputs`)."""
        memo = self._settled.get(body["metadata"]["uid"])
        if memo is None:
            return False
        rv, entries, extra = self._fingerprint(key, body)
        return (rv == memo[0] and len(entries) == len(memo[1])
                and all(a is b for a, b in zip(entries, memo[1], strict=True)) and extra == memo[2])

    # ------------------------------------------------------------------ re-lists

    def _listed(self, resource: str, now: float) -> None:
        """An object of `resource` (this kind's plural, or a child index) came from a listing at
        `now`. The listing is over once none of its objects has come for LISTING_QUIET_S; then what
        no event has named since it began is checked (`_after_listing`)."""
        if resource not in self._listings and resource in self._listed_before:
            self._relisted_at = now  # until confirmed, a CR no event has named since may be gone
        self._listings[resource] = (self._listings.get(resource, (now, now))[0], now)
        if resource not in self._listing_timers:
            self._listing_timers[resource] = asyncio.get_running_loop().call_later(
                LISTING_QUIET_S, self._listing_over, resource, context=detached())

    def _listing_over(self, resource: str) -> None:
        del self._listing_timers[resource]
        began, last = self._listings[resource]
        if time.monotonic() - last < LISTING_QUIET_S:  # still coming
            self._listing_timers[resource] = asyncio.get_running_loop().call_later(
                LISTING_QUIET_S - (time.monotonic() - last), self._listing_over, resource)
            return
        del self._listings[resource]
        self._listed_before.add(resource)
        self.track(asyncio.get_running_loop().create_task(self._after_listing(resource, began), context=detached()))

    async def _after_listing(self, resource: str, began: float) -> None:
        """kopf lists a resource again after its watch failed (410 Gone, an apiserver restart) and
        says nothing of the objects deleted in between: no DELETED event, and its indexes keep them.
        Whatever no event has named since the listing began is a suspect, checked against a LIST of
        its namespace (so an object whose event is merely late is never dropped): a CR that is gone
        is forgotten, a child that is gone no longer counts and its parent is woken to notice. After
        the CRs' own listing the children are checked too (a listing of no objects shows nothing)."""
        try:
            if resource == self.plural:
                await self._sweep_crs(began)
                for index in [i for i in self.indexes if i in RESOURCES]:
                    await self._sweep_children(index, began)
            elif resource in RESOURCES:
                await self._sweep_children(resource, began)
        except (kubemod.KubeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
            log.warning("%s: could not check what was deleted while the watch was down: %s", self.kind, e)

    async def _uids(self, resource: tuple[str, ...], namespace: str, selector: str | None) -> set[str]:
        status, payload = await self.kube.request("GET", collection(resource, namespace),
                                                  params={"labelSelector": selector} if selector else None)
        if status == 404 and resource not in ((GROUP, VERSION, self.plural), ("pods",)):
            return set()  # a child's API no longer served (Kueue uninstalled): none of them is left
        if status >= 300 or not isinstance(payload, dict):
            raise kubemod.KubeError(status, str(payload)[:200], f"list {resource[-1]} in {namespace}")
        return {str(item["metadata"]["uid"]) for item in payload.get("items") or ()}

    async def _sweep_crs(self, began: float) -> None:
        suspects = {key: body["metadata"]["uid"] for key, body in self.bodies.items()
                    if self._seen.get(key, 0.0) < began}
        for namespace in sorted({key[0] for key in suspects}):
            asked = time.monotonic()
            present = await self._uids((GROUP, VERSION, self.plural), namespace, None)
            for key, uid in suspects.items():
                if key[0] != namespace or self._seen.get(key, 0.0) >= asked:
                    continue
                if uid in present:
                    self._seen[key] = asked  # confirmed: no need to look again before its next pass
                else:
                    log.info("%s %s/%s was deleted while the watch was down; forgetting it", self.kind, *key)
                    self.forget(key, uid)

    async def _still_there(self, key: Key, body: dict[str, Any]) -> bool:
        """Before a pass acts for a CR that no event has named since a re-list began (a child's
        event woke it, a timer): the re-list may have left it out because it was deleted, and a pass
        would make children for it. One GET says; a deleted CR is forgotten."""
        meta = body["metadata"]
        asked = time.monotonic()
        current = await self.kube.get(API_VERSION, self.kind, meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("uid") != meta["uid"]:
            log.info("%s %s/%s was deleted while the watch was down; forgetting it", self.kind, *key)
            self.forget(key, meta["uid"])
            return False
        self._seen[key] = max(self._seen.get(key, 0.0), asked)
        return True

    async def _sweep_children(self, index: str, began: float) -> None:
        suspects: dict[str, Key] = {}  # child uid → its parent's key
        for key, entries in list(self.indexes.get(index, {}).items()):
            for child in list(entries):
                uid = child.get("uid")
                if uid and uid not in self._gone and self._child_seen.get(uid, 0.0) < began:
                    suspects[uid] = key
        for namespace in sorted({key[0] for key in suspects.values()}):
            asked = time.monotonic()
            present = await self._uids(RESOURCES[index], namespace, f"lakejob.io/kind={self.kind}")
            gone = [uid for uid, key in suspects.items() if key[0] == namespace and uid not in present
                    and self._child_seen.get(uid, 0.0) < asked]
            if gone:
                log.info("%s: %d of %s in %s were deleted while the watch was down; their parents look again",
                         self.kind, len(gone), index, namespace)
            for uid in gone:
                self._gone.add(uid)
                self._child_seen.pop(uid, None)
                self._child_summaries.pop(uid, None)
                if suspects[uid] in self.bodies:
                    self._spawn(suspects[uid])

    def state_of(self, body: Mapping[str, Any]) -> str | None:
        state = (body.get("status") or {}).get(self.state_field)
        return str(state) if state is not None else None

    @contextlib.asynccontextmanager
    async def _exclusive(self, uid: str) -> AsyncIterator[None]:
        """One pass (or outbox update) of a CR at a time. The lock exists only while someone holds
        or awaits it: thousands of idle CRs keep none (each was ~1 KB with its waiters' deque)."""
        entry = self._locks.get(uid)
        if entry is None:
            entry = self._locks[uid] = _Exclusive()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users and self._locks.get(uid) is entry:
                del self._locks[uid]

    def _slot(self) -> asyncio.Semaphore:
        if self._slots is None:  # made lazily: it must belong to the running loop
            self._slots = _Slots(self.settings.max_concurrent_reconciles, self.kind)
        return self._slots

    async def reconcile(self, key: Key) -> None:
        body = self.bodies.get(key)
        if body is None:
            self._queued.discard(key)
            return
        uid = body["metadata"]["uid"]
        async with self._exclusive(uid), self._slot():
            # Started: an event from now on needs a pass of its own after this one.
            self._queued.discard(key)
            body = self.bodies.get(key)
            if body is None or body["metadata"]["uid"] != uid:
                return
            started = time.monotonic()
            # Taken before the pass reads anything: a change during the pass makes the next one differ.
            inputs = self._fingerprint(key, body)
            self._settled.pop(uid, None)
            record = _Pass()
            token = _PASS.set(record)
            try:
                if self._seen.get(key, 0.0) < self._relisted_at and not await self._still_there(key, body):
                    return
                await self._say_what_is_ignored(body)
                await self.reconcile_one(key, body)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every pass ends in a known state (see failed())
                await self.failed(key, body, e)
            else:
                if uid in self._failures:
                    await self.recovered(body)
                self._kick_outbox(key, uid)
                current = self.bodies.get(key)
                if record.settled and uid not in self._failures and current and current["metadata"]["uid"] == uid:
                    self._settled[uid] = inputs
            finally:
                _PASS.reset(token)
                metrics.RECONCILE_SECONDS.labels(self.kind).observe(time.monotonic() - started)

    async def _say_what_is_ignored(self, body: dict[str, Any]) -> None:
        """Once per generation: a Warning Event and a log line naming the spec fields this version
        does not know (the CRD is newer than the operator); the job goes on without them."""
        meta = body["metadata"]
        mark = (meta["uid"], meta.get("generation", 0))
        if self.spec_model is None or self._checked_fields.get(mark[0]) == mark[1]:
            return
        self._checked_fields[mark[0]] = mark[1]
        unknown = unknown_fields(self.spec_model, body)
        if unknown:
            message = (f"this operator version does not know {', '.join(unknown)}: ignored (the CRD is newer "
                       "than the operator, e.g. after a rollback); upgrade the operator to act on them")
            log.warning("%s %s/%s: %s", self.kind, meta["namespace"], meta["name"], message)
            await self.post_events(body, [("Warning", "IgnoredFields", message)])

    # ------------------------------------------------------------------ the notification outbox

    def with_outbox(self, status: dict[str, Any], sends: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """`status` with `sends` ((url, CloudEvent), in order) queued in its outbox: written with the
        status (write-ahead), then delivered by the CR's outbox task, which any later operator
        resumes; a redelivery carries the same CloudEvent id, so a receiver can tell."""
        new = [{"url": url, "event": json.dumps(event)} for url, event in sends]
        if not new:
            return status
        outbox = [*(status.get("outbox") or []), *new]
        if len(outbox) > OUTBOX_MAX:  # an endpoint down for long: keep the newest, say what went
            log.warning("%s %s: outbox full, dropping %d undelivered notification(s)", self.kind,
                        status.get("id") or status.get("Id") or "", len(outbox) - OUTBOX_MAX)
            outbox = outbox[-OUTBOX_MAX:]
        return {**status, "outbox": outbox}

    def delivered(self, status: dict[str, Any], ok: bool) -> dict[str, Any]:
        """The status after one outbox entry was delivered (ok) or given up on; kinds that count
        deliveries in status override this."""
        return status

    def _kick_outbox(self, key: Key, uid: str) -> None:
        """Start the CR's outbox task unless it runs or there is nothing to send."""
        body = self.bodies.get(key)
        if uid in self._draining or body is None or not self.status_of(body).get("outbox"):
            return
        self._draining.add(uid)
        task = asyncio.get_running_loop().create_task(self._drain(key, uid), context=detached())
        task.add_done_callback(lambda _: self._draining.discard(uid))
        self.track(task)  # so that stop() ends a delivery still waiting when the operator stops

    async def _drain(self, key: Key, uid: str) -> None:
        """Deliver the outbox's entries one by one, in order, removing each from status once sent
        (under the CR's lock, so a pass never writes back an entry already removed)."""
        failures = 0
        while True:
            body = self.bodies.get(key)
            outbox = self.status_of(body).get("outbox") if body and body["metadata"]["uid"] == uid else None
            if not outbox:
                return
            entry = outbox[0]
            ok = await self.notifier.deliver(entry["url"], json.loads(entry["event"]))
            try:
                async with self._exclusive(uid):
                    body = self.bodies.get(key)
                    if body is None or body["metadata"]["uid"] != uid:
                        return
                    status = {k: v for k, v in self.status_of(body).items() if k != "outbox"}
                    rest = [e for e in self.status_of(body).get("outbox") or [] if e != entry]
                    await self.write_status(body, self.delivered({**status, "outbox": rest} if rest else status, ok))
                failures = 0
            except (kubemod.KubeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
                # Not recorded: the entry is sent again (same id) once the API answers.
                failures += 1
                log.warning("%s %s/%s: outbox not updated, retrying: %s", self.kind, *key, e)
                await asyncio.sleep(min(60.0, self.settings.error_backoff_s * 2 ** failures))

    # ------------------------------------------------------------------ passes that fail

    async def failed(self, key: Key, body: dict[str, Any], error: Exception) -> None:
        """A pass raised: record it once (log, metric, condition, Warning Event) and try again later
        with per-object exponential backoff and jitter. All the work is idempotent, so a retry
        picks up where the pass stopped; what raised stays visible in the CR's status meanwhile."""
        meta = body["metadata"]
        uid = meta["uid"]
        if isinstance(error, kubemod.KubeError) and error.status == 404 and error.what.startswith(
                "write the status of"):
            # The CR itself is gone (deleted while we were not watching: a re-list does not say so).
            log.info("%s %s/%s is gone; forgetting it", self.kind, *key)
            self.forget(key, uid)
            return
        kind, reason, message = classify(error)
        metrics.RECONCILE_ERRORS.labels(self.kind, kind).inc()
        count, logged, reported = self._failures.get(uid, (0, "", ""))
        count += 1
        delay = min(self.settings.error_backoff_max_s, self.settings.error_backoff_s * 2 ** (count - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: CRs that failed together do not retry together
        if message != logged:  # once per distinct error, not once per retry
            if kind == "internal":
                log.error("reconcile %s %s/%s raised; retrying in %.0fs", self.kind, *key, delay, exc_info=error)
            else:
                log.warning("reconcile %s %s/%s failed (%s), retrying in %.0fs: %s", self.kind, *key, kind, delay,
                            message)
        if message != reported and (kind != "transient" or count >= 3):  # a blip is not worth a status write
            await self._report(body, False, reason, message)
            reported = message
        self._failures[uid] = (count, message, reported)
        self.requeue(key, uid, delay)

    async def recovered(self, body: dict[str, Any]) -> None:
        """The first clean pass after failures: the condition says so, the backoff starts over."""
        count = self._failures.pop(body["metadata"]["uid"], (0, "", ""))[0]
        conditions = self.status_of(body).get("conditions") or []
        if any(c.get("type") == RECONCILED and c.get("status") == "False" for c in conditions):
            await self._report(body, True, "Reconciled", f"reconciled again after {count} failed pass(es)")

    async def _report(self, body: dict[str, Any], ok: bool, reason: str, message: str) -> None:
        """Set the Reconciled condition (and post an Event when it turns False); best effort, since
        the API that refused the pass may refuse this too."""
        status = self.status_of(body)
        conditions = set_condition([Condition.model_validate(c) for c in status.get("conditions") or []], RECONCILED,
                                   ok, reason, message, body["metadata"].get("generation"), now_iso())
        try:
            await self.write_status(body, {**status, "conditions": [c.model_dump(exclude_none=True)
                                                                    for c in conditions]})
        except (kubemod.KubeError, OSError, asyncio.TimeoutError, aiohttp.ClientError):
            pass
        if not ok:
            await self.post_events(body, [("Warning", reason, message)])

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
        self._transitioned(meta, old.get(self.state_field), new)

    def _transitioned(self, meta: Mapping[str, Any], old: str | None, status: Mapping[str, Any]) -> None:
        """A state change, written: one info line (the only one per object at info; in JSON its
        fields kind, namespace, name, from, to, reason) and the transition metrics."""
        new, reason = status.get(self.state_field), status.get("reason")
        if new is None or new == old:
            return
        log.info("%s %s/%s: %s → %s (%s)", self.kind, meta["namespace"], meta["name"], old or "none", new,
                 reason or "no reason", extra=logs.about({"kind": self.kind, "namespace": meta["namespace"],
                                                         "name": meta["name"], "from": old, "to": new,
                                                         "reason": reason}))
        if old is None:
            metrics.SUBMISSIONS.labels(self.kind).inc()
        metrics.TRANSITIONS.labels(self.kind, new).inc()
        if new in self.failed_states:
            metrics.FAILURES.labels(self.kind, reason or "unknown").inc()
        if new in self.retry_states:
            metrics.RETRIES.labels(self.kind).inc()
        if new in self.terminal_states and old not in self.terminal_states:
            started = self.run_started_ms(status)
            if started is not None:
                metrics.RUN_SECONDS.labels(self.kind).observe(max(0.0, (self.now_ms() - started) / 1000))

    def run_started_ms(self, status: Mapping[str, Any]) -> int | None:
        """When the run now ending started (lakejob_run_duration_seconds): `create_time`, the CR's
        creation, which DLI's job duration counts from too; None: not observed."""
        started = status.get("create_time")
        return started if isinstance(started, int) else None

    async def post_events(self, body: Mapping[str, Any], events: Iterable[tuple[str, str, str]]) -> None:
        obj = {"apiVersion": API_VERSION, "kind": self.kind, "metadata": body["metadata"]}
        await asyncio.gather(*(self.kube.event(obj, t, reason, message) for t, reason, message in events))
