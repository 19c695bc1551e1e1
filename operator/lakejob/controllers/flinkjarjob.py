"""FlinkJarJob: kopf handlers (thin) and the reconciler's observe and apply steps.

The loop is controllers.base's; decide is controllers.flinkjarjob_decide (pure). Here:
- observe: the spec through the model, the status, the JobManager and TaskManager pods from the
  pod index (no LIST calls; with a failed `fetch` init container's message, render.packages), the
  JobManager's REST API through the operator's one HTTP client (only while the JobManager pod
  runs; short timeout; None when it does not answer, e.g. on KWOK), where its queue_name leads and
  its Kueue Workload from the Workload index (docs/queues.md), and, for a new job, whether
  an older FlinkJarJob in the namespace already uses its checkpoint_path (from the bodies the
  operator holds: admission sees one object at a time, so this cannot be CEL);
- apply: status (write-ahead) alongside the idempotent children, then the JobManager pod,
  deletions, a stop's cancellation through the REST API, the run's Workload (made, released after a
  preemption, Finished), Events and CloudEvent notifications (in the background, never awaited here);
  last, the Endpoints of the job's selectorless Service follow its JobManager
  (controllers.service_endpoints).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any


from lakejob import kube as kubemod
from lakejob import policy
from lakejob.controllers import base, queueing
from lakejob.controllers.admission import UNQUEUED, WorkloadObs, summarize_workload
from lakejob.controllers.base import Key, log, ms
from lakejob.controllers.flinkjarjob_decide import (
    EVENT_TYPE,
    Decision,
    Meta,
    Observed,
    PodObs,
    RestObs,
    decide,
    is_finished,
)
from lakejob.controllers.pods import endpoint_fields, summarize_pod
from lakejob.controllers.service_endpoints import EndpointsWriter
from lakejob.models.flinkjarjob import TERMINAL_PHASES, FlinkJarJobSpec, FlinkJarJobStatus, TaskManagerCounts
from lakejob.notify import cloudevent
from lakejob.render import flink as render
from lakejob.render import packages
from lakejob.render import workload as render_workload
from lakejob.render.common import Owner
from lakejob.sizing import FlinkSizing

KIND = "FlinkJarJob"
PODS = "flinkjarjob_pods"  # the kopf index of this kind's pods (named after its handler)
WORKLOADS = "flinkjarjob_workloads"  # and of its Kueue Workloads

kubemod.register_kind("apps/v1", "ReplicaSet", "replicasets")  # the TaskManagers
# ... as an operator before 2026-12-05 made them: a job's run that began then keeps them to its end.
kubemod.register_kind("apps/v1", "Deployment", "deployments")


def parse_spec(body: Mapping[str, Any]) -> tuple[FlinkJarJobSpec | None, str | None]:
    return base.parse_spec(FlinkJarJobSpec, body)


def summarize_flink_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """summarize_pod, plus `fetch_failed`: the termination message of a `fetch` init container that
    failed and has not succeeded since. A TaskManager's pod belongs to a ReplicaSet, whose kubelet
    retries a failed init container with a back-off: the failure is then in its lastState, which
    summarize_pod (for pods that never restart) does not read. A JobManager's carries its IP, for
    the Service's Endpoints."""
    out = summarize_pod(body)
    if out["role"] == "jobmanager":
        out.update(endpoint_fields(body))
    if (failed := packages.failed_fetch(body.get("status") or {})) is not None:
        out["fetch_failed"] = failed.get("message") or ""
    return out


def observe_pods(pods: list[dict[str, Any]], jobmanager: str | None
                 ) -> tuple[PodObs | None, TaskManagerCounts, tuple[str, str] | None]:
    """The current JobManager, the TaskManagers by phase, and the first TaskManager whose fetch failed."""
    jm = None
    counts = TaskManagerCounts()
    fetch = None
    for p in pods:
        if p["role"] == "jobmanager" and p["name"] == jobmanager:
            jm = PodObs(**{k: v for k, v in p.items() if k in PodObs.__dataclass_fields__})
        elif p["role"] == "taskmanager" and not p["deleting"]:
            phase = p["phase"].lower()
            if phase in ("pending", "running", "failed"):
                setattr(counts, phase, getattr(counts, phase) + 1)
            if fetch is None and "fetch_failed" in p:
                fetch = (str(p["name"]), str(p["fetch_failed"]))
    return jm, counts, fetch


def _checkpoint_key(path: str | None) -> str | None:
    return path.rstrip("/") if path else None


def checkpoint_conflict(body: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> str | None:
    """The name of an older FlinkJarJob in the same namespace with the same checkpoint_path, if any.

    Older = earlier creationTimestamp (then name), so of two jobs created together the same one
    wins whichever the operator sees first; a job already rejected for its path holds nothing."""
    mine = _checkpoint_key((body.get("spec") or {}).get("checkpoint_path"))
    if mine is None:
        return None
    meta = body["metadata"]
    order = (meta.get("creationTimestamp") or "", meta["name"])
    for other in others:
        ometa, ostatus = other["metadata"], other.get("status") or {}
        if (ometa["namespace"] != meta["namespace"] or ometa["uid"] == meta["uid"]
                or _checkpoint_key((other.get("spec") or {}).get("checkpoint_path")) != mine
                or ostatus.get("reason") == "CheckpointPathInUse"
                or (ometa.get("creationTimestamp") or "", ometa["name"]) >= order):
            continue
        return str(ometa["name"])
    return None


def _exception_text(payload: Any) -> str | None:
    """The newest exception's first line from /jobs/<id>/exceptions (Flink 1.x and 2.x shapes)."""
    if not isinstance(payload, dict):
        return None
    history = payload.get("exceptionHistory")
    entries = history.get("entries") if isinstance(history, dict) else None
    first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else {}
    lines = str(payload.get("root-exception") or first.get("stacktrace") or "").strip().splitlines()
    return lines[0][:500] if lines else None  # any payload: a REST answer of another shape is no crash


@base.register
class FlinkJarJobReconciler(base.Reconciler):
    kind = KIND
    plural = "flinkjarjobs"
    spec_model = FlinkJarJobSpec
    terminal_states = frozenset(TERMINAL_PHASES)
    failed_states = frozenset({"Failed"})
    retry_states = frozenset({"Restarting"})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.endpoints = EndpointsWriter()  # the Endpoints of the JobManagers' Services

    def forget(self, key: Key, uid: str) -> None:
        super().forget(key, uid)
        self.endpoints.forget(uid)

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        status = FlinkJarJobStatus.model_validate(self.status_of(body))
        spec, error = policy.checked(parse_spec(body), self.settings, meta["namespace"])
        pods = self.children(PODS, key)
        jm, tms, tm_fetch = observe_pods(pods, status.jobManagerPod)
        owner = Owner(base.API_VERSION, KIND, meta["name"], meta["namespace"], meta["uid"])
        rest = None
        if jm is not None and jm.phase == "Running" and not jm.deleting and not is_finished(status):
            rest = await self._poll(owner, status, spec)
        conflict = None
        if status.status_name is None:
            # Lazily (read at once, no await): most jobs have no checkpoint_path, and theirs must not
            # cost a look at every body.
            conflict = checkpoint_conflict(body, (b for b in self.bodies.values() if b is not body))
        now = self.now_ms()
        # Only pods the watch has shown count as left: a create noted but never seen cannot block a cancel.
        left = len(self.indexed(PODS, key))
        route = UNQUEUED
        if spec is not None and (not is_finished(status) or status.runGeneration != meta.get("generation", 1)):
            route = await queueing.route(spec.queue_name, self.settings, self.kube)  # Kueue's probe: cached
        workload = None
        if status.workload is not None:
            workload = WorkloadObs.of(next((w for w in self.children(WORKLOADS, key)
                                            if w["name"] == status.workload.name), None))
        observed = Observed(now_ms=now, jobmanager=jm, taskmanagers=tms, rest=rest, pods_left=left,
                            checkpoint_conflict=conflict, taskmanager_fetch=tm_fetch, route=route, workload=workload)
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                 generation=meta.get("generation", 1), created_ms=ms(meta.get("creationTimestamp")) or now)
        await self._apply(key, body, owner, spec, decide(spec, error, m, status, observed, self.settings))

    async def _poll(self, owner: Owner, status: FlinkJarJobStatus, spec: FlinkJarJobSpec | None) -> RestObs | None:
        """The job's state from the JobManager's REST API, or None when it does not answer."""
        url, timeout = render.rest_url(owner, self.settings), self.settings.flink_rest_timeout_s
        overview = await self.http.get_json(f"{url}/jobs/overview", timeout)
        if not isinstance(overview, dict):
            return None
        jobs = overview.get("jobs")
        job = next((j for j in jobs if isinstance(j, dict) and j.get("jid") == status.job_id), None) \
            if isinstance(jobs, list) else None
        if job is None:
            return RestObs(state="INITIALIZING")  # the application has not submitted its job yet
        state = str(job.get("state"))
        checkpoint = exception = None
        # Whenever checkpoints go somewhere: a later run (DLI's run with resume_savepoint) may resume
        # from them even if this one does not restart from them.
        if spec is not None and spec.checkpoint_path:
            cps = await self.http.get_json(f"{url}/jobs/{status.job_id}/checkpoints", timeout)
            latest = cps.get("latest") if isinstance(cps, dict) else None
            completed = latest.get("completed") if isinstance(latest, dict) else None
            if isinstance(completed, dict) and isinstance(completed.get("external_path"), str):
                checkpoint = completed["external_path"]
        if state in ("RESTARTING", "FAILING", "FAILED"):
            exception = _exception_text(await self.http.get_json(
                f"{url}/jobs/{status.job_id}/exceptions?maxExceptions=1", timeout))
        return RestObs(state=state, last_checkpoint=checkpoint, exception=exception)

    async def _apply(self, key: Key, body: dict[str, Any], owner: Owner, spec: FlinkJarJobSpec | None,
                     decision: Decision) -> None:
        meta = body["metadata"]
        # Write-ahead: a new attempt is recorded before its JobManager is created (below), so a crash
        # in between resumes this attempt. Children are idempotent and harmless without a JobManager.
        # Notifications go into the outbox with the same status write, delivered after it.
        source = f"/apis/{base.API_VERSION}/namespaces/{owner.namespace}/{self.plural}/{owner.name}"
        new_status = self.with_outbox(decision.status.model_dump(exclude_none=True, mode="json"),
                                      [(url, cloudevent(EVENT_TYPE, source, owner.name, data))
                                       for url, data in decision.notifications])
        had_pods = self.status_of(body).get("jobManagerPod") is not None  # read before the write below
        first: list[Awaitable[Any]] = [self.write_status(body, new_status)]
        if spec is not None and any(a.verb == "ensure_children" for a in decision.actions):
            first.append(self._ensure_children(spec, owner, earlier_attempts=had_pods))
        await asyncio.gather(*first)
        then: list[Awaitable[Any]] = [self.post_events(body, decision.events)]
        workload = decision.status.workload
        for action in decision.actions:
            if action.verb == "create_jobmanager" and spec is not None:
                then.append(self._create_jobmanager(key, spec, owner, action.attempt, action.savepoint))
            elif action.verb == "delete_jobmanager":
                then.append(self.kube.delete_child("v1", "Pod", owner.namespace, action.pod, owner.uid))
            elif action.verb == "cleanup":
                then.append(self._cleanup(owner))
            elif action.verb == "cancel_job":
                then.append(self._cancel_job(owner, decision.status.job_id))
            elif action.verb == "ensure_workload" and spec is not None and workload is not None:
                then.append(self._ensure_workload(key, spec, owner, workload.localQueue,
                                                  decision.status.runGeneration or 1))
            elif action.verb == "release_workload" and workload is not None:
                then.append(queueing.release(self.kube, owner.namespace, workload.name, owner.uid))
            elif action.verb == "finish_workload" and workload is not None:
                then.append(queueing.finish(self.kube, owner.namespace, workload.name, owner.uid, action.reason))
        await asyncio.gather(*then)
        if spec is not None and not any(a.verb == "cleanup" for a in decision.actions):
            # The Service's Endpoints follow the JobManager pods (the Service has no selector).
            await self.endpoints.follow(self.kube, owner.uid, render.service(spec, owner), self.children(PODS, key),
                                        "jobmanager", may_exist=had_pods)
        if decision.requeue_after_s is not None:
            self.requeue(key, meta["uid"], decision.requeue_after_s)

    async def _ensure_children(self, spec: FlinkJarJobSpec, owner: Owner, earlier_attempts: bool) -> None:
        """ConfigMap, Service, TaskManager ReplicaSet: created if absent, in parallel. None of them
        changes between the attempts of a run (the savepoint is the JobManager's argument); a new run
        (a changed spec) finds them deleted by the old run's cancellation, so it makes them anew.
        `earlier_attempts`: the status named a JobManager before this pass, so an earlier operator
        may have made this run's children."""
        sz = render.resolve_sizing(spec, self.settings)
        await asyncio.gather(self.kube.create(render.configmap(spec, owner, sz, self.settings)),
                             self.kube.create(render.service(spec, owner)),
                             self._ensure_taskmanagers(spec, owner, sz, earlier_attempts))

    async def _ensure_taskmanagers(self, spec: FlinkJarJobSpec, owner: Owner, sz: FlinkSizing,
                                   earlier_attempts: bool) -> None:
        """The TaskManager ReplicaSet, unless the run began under an operator that made them a
        Deployment (then that one serves to the run's end: two sets would double the TaskManagers).
        A job whose status never named a JobManager had no children made by anyone: no GET (a
        burst of new Flink jobs was one Deployment GET each, a quorum read)."""
        names = render.Names.of(owner.name)
        legacy = await self.kube.get("apps/v1", "Deployment", owner.namespace, names.taskmanagers) \
            if earlier_attempts else None
        if legacy is None or kubemod.controller_uid(legacy) != owner.uid:
            await self.kube.create(render.taskmanager_replicaset(spec, owner, sz, self.settings))

    async def render_workload(self, spec: FlinkJarJobSpec, owner: Owner, local_queue: str, run: int) -> dict[str, Any]:
        """The run's Workload: the JobManager ×1 and the TaskManagers × their replicas, as the pods will
        be, at the priority of the JobManager's PriorityClass (Kueue orders and preempts by it)."""
        pod_sets = render.workload_pod_sets(spec, owner, render.resolve_sizing(spec, self.settings), self.settings)
        priority = await queueing.priority_of(self.kube, spec.jobManager.priorityClassName if spec.jobManager else None)
        return render_workload.build_workload(owner, local_queue, pod_sets, priority, queue_label=spec.queue_name,
                                              run=run)

    async def _ensure_workload(self, key: Key, spec: FlinkJarJobSpec, owner: Owner, local_queue: str,
                               run: int) -> None:
        """The run's Workload, made if absent. One of a previous run (Finished when that run ended, or
        still admitted when a changed spec stopped it) is deleted first: a new run's podSets may differ,
        and Kueue never admits a Finished Workload again."""
        workload = await self.render_workload(spec, owner, local_queue, run)
        api, kind, name = render_workload.API_VERSION, render_workload.KIND, workload["metadata"]["name"]
        existing = await self.kube.get(api, kind, owner.namespace, name)
        if existing is not None:
            if (existing["metadata"].get("labels") or {}).get(render_workload.RUN_LABEL) == str(run):
                return
            await self.kube.delete_child(api, kind, owner.namespace, name, owner.uid)
        try:
            created = await queueing.create_workload(self.kube, workload)
        except kubemod.KubeError as e:
            if e.status != 409 or isinstance(e, kubemod.NotOwned):
                raise
            return  # the previous run's is still being deleted: its DELETED event brings the next pass
        if created is None:  # Kueue's API is gone: route the job afresh
            self.requeue(key, owner.uid, 1)
        elif created:
            self.note_created(key, WORKLOADS, {"name": name, "run": str(run)})

    async def _create_jobmanager(self, key: Key, spec: FlinkJarJobSpec, owner: Owner, attempt: int,
                                 savepoint: str | None) -> None:
        pod = render.jobmanager_pod(spec, owner, render.resolve_sizing(spec, self.settings), attempt, savepoint,
                                    self.settings)
        if await self.kube.create(pod):
            self.note_created(key, PODS, summarize_flink_pod(pod))

    async def _cancel_job(self, owner: Owner, job_id: str | None) -> None:
        """Ask Flink to cancel the job (PATCH /jobs/<id>?mode=cancel). No answer needs handling here:
        decide deletes the pods anyway once CANCEL_TIMEOUT_MS has passed."""
        url = f"{render.rest_url(owner, self.settings)}/jobs/{job_id}?mode=cancel"
        code = await self.http.patch(url, self.settings.flink_rest_timeout_s)
        if not 200 <= code < 300:
            log.info("FlinkJarJob %s/%s: cancelling job %s through %s answered %s", owner.namespace, owner.name,
                     job_id, url, code or "nothing")

    async def _cleanup(self, owner: Owner) -> None:
        """Remove what an ended job no longer needs: TaskManagers (the GC removes their pods with the
        ReplicaSet, or an earlier operator's Deployment), Service and its Endpoints, ConfigMap."""
        names = render.Names.of(owner.name)
        await asyncio.gather(self.endpoints.delete(self.kube, owner.uid, owner.namespace, names.service),
                             *(self.kube.delete_child(api, kind, owner.namespace, name, owner.uid) for api, kind, name in
                               (("apps/v1", "ReplicaSet", names.taskmanagers), ("apps/v1", "Deployment", names.taskmanagers),
                                ("v1", "Service", names.service),
                                ("v1", "ConfigMap", names.configmap))))


# ------------------------------------------------------------------------------------ kopf

base.watch(KIND, FlinkJarJobReconciler.plural, {PODS: (("pods",), summarize_flink_pod),
                                                  WORKLOADS: (queueing.RESOURCE, summarize_workload)})
