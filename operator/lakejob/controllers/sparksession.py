"""SparkSession: kopf handlers (thin), the reconciler's observe and apply steps, and the REST poller.

The loop is controllers.base's; decide is controllers.sparksession_decide (pure). Here:
- observe: the spec through the model, the status, the driver and executor pods from the pod
  index (no LIST calls; the driver's Ready condition says the Connect server listens), the
  poller's last look at the driver's REST API, the heartbeat annotation, where its queue leads
  and its Kueue Workload (the Workload index, as for SparkBatch: controllers.spark_driver);
- apply: status (write-ahead) alongside the idempotent children, then the driver pod, deletions,
  the Workload's create, release and Finished, and Events; last, the Endpoints of the
  session's selectorless Service follow its driver (controllers.service_endpoints);
- the poller: one loop per operator (started with the reconciler's resync) that GETs every live
  session's Spark REST jobs list through the operator's one HTTP client (`Reconciler.http`), at
  most `session_poll_concurrency` at once, backing off from drivers that do not answer. It only
  remembers what it saw and wakes a session's reconcile when that changed, so an idle session
  costs one small GET per poll period and no API write.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, cast


from lakejob import policy
from lakejob.controllers import base, queueing
from lakejob.controllers.admission import summarize_workload
from lakejob.controllers.base import Key, ms
from lakejob.controllers.pods import endpoint_fields, is_ready, summarize_pod
from lakejob.controllers.service_endpoints import EndpointsWriter
from lakejob.controllers.spark_driver import SparkReconciler, observe_pods
from lakejob.controllers.sparkbatch_decide import Meta
from lakejob.controllers.sparksession_decide import Observed, RestObs, decide, rest_activity
from lakejob.models.spark import SparkAppSpec, resolve_sizing
from lakejob.models.sparksession import HEARTBEAT_ANNOTATION, TERMINAL_STATES, SparkSessionSpec, SparkSessionStatus
from lakejob.render import spark as render_spark
from lakejob.render import sparksession as render
from lakejob.render.common import Owner

KIND = "SparkSession"
PODS = "sparksession_pods"  # the kopf index of this kind's pods (named after its handler)
WORKLOADS = "sparksession_workloads"  # and of its Kueue Workloads
POLLED_STATES = ("starting", "idle", "busy")


def parse_spec(body: Mapping[str, Any]) -> tuple[SparkSessionSpec | None, str | None]:
    return base.parse_spec(SparkSessionSpec, body)


@dataclass
class _PollTrack:
    """Poller bookkeeping for one session: when to look next, and how often it failed in a row."""

    next_at: float = 0.0  # time.monotonic()
    failures: int = 0


@base.register
class SparkSessionReconciler(SparkReconciler):
    kind = KIND
    plural = "sparksessions"
    spec_model = SparkSessionSpec
    terminal_states = frozenset(TERMINAL_STATES)
    failed_states = frozenset({"error"})
    retry_states = frozenset({"recovering"})
    pods_index = PODS
    workloads_index = WORKLOADS

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rest: dict[Key, RestObs] = {}  # the poller's last look per session
        self._tracks: dict[Key, _PollTrack] = {}
        self._poll_slots: asyncio.Semaphore | None = None
        self.endpoints = EndpointsWriter()  # the Endpoints of the sessions' Services

    def forget(self, key: Key, uid: str) -> None:
        super().forget(key, uid)
        self.endpoints.forget(uid)
        self.rest.pop(key, None)
        self._tracks.pop(key, None)

    def pass_inputs(self, key: Key) -> Any:
        """The poller's last look, which wakes a pass only when the activity changed (its time, which
        a status message may name, changes on every poll)."""
        return self.rest.get(key)

    # ------------------------------------------------------------------ reconcile

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        status = SparkSessionStatus.model_validate(self.status_of(body))
        spec, error = policy.checked(parse_spec(body), self.settings, meta["namespace"])
        now = self.now_ms()
        children = self.children(PODS, key)
        pods = observe_pods(children, status.driverPod, status.appId, now, None)
        ready = any(p["name"] == status.driverPod and p["role"] == "driver" and p.get("ready") for p in children)
        route, workload = await self.queue_of(key, spec, status, status.state is None or (
            status.state == "not_started" and status.driverPod is None))
        observed = Observed(now_ms=now, driver=pods.driver, executors=pods.executors, rest=self.rest.get(key),
                            heartbeat=(meta.get("annotations") or {}).get(HEARTBEAT_ANNOTATION), driver_ready=ready,
                            route=route, workload=workload)
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                 generation=meta.get("generation", 1), created_ms=ms(meta.get("creationTimestamp")) or now)
        await self.apply(key, body, spec, decide(spec, error, m, status, observed, self.settings))

    def render_driver(self, spec: SparkSessionSpec, owner: Owner, attempt: int) -> dict[str, Any]:
        return render.driver_pod(spec, owner, resolve_sizing(spec), attempt, self.settings,
                                 self.service_account(spec, owner))

    def render_children(self, spec: SparkSessionSpec, owner: Owner) -> list[dict[str, Any]]:
        return [render.service(spec, owner)]

    async def apply(self, key: Key, body: dict[str, Any], spec: SparkAppSpec | None, decision: Any) -> None:
        """SparkReconciler's apply, then the Service's Endpoints (the Service has no selector:
        render.endpoints) follow the session's driver pods, unless the children are being deleted."""
        had_pods = self.status_of(body).get("attempt") is not None  # read before this pass writes it
        await super().apply(key, body, spec, decision)
        if spec is None or any(a.verb == "delete_children" for a in decision.actions):
            return
        meta = body["metadata"]
        owner = Owner(base.API_VERSION, KIND, meta["name"], meta["namespace"], meta["uid"])
        await self.endpoints.follow(self.kube, owner.uid, render.service(cast(SparkSessionSpec, spec), owner),
                                    self.children(PODS, key), "driver", may_exist=had_pods)

    def other_action(self, action: Any, owner: Owner, spec: SparkSessionSpec | None) -> Awaitable[Any] | None:
        return self._delete_children(owner, spec) if action.verb == "delete_children" else None

    async def _delete_children(self, owner: Owner, spec: SparkSessionSpec | None) -> None:
        """What a session that ended as asked (dead, success) no longer needs: its Service (and the
        Service's Endpoints) and per-session RBAC, and the failed drivers of earlier attempts that a recovery left for
        inspection (their executors, which they own, go with them). The current driver is gone already."""
        names = render_spark.Names.of_owner(owner)
        targets = [("v1", "Service", names.service)]
        endpoints = self.endpoints.delete(self.kube, owner.uid, owner.namespace, names.service)
        targets += [("v1", "Pod", p["name"]) for p in self.children(PODS, (owner.namespace, names.base))
                    if p["role"] == "driver" and not p.get("deleting")]
        if self.settings.driver_rbac == "per-job" and not (spec and spec.driver and spec.driver.serviceAccountName):
            targets += [("v1", "ServiceAccount", names.rbac), ("rbac.authorization.k8s.io/v1", "Role", names.rbac),
                        ("rbac.authorization.k8s.io/v1", "RoleBinding", names.rbac)]
        await asyncio.gather(endpoints, *(self.kube.delete_child(api, kind, owner.namespace, name, owner.uid)
                                       for api, kind, name in targets))

    # ------------------------------------------------------------------ the REST poller

    async def resync(self) -> None:
        """The base resync (lost-event safety net) and, beside it, the REST poller."""
        await asyncio.gather(super().resync(), self.poll_forever())

    async def poll_forever(self) -> None:
        # A tick of a fraction of the period keeps each session's own schedule (and back-off) close.
        tick = max(0.05, self.settings.session_poll_interval_s / 5)
        while True:
            await self.poll_due()
            await asyncio.sleep(tick)

    async def poll_due(self) -> None:
        """Poll every live session whose turn it is, bounded, in parallel."""
        now = time.monotonic()
        due = []
        for key, body in list(self.bodies.items()):
            status = self.status_of(body)
            if status.get("state") not in POLLED_STATES or not status.get("appId"):
                self._tracks.pop(key, None)
                continue
            track = self._tracks.setdefault(key, _PollTrack())
            if track.next_at <= now:
                due.append((key, body["metadata"], status, track))
        if due:
            await asyncio.gather(*(self._poll_one(key, meta, status, track) for key, meta, status, track in due))

    async def _poll_one(self, key: Key, meta: Mapping[str, Any], status: Mapping[str, Any],
                        track: _PollTrack) -> None:
        if self._poll_slots is None:  # made lazily: it must belong to the running loop
            self._poll_slots = asyncio.Semaphore(self.settings.session_poll_concurrency)
        app = status["appId"]
        url = render.rest_url(self.settings.spark_rest_url_template, meta["name"], meta["namespace"], app)
        async with self._poll_slots:
            payload = await self.http.get_json(url, self.settings.session_poll_timeout_s)
        activity = rest_activity(payload)
        interval = self.settings.session_poll_interval_s
        if activity is None and status.get("state") == "starting":
            # A JVM that is starting is not answering yet as expected (on a busy node for a minute or
            # more): backing off would only delay `idle` by up to the back-off's maximum.
            track.next_at = time.monotonic() + interval
        elif activity is None:
            track.failures += 1
            track.next_at = time.monotonic() + min(interval * 2 ** track.failures,
                                                   self.settings.session_poll_backoff_max_s)
        else:
            track.failures = 0
            track.next_at = time.monotonic() + interval
        before = self.rest.get(key)
        self.rest[key] = RestObs(app=app, at_ms=self.now_ms(), activity=activity)
        if before is None or before.app != app or before.activity != activity:
            self._spawn(key)  # something changed: decide again (an unchanged idle poll costs no reconcile)


# ------------------------------------------------------------------------------------ kopf

def summarize_session_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """SparkBatch's pod summary plus the pod's Ready condition: a session's driver is Ready once the
    Connect server listens (its readiness probe), which is when the session may turn idle. A
    driver's also carries its IP, for the Service's Endpoints."""
    out = {**summarize_pod(body), "ready": is_ready(body)}
    if out["role"] == "driver":
        out.update(endpoint_fields(body))
    return out


base.watch(KIND, SparkSessionReconciler.plural, {PODS: (("pods",), summarize_session_pod),
                                                  WORKLOADS: (queueing.RESOURCE, summarize_workload)})
