"""SparkBatch: kopf handlers (thin) and the reconciler's observe and apply steps.

`SparkReconciler` here is what every Spark kind's reconciler shares (the driver's ServiceAccount
and the children each driver needs); controllers.sparksession subclasses it as well, and reuses
`summarize_pod`.

The loop is controllers.base's; decide is controllers.sparkbatch_decide (pure). Here:
- observe: the spec through the model, the status, the driver and executor pods from the pod
  index (no LIST calls), and the failed driver's log tail;
- apply: status (write-ahead) alongside the idempotent children, then the driver pod and Events.
"""
from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Awaitable, Mapping
from typing import Any


from lakejob import kube as kubemod
from lakejob import policy
from lakejob.controllers import base
from lakejob.controllers.base import Key, ms
from lakejob.controllers.sparkbatch_decide import LOG_READ_LINES, DriverObs, Meta, Observed, decide, resolve_sizing
from lakejob.models.spark import ExecutorCounts, SparkAppSpec
from lakejob.models.sparkbatch import TERMINAL_STATES, SparkBatchSpec, SparkBatchStatus
from lakejob.render import packages
from lakejob.render import spark as render
from lakejob.render.common import Owner

KIND = "SparkBatch"
PODS = "sparkbatch_pods"  # the kopf index of this kind's pods (named after its handler)


def summarize_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """The little we keep of each pod in memory (what decide needs), from a pod body."""
    meta, status = body["metadata"], body.get("status") or {}
    labels = meta.get("labels") or {}
    out: dict[str, Any] = {
        "name": meta["name"],
        "role": labels.get("spark-role") or labels.get("lakejob.io/role"),
        "app": labels.get("spark-app-selector"),
        "phase": status.get("phase", "Pending"),
        "created_ms": ms(meta.get("creationTimestamp")) or 0,
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
            out["started_ms"] = ms(state["running"].get("startedAt"))
        if "terminated" in state:
            t = state["terminated"]
            out.update(exit_code=t.get("exitCode"), term_reason=t.get("reason"), term_message=t.get("message"),
                       started_ms=ms(t.get("startedAt")), finished_ms=ms(t.get("finishedAt")))
    if (t := packages.failed_fetch(status)) is not None:  # the driver never started
        out.update(exit_code=t["exitCode"], term_reason=packages.FETCH_FAILED, term_message=t.get("message"),
                   finished_ms=ms(t.get("finishedAt")))
    if status.get("phase") == "Failed" and "term_reason" not in out:
        out["term_reason"], out["term_message"] = status.get("reason"), status.get("message")
    return out


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


def parse_spec(body: Mapping[str, Any]) -> tuple[SparkBatchSpec | None, str | None]:
    return base.parse_spec(SparkBatchSpec, body)


class SparkReconciler(base.Reconciler):
    """The driver plumbing every Spark kind shares: which ServiceAccount its driver runs as, and
    creating the ConfigMap, the RBAC and the kind's other children it needs (idempotently)."""

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

    # The kind says how its driver pod, its ConfigMap and its other children are rendered; the rest is shared.
    pods_index: str = ""

    @abstractmethod
    def render_driver(self, spec: Any, owner: Owner, attempt: int) -> dict[str, Any]:
        """The driver pod of one attempt."""

    @abstractmethod
    def render_children(self, spec: Any, owner: Owner, attempt: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(ConfigMap, the kind's other children, e.g. a session's Service) of one attempt."""

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
        first += [self._ensure_children(spec, owner, a.attempt) for a in decision.actions
                  if a.verb == "ensure_children" and spec is not None]
        await asyncio.gather(*first)
        then: list[Awaitable[Any]] = [self.post_events(body, decision.events)]
        for action in decision.actions:
            if action.verb == "create_driver" and spec is not None:
                then.append(self._create_driver(key, spec, owner, action.attempt))
            elif action.verb == "delete_driver":
                then.append(self.kube.delete_child("v1", "Pod", meta["namespace"], action.pod, owner.uid))
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

    async def _ensure_children(self, spec: SparkAppSpec, owner: Owner, attempt: int) -> None:
        cm, others = self.render_children(spec, owner, attempt)
        await self.ensure_driver_children(spec, owner, attempt, cm, others)

    async def ensure_driver_children(self, spec: SparkAppSpec, owner: Owner, attempt: int,
                                     cm: dict[str, Any], others: list[dict[str, Any]]) -> None:
        """RBAC, ConfigMap and `others`: created if absent, in parallel.

        The ConfigMap names things per attempt (driver pod, executor prefix), so a retry replaces it.
        """
        objects = list(others)
        waits: list[Awaitable[None]] = []
        if spec.driver and spec.driver.serviceAccountName:
            pass  # the user's own account
        elif self.settings.driver_rbac == "per-job":
            objects += render.driver_rbac(spec, owner)
        else:
            waits.append(self._shared_account(owner.namespace))
        results = await asyncio.gather(self.kube.create(cm), self._create_all(objects), *waits)
        if attempt > 1 and not results[0]:
            await self.kube.replace(cm)

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


@base.register
class SparkBatchReconciler(SparkReconciler):
    kind = KIND
    plural = "sparkbatches"
    spec_model = SparkBatchSpec
    terminal_states = frozenset(TERMINAL_STATES)
    failed_states = frozenset({"dead"})
    retry_states = frozenset({"recovering"})
    pods_index = PODS

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        status = SparkBatchStatus.model_validate(self.status_of(body))
        spec, error = policy.checked(parse_spec(body), self.settings, meta["namespace"])
        pods = self.children(PODS, key)
        now = self.now_ms()
        log_tail = None
        driver = next((p for p in pods if p["name"] == status.driverPod and p["role"] == "driver"), None)
        # Read once, when the driver has just finished (the state still says it runs): what it printed
        # goes into status.log. Not again while `recovering` waits out its backoff on the same pod.
        if (driver is not None and driver["phase"] in ("Failed", "Succeeded") and status.state in ("starting", "running")
                and self.settings.driver_logs):
            log_tail = await self.kube.pod_log_tail(meta["namespace"], driver["name"], LOG_READ_LINES,
                                                    self.settings.driver_log_timeout_s)
        observed = observe_pods(pods, status.driverPod, status.appId, now, log_tail)
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                 generation=meta.get("generation", 1), created_ms=ms(meta.get("creationTimestamp")) or now)
        await self.apply(key, body, spec, decide(spec, error, m, status, observed, self.settings))

    def render_driver(self, spec: SparkBatchSpec, owner: Owner, attempt: int) -> dict[str, Any]:
        return render.driver_pod(spec, owner, resolve_sizing(spec), attempt, self.settings,
                                 self.service_account(spec, owner))

    def render_children(self, spec: SparkBatchSpec, owner: Owner,
                        attempt: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # No Service: a batch has no clients, and its executors reach the driver by pod IP.
        return (render.configmap(spec, owner, resolve_sizing(spec), attempt, self.settings,
                                 render.batch_conf(spec, self.settings)), [])


# ------------------------------------------------------------------------------------ kopf

base.watch(KIND, SparkBatchReconciler.plural, {PODS: (("pods",), summarize_pod)})
