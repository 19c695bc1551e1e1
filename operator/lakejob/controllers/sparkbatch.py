"""SparkBatch: kopf handlers (thin) and the reconciler's observe and apply steps.

The driver machinery it shares with SparkSession (children, driver pod, pod observation) is
controllers.spark_driver's `SparkReconciler`, which this kind's reconciler subclasses.

The loop is controllers.base's; decide is controllers.sparkbatch_decide (pure). Here:
- observe: the spec through the model, the status, the driver and executor pods from the pod
  index (no LIST calls), and the failed driver's log tail;
- apply: status (write-ahead) alongside the idempotent children, then the driver pod and Events.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any


from lakejob import policy
from lakejob.controllers import base, queueing
from lakejob.controllers.admission import summarize_workload
from lakejob.controllers.base import Key, ms
from lakejob.controllers.pods import summarize_pod
from lakejob.controllers.spark_driver import SparkReconciler, observe_pods
from lakejob.controllers.sparkbatch_decide import LOG_READ_LINES, Meta, decide, resolve_sizing
from lakejob.models.sparkbatch import TERMINAL_STATES, SparkBatchSpec, SparkBatchStatus
from lakejob.render import spark as render
from lakejob.render.common import Owner

KIND = "SparkBatch"
PODS = "sparkbatch_pods"  # the kopf index of this kind's pods (named after its handler)
WORKLOADS = "sparkbatch_workloads"  # and of its Kueue Workloads


def parse_spec(body: Mapping[str, Any]) -> tuple[SparkBatchSpec | None, str | None]:
    return base.parse_spec(SparkBatchSpec, body)


@base.register
class SparkBatchReconciler(SparkReconciler):
    kind = KIND
    plural = "sparkbatches"
    spec_model = SparkBatchSpec
    terminal_states = frozenset(TERMINAL_STATES)
    failed_states = frozenset({"dead"})
    retry_states = frozenset({"recovering"})
    pods_index = PODS
    workloads_index = WORKLOADS

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
        route, workload = await self.queue_of(key, spec, status, status.state is None or (
            status.state == "starting" and status.driverPod is None))
        observed = replace(observe_pods(pods, status.driverPod, status.appId, now, log_tail), route=route,
                           workload=workload)
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                 generation=meta.get("generation", 1), created_ms=ms(meta.get("creationTimestamp")) or now)
        await self.apply(key, body, spec, decide(spec, error, m, status, observed, self.settings))

    def render_driver(self, spec: SparkBatchSpec, owner: Owner, attempt: int) -> dict[str, Any]:
        return render.driver_pod(spec, owner, resolve_sizing(spec), attempt, self.settings,
                                 self.service_account(spec, owner))

    def render_children(self, spec: SparkBatchSpec, owner: Owner) -> list[dict[str, Any]]:
        # No Service: a batch has no clients, and its executors reach the driver by pod IP.
        return []


# ------------------------------------------------------------------------------------ kopf

base.watch(KIND, SparkBatchReconciler.plural, {PODS: (("pods",), summarize_pod),
                                               WORKLOADS: (queueing.RESOURCE, summarize_workload)})
