"""The driver machinery every Spark kind shares: SparkBatch's and SparkSession's reconcilers
subclass `SparkReconciler` and read their pods through `observe_pods`.

`SparkReconciler` decides which ServiceAccount a driver runs as and creates the children each
driver needs (the RBAC, the kind's others) idempotently, then the driver pod (its conf files inside);
`observe_pods` turns a CR's summarised pods (controllers.pods) into what the kinds' decide
functions read: the current driver and the executor counts. Imported by controllers.sparkbatch
and controllers.sparksession.
"""
from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Awaitable
from typing import Any

from lakejob import kube as kubemod
from lakejob.controllers import base, queueing
from lakejob.controllers.admission import UNQUEUED, Route, WorkloadObs
from lakejob.controllers.base import Key
from lakejob.controllers.pods import summarize_pod
from lakejob.controllers.sparkbatch_decide import DriverObs, Observed
from lakejob.models.spark import ExecutorCounts, SparkAppSpec, SparkAppStatus, resolve_sizing
from lakejob.render import spark as render
from lakejob.render import workload as render_workload
from lakejob.render.common import Owner


def observe_pods(pods: list[dict[str, Any]], driver_name: str | None, app: str | None, now_ms: int,
                 log_tail: list[str] | None) -> Observed:
    driver = None
    counts = ExecutorCounts()
    for p in pods:
        if p["role"] == "driver" and p["name"] == driver_name:
            driver = DriverObs(**{k: v for k, v in p.items() if k in DriverObs.__dataclass_fields__})
        elif p["role"] == "executor" and (app is None or p["app"] == app):
            phase = p["phase"].lower()
            if phase in ("pending", "running", "succeeded", "failed"):
                setattr(counts, phase, getattr(counts, phase) + 1)
    return Observed(now_ms=now_ms, driver=driver, executors=counts, log_tail=log_tail)


class SparkReconciler(base.Reconciler):
    """The driver plumbing every Spark kind shares: which ServiceAccount its driver runs as, and
    creating the RBAC and the kind's other children it needs (idempotently)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # namespace → the creation of its shared driver account (LAKEJOB_DRIVER_RBAC=per-namespace):
        # one per namespace, which a burst's concurrent passes all wait for instead of each sending
        # its own three creates (60 of each, answered 409, in a 1,000-job burst).
        self._shared_rbac: dict[str, asyncio.Task[None]] = {}

    def service_account(self, spec: SparkAppSpec, owner: Owner) -> str:
        if spec.driver and spec.driver.serviceAccountName:
            return spec.driver.serviceAccountName
        if self.settings.driver_rbac == "per-namespace":
            return render.SHARED_DRIVER_ACCOUNT
        return render.Names.of_owner(owner).rbac

    # The kind says how its driver pod and its other children are rendered; the rest is shared.
    pods_index: str = ""
    workloads_index: str = ""  # its Kueue Workloads' index (docs/queues.md)

    async def queue_of(self, key: Key, spec: SparkAppSpec | None, status: SparkAppStatus,
                       waiting: bool) -> tuple[Route, WorkloadObs | None]:
        """Where the job's queue leads (asked only of a job that may still queue: new, or waiting
        for admission, whose queue may have gone with Kueue) and its Workload as Kueue left it."""
        route = UNQUEUED
        if spec is not None and waiting:
            route = await queueing.route(render.queue_of(spec), self.settings, self.kube)
        workload = None
        if status.workload is not None:
            workload = WorkloadObs.of(next((w for w in self.children(self.workloads_index, key)
                                            if w["name"] == status.workload.name), None))
        return route, workload

    async def render_workload(self, spec: SparkAppSpec, owner: Owner, local_queue: str) -> dict[str, Any]:
        """The job's Workload: the driver ×1 and the executors × their count, as the pods will be, at
        the priority of the driver's PriorityClass (Kueue orders and preempts by it)."""
        sizing = resolve_sizing(spec)
        pod_sets = [render_workload.PodSet("driver", 1, self.render_driver(spec, owner, 1)),
                    render_workload.PodSet("executor", sizing.num_executors,
                                           render.executor_pod(spec, owner, sizing, self.settings))]
        priority = await queueing.priority_of(self.kube, spec.driver.priorityClassName if spec.driver else None)
        return render_workload.build_workload(owner, local_queue, pod_sets, priority, queue_label=render.queue_of(spec))

    @abstractmethod
    def render_driver(self, spec: Any, owner: Owner, attempt: int) -> dict[str, Any]:
        """The driver pod of one attempt."""

    @abstractmethod
    def render_children(self, spec: Any, owner: Owner) -> list[dict[str, Any]]:
        """The kind's children besides the driver and its RBAC (a session's Service); the driver pod
        carries its own conf files (render.spark.conf_files)."""

    def other_action(self, action: Any, owner: Owner, spec: Any) -> Awaitable[Any] | None:
        """A kind's own action verbs (SparkSession's delete_children); None: not one of them."""
        return None

    async def apply(self, key: Key, body: dict[str, Any], spec: SparkAppSpec | None, decision: Any) -> None:
        """Write-ahead: the attempt is recorded before its driver is created, so a crash in between
        resumes this attempt. Children are idempotent and harmless without a driver, so they are
        created alongside the status write; then the driver, deletions and the Events."""
        meta = body["metadata"]
        owner = Owner(base.API_VERSION, self.kind, meta["name"], meta["namespace"], meta["uid"])
        first: list[Awaitable[Any]] = [self.write_status(body, decision.status.model_dump(exclude_none=True,
                                                                                          mode="json"))]
        first += [self.ensure_driver_children(spec, owner, self.render_children(spec, owner))
                  for a in decision.actions if a.verb == "ensure_children" and spec is not None]
        await asyncio.gather(*first)
        then: list[Awaitable[Any]] = [self.post_events(body, decision.events)]
        workload = decision.status.workload
        for action in decision.actions:
            if action.verb == "create_driver" and spec is not None:
                then.append(self._create_driver(key, spec, owner, action.attempt))
            elif action.verb == "delete_driver":
                then.append(self.kube.delete_child("v1", "Pod", meta["namespace"], action.pod, owner.uid))
            elif action.verb == "ensure_workload" and spec is not None and workload is not None:
                then.append(self._create_workload(key, spec, owner, workload.localQueue))
            elif action.verb == "release_workload" and workload is not None:
                then.append(queueing.release(self.kube, owner.namespace, workload.name, owner.uid))
            elif action.verb == "finish_workload" and workload is not None:
                then.append(queueing.finish(self.kube, owner.namespace, workload.name, owner.uid, action.reason))
            elif (other := self.other_action(action, owner, spec)) is not None:
                then.append(other)
        await asyncio.gather(*then)
        if decision.requeue_after_s is not None:
            self.requeue(key, meta["uid"], decision.requeue_after_s)

    async def _create_driver(self, key: Key, spec: SparkAppSpec, owner: Owner, attempt: int) -> None:
        pod = self.render_driver(spec, owner, attempt)
        try:
            created = await self.kube.create(pod)
        except kubemod.KubeError as e:
            if e.status == 403 and "service account" in e.message:
                # The shared driver account was deleted behind our back: make it again next pass.
                self._shared_rbac.pop(owner.namespace, None)
            raise
        if created:
            self.note_created(key, self.pods_index, summarize_pod(pod))

    async def _create_workload(self, key: Key, spec: SparkAppSpec, owner: Owner, local_queue: str) -> None:
        workload = await self.render_workload(spec, owner, local_queue)
        created = await queueing.create_workload(self.kube, workload)
        if created is None:  # Kueue's API is gone: route the job afresh
            self.requeue(key, owner.uid, 1)
        elif created:
            self.note_created(key, self.workloads_index, {"name": workload["metadata"]["name"]})

    async def ensure_driver_children(self, spec: SparkAppSpec, owner: Owner, others: list[dict[str, Any]]) -> None:
        """RBAC and `others`: created if absent, in parallel."""
        objects = list(others)
        waits: list[Awaitable[None]] = []
        if spec.driver and spec.driver.serviceAccountName:
            pass  # the user's own account
        elif self.settings.driver_rbac == "per-job":
            objects += render.driver_rbac(spec, owner)
        else:
            waits.append(self._shared_account(owner.namespace))
        await asyncio.gather(self._create_all(objects), *waits)

    def _shared_account(self, namespace: str) -> Awaitable[None]:
        """The namespace's shared driver account, created once: the task every pass waits for (a
        failed one is tried again by the next pass; shielded, as one pass cancelled must not cancel
        the others' wait)."""
        task = self._shared_rbac.get(namespace)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._shared_rbac[namespace] = asyncio.get_running_loop().create_task(
                self._create_all(render.shared_driver_rbac(namespace)))
            self.track(task)  # stop() ends it with the passes
        return asyncio.shield(task)

    async def _create_all(self, objects: list[dict[str, Any]]) -> None:
        """Create `objects` if absent, in parallel, RoleBindings after the rest: the apiserver resolves
        a binding's Role to check that the operator holds every right it grants (RBAC escalation
        check), so the Role must exist first."""
        await asyncio.gather(*(self.kube.create(o) for o in objects if o["kind"] != "RoleBinding"))
        await asyncio.gather(*(self.kube.create(o) for o in objects if o["kind"] == "RoleBinding"))

