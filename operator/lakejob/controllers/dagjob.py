"""DagJob: kopf handlers (thin) and the reconciler's observe and apply steps.

The loop is controllers.base's; decide is controllers.dagjob_decide (pure). Here:
- observe: the spec through the model, the status, the tasks' Jobs and child resources from
  kopf indexes (no LIST calls), whether a Running slot is ours (operator-wide `dag_max_running`,
  waiting DagJobs ordered by Priority then age) and how many DagJobs the namespace holds;
- apply: the status alongside the idempotent creates / suspends (names follow the task's run,
  which only the status advances), then the Events and AutoRelease's delete. The listed events'
  notifications are queued in the status's outbox by the same write and delivered in order by
  controllers.base's outbox task; their delivery counts land in status.notifications, and
  AutoRelease waits until the outbox is empty.
"""
from __future__ import annotations

import asyncio
import bisect
import heapq
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar


from lakejob import policy
from lakejob.controllers import base, queueing
from lakejob.controllers.admission import WorkloadObs, summarize_workload
from lakejob.controllers.base import Key, ms
from lakejob.controllers.dagjob_decide import (
    ChildObs,
    Decision,
    JobObs,
    Meta,
    Note,
    Observed,
    decide,
    kube_events,
    listed,
)
from lakejob.crds import GROUP, VERSION
from lakejob.models.dagjob import CHILD_KINDS, TERMINAL_STATES, DagJobSpec, DagJobStatus, Delivery
from lakejob.notify import cloudevent
from lakejob.render import dag as render
from lakejob.render import workload as render_workload
from lakejob.render.common import Owner
from lakejob.settings import Settings

KIND = "DagJob"
JOBS = "dagjob_jobs"  # kopf index of the tasks' Jobs (named after its handler)
SPARK = "dagjob_sparkbatches"  # kopf indexes of the tasks' child resources
FLINK = "dagjob_flinkjarjobs"
WORKLOADS = "dagjob_workloads"  # and of its command tasks' Kueue Workloads (docs/queues.md)
T = TypeVar("T")
CREATE_GRACE_MS = 3000  # a Job with no pod this long after its creation: ask why
# How long one answer about a namespace's FailedCreate Events serves. Every event of every child is
# a pass, and a Job controller running late (a burst of Jobs) leaves hundreds of Jobs podless for
# seconds: asking per stuck Job per pass was an Events LIST each, costing the apiserver more than
# the DAGs did.
ASK_AGAIN_MS = CREATE_GRACE_MS


def summarize_job(body: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    true = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    # SuccessCriteriaMet / FailureTarget come first (the pods may still be terminating): act on them.
    outcome = ("Complete" if {"Complete", "SuccessCriteriaMet"} & set(true)
               else "Failed" if {"Failed", "FailureTarget"} & set(true) else None)
    failed = true.get("Failed") or true.get("FailureTarget") or {}
    return {"name": meta["name"], "uid": meta.get("uid"), "created_ms": ms(meta.get("creationTimestamp")) or 0,
            "pods": sum(status.get(k) or 0 for k in ("active", "succeeded", "failed", "terminating")),
            "completions": spec.get("completions") or 1, "active": status.get("active") or 0,
            "completed_indexes": status.get("completedIndexes") or "",
            "failed_indexes": status.get("failedIndexes") or "", "suspended": bool(spec.get("suspend")),
            "terminating": status.get("terminating") or 0,
            "outcome": outcome, "message": failed.get("message") or failed.get("reason")}


def _summarize_child(body: Mapping[str, Any], state_field: str, message_field: str) -> dict[str, Any]:
    status = body.get("status") or {}
    return {"name": body["metadata"]["name"], "state": status.get(state_field), "message": status.get(message_field),
            "suspended": bool((body.get("spec") or {}).get("suspend"))}


def summarize_sparkbatch(body: Mapping[str, Any]) -> dict[str, Any]:
    return _summarize_child(body, "state", "message")


def summarize_flinkjarjob(body: Mapping[str, Any]) -> dict[str, Any]:
    """A FlinkJarJob's DLI state is `status_name`; its `state` is a Kubernetes-style phase
    ("Succeeded") that CHILD_STATES does not know."""
    return _summarize_child(body, "status_name", "status_desc")


def _obs(cls: type[T], summary: Mapping[str, Any]) -> T:
    """A summary as decide's dataclass (children() adds bookkeeping keys such as "index")."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in summary.items() if k in names})


def endpoint_of(spec: DagJobSpec | None, settings: Settings) -> str | None:
    """Where the listed events go: Topic.Endpoint when it is an http(s) URL, else the URL the operator
    maps Topic.Name to (LAKEJOB_NOTIFICATION_TOPICS), else nowhere (Kubernetes Events only)."""
    if spec is None or spec.Notification is None:
        return None
    topic = spec.Notification.Topic
    if topic.Endpoint and policy.http_url(topic.Endpoint):
        return topic.Endpoint
    mapped = settings.notification_topics.get(topic.Name or "")
    return mapped if mapped and policy.http_url(mapped) else None


def queueing_local_queue(cluster: str, settings: Settings) -> str:
    """The LocalQueue of a ClusterId, by the rule every kind's queue name follows."""
    return render_workload.local_queue(cluster, settings.queue_map)


def parse_spec(body: Mapping[str, Any]) -> tuple[DagJobSpec | None, str | None]:
    return base.parse_spec(DagJobSpec, body)


def _priority_of(body: Mapping[str, Any]) -> int:
    value = (body.get("spec") or {}).get("Priority")
    return value if isinstance(value, int) else 0


@base.register
class DagJobReconciler(base.Reconciler):
    kind = KIND
    plural = "dagjobs"
    spec_model = DagJobSpec
    terminal_states = frozenset(TERMINAL_STATES)
    state_field = "State"
    failed_states = frozenset({"Failed"})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._slots_held: set[str] = set()  # uids of the DagJobs holding a Running slot
        # The slot queue, kept as each DagJob's status or spec changes (`_track`) rather than found by
        # looking through every DagJob's status per pass: that look grew with the live DagJobs and was
        # a tenth of the operator's CPU at 5,000 live CRs (docs/performance.md).
        self._running: set[str] = set()  # uids whose status says Running
        self._waiting: dict[str, tuple[tuple[int, str, str, str], Key]] = {}  # uid → (its rank, its key)
        self._specs: dict[str, tuple[int, DagJobSpec | None, str | None]] = {}  # uid → (generation, parsed)
        # MaxJobCount's count, kept in order of arrival per namespace (creationTimestamp, name) rather
        # than counted through every DagJob's body at each new one's pass; uid → (namespace, entry).
        self._arrivals: dict[str, list[tuple[str, str]]] = {}
        self._arrived: dict[str, tuple[str, tuple[str, str]]] = {}
        # namespace → (when asked, the answer: FailedCreate messages by the Job's uid), shared by every
        # pass in the namespace, including those that ask while the LIST is under way
        self._failed_creates: dict[str, tuple[int, asyncio.Future[dict[str, str]]]] = {}

    def run_started_ms(self, status: Mapping[str, Any]) -> int | None:
        """StartTime, when it left the Waiting queue (BatchCompute's run time: StartTime to EndTime);
        a DagJob that ends without ever running (refused, stopped while Waiting) has no run to time."""
        return base.ms(status.get("StartTime"))

    # ------------------------------------------------------------------ observe

    def _state(self, body: Mapping[str, Any]) -> str | None:
        state = self.status_of(body).get("State")
        return state if isinstance(state, str) else None

    def _admitted(self, uid: str, body: Mapping[str, Any]) -> bool:
        """Whether this DagJob may run now. Synchronous (no await), so two reconciles never take one slot.
        A DagJob holding its slot (every pass of a running one) answers without looking at the others:
        that look is O(live DagJobs) and made per pass, thousands of times a minute at scale."""
        if uid in self._slots_held:
            return True
        if self._state(body) == "Running":  # running before this operator started: its slot
            self._slots_held.add(uid)
            return True
        if len(self._slots_held) >= self.settings.dag_max_running:
            return False  # every slot taken (held ⊇ _slots_held): no need to rank the waiting, O(n log n)
        held, admitted = self._queue()
        if uid in held or uid in admitted:
            self._slots_held.add(uid)
            return True
        return False

    def _queue(self) -> tuple[set[str], list[str]]:
        """The uids holding a Running slot, and those of the waiting the free slots admit, best first
        (higher Priority, then the older): O(waiting), without sorting all of them."""
        held = self._slots_held | self._running
        free = max(0, self.settings.dag_max_running - len(held))
        best = heapq.nsmallest(free, ((rank, uid) for uid, (rank, _) in self._waiting.items() if uid not in held))
        return held, [uid for _, uid in best]

    def _track(self, key: Key, uid: str) -> None:
        """Put the DagJob in the slot queue as its stored body and last written status say: Running,
        waiting for a slot (no state yet, Waiting, or Stopped and not suspended), or neither."""
        self._running.discard(uid)
        body = self.bodies.get(key)
        if body is None or body["metadata"].get("uid") != uid:  # gone (or a namesake's body)
            self._waiting.pop(uid, None)
            return
        state = self._state(body)
        if state == "Running":
            self._running.add(uid)
        if state in (None, "Waiting", "Stopped") and not (body.get("spec") or {}).get("suspend"):
            meta = body["metadata"]
            self._waiting[uid] = ((-_priority_of(body), meta.get("creationTimestamp", ""), meta["namespace"],
                                   meta["name"]), key)
        else:
            self._waiting.pop(uid, None)

    def _release(self, uid: str) -> None:
        """Give a slot back and wake the waiting DagJobs that the free slots admit, best first. Only
        those: waking every waiting DagJob was a pass each, each sorting them all, per slot freed."""
        if uid in self._slots_held:
            self._slots_held.discard(uid)
            for woken in self._queue()[1]:
                self._spawn(self._waiting[woken][1])

    def cr_event(self, event_type: str | None, body: dict[str, Any],
                 indexes: Mapping[str, Mapping[Key, Any]]) -> None:
        super().cr_event(event_type, body, indexes)
        if event_type != "DELETED":
            self._arrive(body)
        self._track(base.cr_key(body), body["metadata"].get("uid", ""))

    async def write_status(self, body: Mapping[str, Any], new: dict[str, Any]) -> None:
        await super().write_status(body, new)
        self._track(base.cr_key(body), body["metadata"]["uid"])

    async def _create_errors(self, namespace: str, jobs: list[dict[str, Any]], now: int) -> dict[str, str]:
        """Why Jobs that have had no pod for a few seconds cannot create one: the Job controller says
        so only in FailedCreate Events on the Job. Read only when there are such Jobs, so a healthy
        DAG costs no reads, and one LIST per namespace per ASK_AGAIN_MS however many there are."""
        podless = [j for j in jobs if j.get("uid") and not j["pods"] and not j["suspended"] and j["outcome"] is None]
        if not podless:
            return {}
        # The young are asked about once old enough, and the stuck again once the answer is stale;
        # no timer is set for either: keep resyncing.
        base.unsettled()
        stuck = [j for j in podless if now - j["created_ms"] > CREATE_GRACE_MS]
        if not stuck:
            return {}
        asked = self._failed_creates.get(namespace)
        if asked is None or now - asked[0] >= ASK_AGAIN_MS:
            for stale in [ns for ns, (at, _) in self._failed_creates.items() if now - at >= ASK_AGAIN_MS]:
                del self._failed_creates[stale]
            listing = asyncio.ensure_future(self.kube.failed_creates(namespace, "Job"))
            asked = self._failed_creates[namespace] = (now, listing)
        try:
            found = await asyncio.shield(asked[1])  # a pass cancelled while waiting leaves the LIST to the others
        except Exception:
            if self._failed_creates.get(namespace) is asked:
                del self._failed_creates[namespace]  # not kept: the next pass asks again
            raise
        return {j["name"]: found[j["uid"]] for j in stuck if j["uid"] in found}

    def _jobs_in_namespace(self, body: Mapping[str, Any]) -> int:
        """DagJobs of the namespace created up to this one (it included): O(log n)."""
        meta = body["metadata"]
        return bisect.bisect_right(self._arrivals.get(meta["namespace"], []),
                                   (meta.get("creationTimestamp", ""), meta["name"]))

    def _arrive(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        uid = meta.get("uid", "")
        if uid and uid not in self._arrived:
            entry = (meta.get("creationTimestamp", ""), meta["name"])
            self._arrived[uid] = (meta["namespace"], entry)
            bisect.insort(self._arrivals.setdefault(meta["namespace"], []), entry)

    def _depart(self, uid: str) -> None:
        arrived = self._arrived.pop(uid, None)
        if arrived is not None:
            namespace, entry = arrived
            order = self._arrivals[namespace]
            del order[bisect.bisect_left(order, entry)]
            if not order:
                del self._arrivals[namespace]

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        uid = meta["uid"]
        status = DagJobStatus.model_validate(self.status_of(body))
        generation = meta.get("generation", 1)
        cached = self._specs.get(uid)
        if cached is None or cached[0] != generation:
            # Parsed once per generation: a DagJob is reconciled on every event of every child.
            cached = self._specs[uid] = (generation, *policy.checked(parse_spec(body), self.settings,
                                                                     meta["namespace"]))
        spec, error = cached[1], cached[2]
        now = self.now_ms()
        jobs = self.children(JOBS, key)
        errors = await self._create_errors(meta["namespace"], jobs, now)
        routes = {}
        if spec is not None and status.State not in TERMINAL_STATES:
            for name, task in spec.DAG.Tasks.items():  # a command task's ClusterId is its queue
                if task.kind == "command" and task.ClusterId:
                    route = await queueing.route(task.ClusterId, self.settings, self.kube)  # the probe: cached
                    if route.queued:
                        routes[name] = route
        observed = Observed(
            now_ms=now,
            jobs={j["name"]: _obs(JobObs, {**j, "create_error": errors.get(j["name"])}) for j in jobs},
            children={c["name"]: _obs(ChildObs, c) for index in (SPARK, FLINK) for c in self.children(index, key)},
            admitted=self._admitted(uid, body) if status.State in (None, "Waiting", "Running", "Stopped") else False,
            # Read by decide on the first pass only (MaxJobCount), and O(live DagJobs) to count.
            jobs_in_namespace=self._jobs_in_namespace(body) if status.State is None else 1,
            routes=routes,
            workloads={w["name"]: wl for w in self.children(WORKLOADS, key) if (wl := WorkloadObs.of(w)) is not None},
        )
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=uid, generation=generation,
                 created_ms=ms(meta.get("creationTimestamp")) or now)
        decision = decide(spec, error, m, status, observed, self.settings)
        await self._apply(key, body, spec, decision)

    # ------------------------------------------------------------------ apply

    async def _apply(self, key: Key, body: dict[str, Any], spec: DagJobSpec | None, decision: Decision) -> None:
        meta = body["metadata"]
        uid = meta["uid"]
        owner = Owner(base.API_VERSION, KIND, meta["name"], meta["namespace"], uid)
        # The status write and the children go out together: a child's name comes from its task and
        # run, which only the status advances, so a create that lands without its status write is
        # found again on the next pass (409), never duplicated. That saves a round trip per transition.
        # The listed events' notifications go into the outbox with the same write (write-ahead).
        events = listed(spec)
        new_status = self.with_outbox(decision.status.model_dump(exclude_none=True, mode="json"),
                                      self._notifications(body, spec, [n for n in decision.notes if n.event in events]))
        await asyncio.gather(self.write_status(body, new_status), self._children(key, spec, owner, decision))
        if decision.status.State != "Running":
            self._release(uid)
        await self.post_events(body, kube_events(decision.notes, events))
        if any(a.verb == "delete_self" for a in decision.actions):
            if new_status.get("outbox"):  # AutoRelease waits for the notifications of the job's end
                self.requeue(key, uid, 1.0)
            else:
                await self.kube.delete(base.API_VERSION, KIND, meta["namespace"], meta["name"], uid=uid)
        elif decision.requeue_after_s is not None:
            self.requeue(key, uid, decision.requeue_after_s)

    async def _children(self, key: Key, spec: DagJobSpec | None, owner: Owner, decision: Decision) -> None:
        if spec is None:
            return
        secret = render.oss_secret(spec, owner) if any(a.verb == "create_job" for a in decision.actions) else None
        if secret is not None:
            # Before the Jobs whose fetchers read it; create-if-absent, so a Job re-created after a
            # crash never misses it.
            await self.kube.create(secret)
        await asyncio.gather(*(self._act(key, spec, owner, a.verb, a.task, a.run, a.name, a.value)
                               for a in decision.actions if a.verb != "delete_self"))

    async def _act(self, key: Key, spec: DagJobSpec, owner: Owner, verb: str, task: str, run: int, name: str,
                   value: bool) -> None:
        ns = owner.namespace
        if verb == "create_job":
            job = render.task_job(spec, task, owner, self.settings, run)
            if await self.kube.create(job):
                self.note_created(key, JOBS, summarize_job(job))
        elif verb == "create_child":
            child = render.child_resource(spec, task, owner, self.settings, run)
            if await self.kube.create(child):
                if child["kind"] == "SparkBatch":
                    self.note_created(key, SPARK, summarize_sparkbatch(child))
                else:
                    self.note_created(key, FLINK, summarize_flinkjarjob(child))
        elif verb == "suspend_job":
            await self.kube.patch_child("batch/v1", "Job", ns, name, owner.uid, {"spec": {"suspend": value}})
        elif verb == "ensure_workload":
            await self._ensure_workload(key, spec, owner, task, run, name)
        elif verb == "release_workload":
            await queueing.release(self.kube, ns, name, owner.uid)
        elif verb == "prioritize_workload":
            await self.kube.patch_child(render_workload.API_VERSION, render_workload.KIND, ns, name, owner.uid,
                                        {"spec": {"priority": spec.Priority}})
        elif verb == "activate_workload":
            await self.kube.patch_child(render_workload.API_VERSION, render_workload.KIND, ns, name, owner.uid,
                                        {"spec": {"active": value}})
        elif verb == "finish_workload":
            await queueing.finish(self.kube, ns, name, owner.uid, "Succeeded" if value else "Failed")
        elif verb == "stop_child":
            kind = CHILD_KINDS[spec.DAG.Tasks[task].kind]
            await self.kube.patch_child(base.API_VERSION, kind, ns, name, owner.uid, {"spec": {"suspend": True}})

    def render_workload(self, spec: DagJobSpec, task: str, owner: Owner, run: int, name: str) -> dict[str, Any]:
        """A command task run's Workload: one podSet `task` × InstanceCount whose template is the pod
        template of the run's Indexed Job, at the DagJob's Priority, labelled with the task."""
        job = render.task_job(spec, task, owner, self.settings, run)
        t = spec.DAG.Tasks[task]
        cluster = t.ClusterId or ""
        pod_sets = [render_workload.PodSet("task", t.InstanceCount or 1, job["spec"]["template"])]
        return render_workload.build_workload(
            owner, queueing_local_queue(cluster, self.settings), pod_sets, spec.Priority, queue_label=cluster,
            run=run, name=name, extra_labels={render_workload.TASK_LABEL: render_workload.task_label(task)})

    async def _ensure_workload(self, key: Key, spec: DagJobSpec, owner: Owner, task: str, run: int,
                               name: str) -> None:
        """The task run's Workload, made if absent (create-if-absent: its name follows the run)."""
        created = await queueing.create_workload(self.kube, self.render_workload(spec, task, owner, run, name))
        if created is None:  # Kueue's API is gone: route the task afresh
            self.requeue(key, owner.uid, 1)
        elif created:
            self.note_created(key, WORKLOADS, {"name": name, "run": str(run)})

    # ------------------------------------------------------------------ notifications

    def _notifications(self, body: Mapping[str, Any], spec: DagJobSpec | None,
                       notes: list[Note]) -> list[tuple[str, dict[str, Any]]]:
        """The listed events as CloudEvents for an http(s) Topic.Endpoint, in order (none without one)."""
        endpoint = endpoint_of(spec, self.settings)
        if not notes or spec is None or endpoint is None:
            return []
        meta = body["metadata"]
        source = f"/namespaces/{meta['namespace']}/dagjobs/{meta['name']}"
        return [(endpoint, cloudevent(f"io.lakejob.dagjob.{n.event}", source, n.task or meta["name"], {
            "Event": n.event, "JobId": meta["uid"], "JobName": spec.Name, "TaskName": n.task,
            "InstanceIds": list(n.indexes), "Message": n.message})) for n in notes]

    def delivered(self, status: dict[str, Any], ok: bool) -> dict[str, Any]:
        """Deliveries are counted in status.notifications."""
        sent = Delivery.model_validate(status.get("notifications") or {})
        counts = {"delivered": sent.delivered + int(ok), "failed": sent.failed + int(not ok)}
        return {**status, "notifications": counts}

    def forget(self, key: Key, uid: str) -> None:
        super().forget(key, uid)
        self._specs.pop(uid, None)
        self._running.discard(uid)
        self._waiting.pop(uid, None)
        self._depart(uid)
        self._release(uid)


# ------------------------------------------------------------------------------------ kopf

base.watch(KIND, DagJobReconciler.plural, {
    JOBS: (("batch", "v1", "jobs"), summarize_job),
    SPARK: ((GROUP, VERSION, "sparkbatches"), summarize_sparkbatch),
    FLINK: ((GROUP, VERSION, "flinkjarjobs"), summarize_flinkjarjob),
    WORKLOADS: (queueing.RESOURCE, summarize_workload),
})
