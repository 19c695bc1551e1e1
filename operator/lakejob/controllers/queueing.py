"""Kueue, the reconcilers' side (docs/queues.md): whether Kueue is served, where a job's queue
leads, and the operator's writes to a job's Workload besides creating it: Finished when the job
ends (Kueue frees the quota) and, after a preemption once the job's pods are gone, the release of
its reservation (Kueue requeues it). decide says when (controllers.admission); this does the I/O.

Used by the kinds' reconcilers (controllers.spark_driver for the Spark kinds), which also register
the Workload index (`WORKLOADS`, summarised by admission.summarize_workload).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import aiohttp

from lakejob import kube as kubemod
from lakejob.controllers.admission import UNQUEUED, Route
from lakejob.render import workload as render
from lakejob.settings import Settings

log = logging.getLogger("lakejob")

RESOURCE = ("kueue.x-k8s.io", "v1beta2", "workloads")  # the kopf resource of the Workload indexes
kubemod.register_kind(render.API_VERSION, render.KIND, render.PLURAL)


class KueueProbe:
    """Whether Kueue's Workload API is served: asked at the operator's start and when a job in a
    queue needs to know, at most once per PROBE_S, and logged when the answer changes (so "Kueue is
    not installed" is said once).

    kopf watches the Workloads (the kinds' indexes) only when their API was there at its start, so
    a change of the answer after the start calls `on_change` (lakejob.operator restarts the process:
    docs/queues.md, "Installing or removing Kueue")."""

    PROBE_S = 30.0

    def __init__(self) -> None:
        self._served: bool | None = None
        self._asked = -math.inf
        self.on_change: Callable[[bool], None] | None = None

    async def served(self, kube: kubemod.Kube, settings: Settings) -> bool:
        if time.monotonic() - self._asked < self.PROBE_S and self._served is not None:
            return self._served
        self._asked = time.monotonic()
        status, payload = await kube.request("GET", f"/apis/{render.API_VERSION}")
        served = status < 300 and isinstance(payload, dict) and any(
            r.get("name") == render.PLURAL for r in payload.get("resources") or ())
        if served != self._served:
            if self._served is not None and self.on_change is not None:
                self.on_change(served)
            if served:
                log.info("Kueue is installed (%s is served): jobs naming a queue go through it", render.API_VERSION)
            elif settings.queueing == "required":
                log.warning("Kueue is not installed (%s is not served): jobs naming a queue wait for it "
                            "(LAKEJOB_QUEUEING=required)", render.API_VERSION)
            else:
                log.warning("Kueue is not installed (%s is not served): jobs naming a queue run unqueued "
                            "(LAKEJOB_QUEUEING=auto)", render.API_VERSION)
        self._served = served
        return served

    async def follow(self, kube: kubemod.Kube, settings: Settings) -> None:
        """Ask every PROBE_S even when no job does (a background task of the operator's): a Kueue
        installed while no job names a queue is then noticed before the first one comes."""
        while True:
            await asyncio.sleep(self.PROBE_S)
            if time.monotonic() - self._asked < self.PROBE_S:
                continue  # a job asked meanwhile
            try:
                await self.served(kube, settings)
            except (kubemod.KubeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
                log.debug("could not ask whether Kueue is installed: %s", e)  # the next round asks again

    def invalidate(self) -> None:
        """Ask again at the next question: Kueue's API answered 404 (uninstalled since the last look)."""
        self._asked = -math.inf


PROBE = KueueProbe()  # one per operator process: every kind asks the same question


async def route(queue: str | None, settings: Settings, kube: kubemod.Kube) -> Route:
    """Where a job naming `queue` goes (docs/queues.md, "The LocalQueue a job goes to")."""
    if not queue or settings.queueing == "off":
        return UNQUEUED
    if not await PROBE.served(kube, settings):
        if settings.queueing == "required":
            return Route(wait="KueueNotInstalled",
                         message=f"LAKEJOB_QUEUEING=required and Kueue is not installed ({render.API_VERSION} "
                                 "is not served): the job waits for it")
        return UNQUEUED
    local_queue = render.local_queue(queue, settings.queue_map)
    if (why := render.invalid_local_queue(local_queue)) is not None:
        return Route(wait="InvalidQueueName", message=f"queue {queue!r} goes to LocalQueue {why}: name it in "
                                                      "LAKEJOB_QUEUE_MAP")
    return Route(local_queue=local_queue)


async def create_workload(kube: kubemod.Kube, workload: dict[str, Any]) -> bool | None:
    """Create a job's Workload if absent: True made, False there already; None when Kueue's Workload
    API answers 404 (uninstalled since the probe last looked): the probe asks again at once, which
    restarts the operator (`KueueProbe.on_change`), and the caller's next pass routes the job afresh."""
    try:
        return await kube.create(workload)
    except kubemod.KubeError as e:
        if e.status != 404:
            raise
        PROBE.invalidate()
        return None


async def priority_of(kube: kubemod.Kube, priority_class: str | None) -> int:
    """A Workload's priority: the value of the pod PriorityClass its job's pods name (0 without one,
    or when it does not exist: then the pods are refused at creation, which says so)."""
    if not priority_class:
        return 0
    status, payload = await kube.request("GET", f"/apis/scheduling.k8s.io/v1/priorityclasses/{priority_class}")
    if status == 404:
        return 0
    if status >= 300 or not isinstance(payload, dict):
        message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
        raise kubemod.KubeError(status, message, f"get PriorityClass {priority_class}")
    return int(payload.get("value") or 0)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


Conditions = Mapping[str, tuple[str, str, str]]  # type → (status, reason, message)


async def _set_conditions(kube: kubemod.Kube, namespace: str, name: str, owner_uid: str,
                          conditions_of: Callable[[dict[str, Mapping[str, Any]]], Conditions], **status: Any) -> bool:
    """Set the Workload's conditions (`conditions_of` its current ones) and `status` fields, in one
    merge patch of its status carrying the resourceVersion read: a write of Kueue's in between
    makes it fail (409, retried by the next pass) rather than be lost. False: the Workload is gone."""
    wl = await kube.get(render.API_VERSION, render.KIND, namespace, name)
    if wl is None:
        return False
    if kubemod.controller_uid(wl) != owner_uid:
        raise kubemod.NotOwned(render.KIND, namespace, name, kubemod.describe_owner(wl))
    now, generation = _now(), wl["metadata"].get("generation")
    old = {c["type"]: c for c in (wl.get("status") or {}).get("conditions") or ()}
    conditions = conditions_of(old)
    new = []
    for kind, (value, reason, message) in conditions.items():
        same = old.get(kind, {}).get("status") == value
        new.append({"type": kind, "status": value, "reason": reason, "message": message[:32768],
                    "lastTransitionTime": old[kind].get("lastTransitionTime", now) if same else now,
                    "observedGeneration": generation})
    body = {"metadata": {"resourceVersion": wl["metadata"]["resourceVersion"]},
            "status": {**status, "conditions": [c for k, c in old.items() if k not in conditions] + new}}
    code, payload = await kube.request("PATCH", kubemod.path(render.API_VERSION, render.KIND, namespace, name, "status"),
                                       body, content_type="application/merge-patch+json")
    if code == 404:
        return False
    if code >= 300:
        message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
        raise kubemod.KubeError(code, message, f"write the status of Workload {name}")
    return True


async def finish(kube: kubemod.Kube, namespace: str, name: str, owner_uid: str, reason: str) -> bool:
    """The job ended: Finished True (reason Succeeded or Failed), which frees its quota, as Kueue's
    own integrations do (workload.Finish)."""
    message = "the job succeeded" if reason == "Succeeded" else "the job ended without success"
    return await _set_conditions(kube, namespace, name, owner_uid, lambda _: {"Finished": ("True", reason, message)})


async def release(kube: kubemod.Kube, namespace: str, name: str, owner_uid: str) -> bool:
    """After an eviction, once the job's pods are gone: what Kueue's jobframework does then
    (pkg/controller/jobframework/reconciler.go, "handle eviction": Requeued True only after a
    preemption or a node failure — a deactivated Workload is not requeued —, QuotaReserved False
    reason Pending, Admitted False, no admission), which frees the quota. Its Evicted reason and
    message are kept."""
    def conditions(old: dict[str, Mapping[str, Any]]) -> Conditions:
        evicted = old.get("Evicted") or {}
        reason = str(evicted.get("reason") or "Preempted")
        why = str(evicted.get("message") or reason)
        requeued = "True" if reason in ("Preempted", "NodeFailures") else "False"
        return {"Requeued": (requeued, reason, why), "QuotaReserved": ("False", "Pending", why),
                "Admitted": ("False", "NoReservation", "The workload has no reservation")}

    return await _set_conditions(kube, namespace, name, owner_uid, conditions, admission=None)
