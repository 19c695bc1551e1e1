"""SparkBatch handlers: observe the driver and executors, decide, apply. Thin; kopf-facing.

Registered by lakejob.operator. The loop (docs/architecture.md):

  watch event on the SparkBatch, or on one of its pods, or a requeue timer
    → observe: the CR's spec and status, its pods from the in-memory pod index (no LIST calls)
    → decide:  lakejob.controllers.sparkbatch_decide.decide (pure)
    → apply:   create-if-absent children, delete the driver, patch status, post Events

The handlers are kopf *event* handlers, not change-detecting ones: they keep no per-object
state in annotations and need no finalizer, so the operator adds no writes of its own and a
CR can always be deleted, operator running or not. Every reconcile of one CR is serialised by
a per-CR lock, and is idempotent (deterministic child names, creates that accept 409).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from lakejob import kube as kubemod
from lakejob.controllers.sparkbatch_decide import (
    Decision,
    DriverObs,
    Meta,
    Observed,
    decide,
    resolve_sizing,
)
from lakejob.crds import GROUP, VERSION
from lakejob.models.sparkbatch import TERMINAL_STATES, ExecutorCounts, SparkBatchSpec, SparkBatchStatus
from lakejob.render import spark as render
from lakejob.settings import Settings

API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SparkBatch"
PLURAL = "sparkbatches"
log = logging.getLogger("lakejob.sparkbatch")


def _ms(ts: str | None) -> int | None:
    if not ts:
        return None
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def summarize_pod(body: dict[str, Any]) -> dict[str, Any]:
    """The little we keep of each lakejob pod in memory (what decide needs), from a pod body."""
    meta, status = body["metadata"], body.get("status") or {}
    labels = meta.get("labels") or {}
    out: dict[str, Any] = {
        "name": meta["name"],
        "role": labels.get("spark-role") or labels.get("lakejob.io/role"),
        "app": labels.get("spark-app-selector"),
        "phase": status.get("phase", "Pending"),
        "created_ms": _ms(meta.get("creationTimestamp")) or 0,
        "deleting": bool(meta.get("deletionTimestamp")),
    }
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            out["unschedulable"] = cond.get("message") or cond.get("reason")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "ContainerCreating"):
            out["waiting_reason"] = state["waiting"].get("reason")
            out["waiting_message"] = state["waiting"].get("message")
        if "running" in state:
            out["started_ms"] = _ms(state["running"].get("startedAt"))
        if "terminated" in state:
            t = state["terminated"]
            out.update(exit_code=t.get("exitCode"), term_reason=t.get("reason"), term_message=t.get("message"),
                       started_ms=_ms(t.get("startedAt")), finished_ms=_ms(t.get("finishedAt")))
    if status.get("phase") == "Failed" and "term_reason" not in out:
        out["term_reason"], out["term_message"] = status.get("reason"), status.get("message")
    return out


def pod_key(body: dict[str, Any]) -> tuple[str, str]:
    meta = body["metadata"]
    return meta["namespace"], (meta.get("labels") or {}).get("lakejob.io/name", "")


def observe_pods(pods: list[dict[str, Any]], driver_name: str | None, app: str | None, now_ms: int,
                 log_tail: list[str] | None) -> Observed:
    driver = None
    counts = ExecutorCounts()
    for p in pods:
        if p["role"] == "driver" and p["name"] == driver_name:
            driver = DriverObs(**{k: v for k, v in p.items() if k not in ("role", "app")})
        elif p["role"] == "executor" and (app is None or p["app"] == app):
            phase = p["phase"].lower()
            if phase in ("pending", "running", "succeeded", "failed"):
                setattr(counts, phase, getattr(counts, phase) + 1)
    return Observed(now_ms=now_ms, driver=driver, executors=counts, log_tail=log_tail)


def parse_spec(body: dict[str, Any]) -> tuple[SparkBatchSpec | None, str | None]:
    """The spec, or the reason it is invalid (every broken rule, each naming its field)."""
    try:
        return SparkBatchSpec.model_validate(body.get("spec") or {}), None
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"spec.{loc}: {msg}" if loc else f"spec: {msg}")
        return None, "; ".join(parts)


@dataclass
class SparkBatchController:
    """Holds the operator's shared state for this kind: settings, the API client, caches, locks."""

    settings: Settings
    kube: kubemod.Kube
    now_ms: Callable[[], int]
    # (namespace, base name) → latest CR body seen (kopf index wrapper fills it)
    bodies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # kopf's pod index: (namespace, base name) → summaries of that CR's pods. kopf fills it from
    # the pod watch and holds every handler back until its initial listing is complete, so a
    # restarted operator never mistakes "not listed yet" for "missing".
    pod_index: Mapping[tuple[str, str], Iterable[dict[str, Any]]] = field(default_factory=dict)
    # Pods we created whose watch event has not arrived yet: no second create on the next pass.
    _created: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # uid → (resourceVersion, status) we wrote last: a watch event may still carry an older status.
    _written: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _requeues: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _shared_rbac_done: set[str] = field(default_factory=set)  # namespaces (per-namespace RBAC mode)
    _slots: asyncio.Semaphore | None = None

    def _slot(self) -> asyncio.Semaphore:
        if self._slots is None:  # made lazily: it must belong to the running loop
            self._slots = asyncio.Semaphore(self.settings.max_concurrent_reconciles)
        return self._slots

    # ------------------------------------------------------------------ inputs from kopf

    def cr_event(self, event_type: str | None, body: dict[str, Any]) -> asyncio.Task[None] | None:
        meta = body["metadata"]
        key = (meta["namespace"], render.Names.of(meta["name"]).base)
        if event_type == "DELETED":
            self.forget(key, meta.get("uid", ""))
            return None
        self.bodies[key] = body
        return self._spawn(key)

    def pod_event(self, body: dict[str, Any]) -> asyncio.Task[None] | None:
        key = pod_key(body)
        return self._spawn(key) if key in self.bodies else None

    def pods_of(self, key: tuple[str, str]) -> list[dict[str, Any]]:
        seen = {p["name"]: p for p in self.pod_index.get(key, ())}
        pending = self._created.get(key)
        if pending:
            for name in [n for n in pending if n in seen]:
                del pending[name]
            seen = {**pending, **seen}
        return list(seen.values())

    def forget(self, key: tuple[str, str], uid: str) -> None:
        self.bodies.pop(key, None)
        self._created.pop(key, None)
        self._written.pop(uid, None)
        self._locks.pop(uid, None)
        handle = self._requeues.pop(uid, None)
        if handle:
            handle.cancel()

    def _spawn(self, key: tuple[str, str]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self.reconcile(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def requeue(self, key: tuple[str, str], uid: str, delay_s: float) -> None:
        old = self._requeues.pop(uid, None)
        if old:
            old.cancel()
        self._requeues[uid] = asyncio.get_running_loop().call_later(delay_s, self._spawn, key)

    async def resync(self) -> None:
        """Safety net against a lost event: re-reconcile every non-terminal CR now and then."""
        while True:
            await asyncio.sleep(self.settings.resync_interval_s)
            for key, body in list(self.bodies.items()):
                if (body.get("status") or {}).get("state") not in TERMINAL_STATES:
                    self._spawn(key)

    # ------------------------------------------------------------------ the loop

    def _status(self, body: dict[str, Any]) -> dict[str, Any]:
        uid = body["metadata"]["uid"]
        seen = body.get("status") or {}
        written = self._written.get(uid)
        if written and written[0] > int(body["metadata"].get("resourceVersion", "0")):
            return written[1]
        return seen

    async def reconcile(self, key: tuple[str, str]) -> None:
        body = self.bodies.get(key)
        if body is None:
            return
        uid = body["metadata"]["uid"]
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock, self._slot():
            body = self.bodies.get(key)
            if body is None or body["metadata"]["uid"] != uid:
                return
            try:
                await self._reconcile(key, body)
            except (kubemod.KubeError, OSError, asyncio.TimeoutError) as e:
                # Transient API trouble: say so, and try again soon (the work is idempotent).
                log.warning("reconcile %s/%s failed, retrying: %s", *key, e)
                self.requeue(key, uid, 2.0)

    async def _reconcile(self, key: tuple[str, str], body: dict[str, Any]) -> None:
        meta = body["metadata"]
        status_dict = self._status(body)
        status = SparkBatchStatus.model_validate(status_dict)
        spec, error = parse_spec(body)
        pods = self.pods_of(key)
        now = self.now_ms()
        log_tail = None
        driver = next((p for p in pods if p["name"] == status.driverPod and p["role"] == "driver"), None)
        if (driver is not None and driver["phase"] == "Failed" and status.state not in TERMINAL_STATES
                and self.settings.driver_logs):
            log_tail = await self.kube.pod_log_tail(meta["namespace"], driver["name"], 10,
                                                    self.settings.driver_log_timeout_s)
        observed = observe_pods(pods, status.driverPod, status.appId, now, log_tail)
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                 generation=meta.get("generation", 1), created_ms=_ms(meta.get("creationTimestamp")) or now)
        decision = decide(spec, error, m, status, observed, self.settings)
        await self._apply(key, body, spec, decision)

    async def _apply(self, key: tuple[str, str], body: dict[str, Any], spec: SparkBatchSpec | None,
                     decision: Decision) -> None:
        meta = body["metadata"]
        owner = render.Owner(API_VERSION, KIND, meta["name"], meta["namespace"], meta["uid"])
        new_status = decision.status.model_dump(exclude_none=True, mode="json")
        old_status = self._status(body)
        first: list[Awaitable[Any]] = []
        if new_status != old_status:
            # Write-ahead: the attempt is recorded before its driver is created (below), so a crash
            # in between resumes this attempt instead of starting another.
            first.append(self._write_status(owner, old_status, new_status))
        # Children are idempotent and harmless without a driver: create them alongside the status write.
        first += [self._ensure_children(spec, owner, a.attempt) for a in decision.actions
                  if a.verb == "ensure_children" and spec is not None]
        await asyncio.gather(*first)
        then: list[Awaitable[Any]] = [
            self.kube.event({"apiVersion": API_VERSION, "kind": KIND, "metadata": meta}, type_, reason, message)
            for type_, reason, message in decision.events]
        for action in decision.actions:
            if action.verb == "create_driver" and spec is not None:
                then.append(self._create_driver(key, spec, owner, action.attempt))
            elif action.verb == "delete_driver":
                then.append(self.kube.delete("v1", "Pod", meta["namespace"], action.pod))
        await asyncio.gather(*then)
        if decision.requeue_after_s is not None:
            self.requeue(key, meta["uid"], decision.requeue_after_s)

    async def _write_status(self, owner: render.Owner, old: dict[str, Any], new: dict[str, Any]) -> None:
        # A merge patch deletes keys by sending null.
        patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
        patch.update({k: None for k in old if k not in new})
        rv = await self.kube.patch_status(API_VERSION, KIND, owner.namespace, owner.name, patch)
        self._written[owner.uid] = (rv, new)

    async def _create_driver(self, key: tuple[str, str], spec: SparkBatchSpec, owner: render.Owner,
                             attempt: int) -> None:
        pod = render.driver_pod(spec, owner, resolve_sizing(spec), attempt, self.settings,
                                self._service_account(spec, owner))
        if await self.kube.create(pod):
            # Seen before its watch event arrives: no second create on the next pass.
            self._created.setdefault(key, {})[pod["metadata"]["name"]] = summarize_pod(pod)

    def _service_account(self, spec: SparkBatchSpec, owner: render.Owner) -> str:
        if spec.driver and spec.driver.serviceAccountName:
            return spec.driver.serviceAccountName
        if self.settings.driver_rbac == "per-namespace":
            return render.SHARED_DRIVER_ACCOUNT
        return render.Names.of(owner.name).rbac

    async def _ensure_children(self, spec: SparkBatchSpec, owner: render.Owner, attempt: int) -> None:
        """ServiceAccount/Role/RoleBinding, ConfigMap, Service: created if absent, in parallel.

        The ConfigMap names things per attempt (driver pod, executor prefix), so a retry replaces it.
        """
        sz = resolve_sizing(spec)
        cm = render.configmap(spec, owner, sz, attempt, self.settings)
        objects = [render.driver_service(spec, owner)]
        if spec.driver and spec.driver.serviceAccountName:
            pass  # the user's own account
        elif self.settings.driver_rbac == "per-job":
            objects += render.driver_rbac(spec, owner)
        elif owner.namespace not in self._shared_rbac_done:
            objects += render.shared_driver_rbac(owner.namespace)
        results = await asyncio.gather(self.kube.create(cm), *(self.kube.create(o) for o in objects))
        if attempt > 1 and not results[0]:
            status, payload = await self.kube.request(
                "PUT", kubemod.path("v1", "ConfigMap", owner.namespace, cm["metadata"]["name"]), cm)
            if status >= 300:
                raise kubemod.KubeError(status, str(payload))
        if self.settings.driver_rbac == "per-namespace":
            self._shared_rbac_done.add(owner.namespace)
