"""DagJob: kopf handlers (thin) and the reconciler's observe and apply steps.

The loop is controllers.base's; decide is controllers.dagjob_decide (pure). Here:
- observe: the spec through the model, the status, the tasks' Jobs and child resources from
  kopf indexes (no LIST calls), whether a Running slot is ours (operator-wide `dag_max_running`,
  waiting DagJobs ordered by Priority then age) and how many DagJobs the namespace holds;
- apply: the status alongside the idempotent creates / suspends (names follow the task's run,
  which only the status advances), then the Events, the notifications and AutoRelease's delete. Notifications go out per DagJob in order, through
  the shared Notifier (background, bounded retries), and their delivery counts land in status.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar
from urllib.parse import urlsplit


from lakejob import kube as kubemod
from lakejob.controllers import base
from lakejob.controllers.base import Key, ms
from lakejob.controllers.dagjob_decide import (
    ChildObs,
    Decision,
    JobObs,
    Meta,
    Note,
    Observed,
    decide,
    is_instance_event,
    listed,
)
from lakejob.crds import GROUP, VERSION
from lakejob.models.dagjob import CHILD_KINDS, TERMINAL_STATES, DagJobSpec, DagJobStatus, Delivery
from lakejob.notify import cloudevent
from lakejob.render import dag as render
from lakejob.render.common import Owner
from lakejob.settings import Settings

KIND = "DagJob"
JOBS = "dagjob_jobs"  # kopf index of the tasks' Jobs (named after its handler)
SPARK = "dagjob_sparkbatches"  # kopf indexes of the tasks' child resources
FLINK = "dagjob_flinkjarjobs"
MERGE = "application/merge-patch+json"
T = TypeVar("T")


def summarize_job(body: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    true = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    # SuccessCriteriaMet / FailureTarget come first (the pods may still be terminating): act on them.
    outcome = ("Complete" if {"Complete", "SuccessCriteriaMet"} & set(true)
               else "Failed" if {"Failed", "FailureTarget"} & set(true) else None)
    failed = true.get("Failed") or true.get("FailureTarget") or {}
    return {"name": meta["name"], "completions": spec.get("completions") or 1, "active": status.get("active") or 0,
            "completed_indexes": status.get("completedIndexes") or "",
            "failed_indexes": status.get("failedIndexes") or "", "suspended": bool(spec.get("suspend")),
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


def http_url(endpoint: str) -> bool:
    """An http(s) URL we can POST to (BatchCompute's MNS endpoint template, http://[UserId].mns…, is not)."""
    try:
        parts = urlsplit(endpoint)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def endpoint_of(spec: DagJobSpec | None, settings: Settings) -> str | None:
    """Where the listed events go: Topic.Endpoint when it is an http(s) URL, else the URL the operator
    maps Topic.Name to (LAKEJOB_NOTIFICATION_TOPICS), else nowhere (Kubernetes Events only)."""
    if spec is None or spec.Notification is None:
        return None
    topic = spec.Notification.Topic
    if topic.Endpoint and http_url(topic.Endpoint):
        return topic.Endpoint
    mapped = settings.notification_topics.get(topic.Name or "")
    return mapped if mapped and http_url(mapped) else None


def parse_spec(body: Mapping[str, Any]) -> tuple[DagJobSpec | None, str | None]:
    return base.parse_spec(DagJobSpec, body)


def _priority_of(body: Mapping[str, Any]) -> int:
    value = (body.get("spec") or {}).get("Priority")
    return value if isinstance(value, int) else 0


@base.register
class DagJobReconciler(base.Reconciler):
    kind = KIND
    plural = "dagjobs"
    terminal_states = frozenset(TERMINAL_STATES)
    state_field = "State"
    failed_states = frozenset({"Failed"})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._slots_held: set[str] = set()  # uids of the DagJobs holding a Running slot
        self._deliveries: dict[str, list[int]] = {}  # uid → [delivered, failed] not yet in status
        self._outbox: dict[str, asyncio.Task[None]] = {}  # uid → the tail of its ordered deliveries
        self._specs: dict[str, tuple[int, DagJobSpec | None, str | None]] = {}  # uid → (generation, parsed)

    # ------------------------------------------------------------------ observe

    def _state(self, body: Mapping[str, Any]) -> str | None:
        state = self.status_of(body).get("State")
        return state if isinstance(state, str) else None

    def _admitted(self, uid: str, body: Mapping[str, Any]) -> bool:
        """Whether this DagJob may run now. Synchronous (no await), so two reconciles never take one slot."""
        held = self._slots_held | {b["metadata"]["uid"] for b in self.bodies.values() if self._state(b) == "Running"}
        if uid in held:
            self._slots_held.add(uid)
            return True
        free = self.settings.dag_max_running - len(held)
        if free <= 0:
            return False
        waiting = sorted((b for b in self.bodies.values()
                          if self._state(b) in (None, "Waiting", "Stopped") and not (b.get("spec") or {}).get("suspend")
                          and b["metadata"]["uid"] not in held),
                         key=lambda b: (-_priority_of(b), b["metadata"].get("creationTimestamp", ""),
                                        b["metadata"]["namespace"], b["metadata"]["name"]))
        if uid in [b["metadata"]["uid"] for b in waiting[:free]]:
            self._slots_held.add(uid)
            return True
        return False

    def _release(self, uid: str) -> None:
        """Give a slot back and wake the waiting DagJobs (the best of them takes it)."""
        if uid in self._slots_held:
            self._slots_held.discard(uid)
            for key, b in list(self.bodies.items()):
                if self._state(b) == "Waiting":
                    self._spawn(key)

    def _jobs_in_namespace(self, body: Mapping[str, Any]) -> int:
        meta = body["metadata"]
        me = (meta.get("creationTimestamp", ""), meta["name"])
        return sum(1 for b in self.bodies.values() if b["metadata"]["namespace"] == meta["namespace"]
                   and (b["metadata"].get("creationTimestamp", ""), b["metadata"]["name"]) <= me)

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        uid = meta["uid"]
        raw = dict(self.status_of(body))
        pending = self._deliveries.get(uid, [0, 0])
        applied = list(pending)
        if any(applied):
            sent = Delivery.model_validate(raw.get("notifications") or {})
            raw["notifications"] = {"delivered": sent.delivered + applied[0], "failed": sent.failed + applied[1]}
        status = DagJobStatus.model_validate(raw)
        generation = meta.get("generation", 1)
        cached = self._specs.get(uid)
        if cached is None or cached[0] != generation:
            # Parsed once per generation: a DagJob is reconciled on every event of every child.
            cached = self._specs[uid] = (generation, *parse_spec(body))
        spec, error = cached[1], cached[2]
        now = self.now_ms()
        observed = Observed(
            now_ms=now,
            jobs={j["name"]: _obs(JobObs, j) for j in self.children(JOBS, key)},
            children={c["name"]: _obs(ChildObs, c) for index in (SPARK, FLINK) for c in self.children(index, key)},
            admitted=self._admitted(uid, body) if status.State in (None, "Waiting", "Running", "Stopped") else False,
            jobs_in_namespace=self._jobs_in_namespace(body),
        )
        m = Meta(name=meta["name"], namespace=meta["namespace"], uid=uid, generation=generation,
                 created_ms=ms(meta.get("creationTimestamp")) or now)
        decision = decide(spec, error, m, status, observed, self.settings)
        await self._apply(key, body, spec, decision)
        if any(applied):
            pending[0] -= applied[0]
            pending[1] -= applied[1]

    # ------------------------------------------------------------------ apply

    async def _apply(self, key: Key, body: dict[str, Any], spec: DagJobSpec | None, decision: Decision) -> None:
        meta = body["metadata"]
        uid = meta["uid"]
        owner = Owner(base.API_VERSION, KIND, meta["name"], meta["namespace"], uid)
        # The status write and the children go out together: a child's name comes from its task and
        # run, which only the status advances, so a create that lands without its status write is
        # found again on the next pass (409), never duplicated. That saves a round trip per transition.
        await asyncio.gather(self.write_status(body, decision.status.model_dump(exclude_none=True, mode="json")),
                             self._children(key, spec, owner, decision))
        if decision.status.State != "Running":
            self._release(uid)
        events = listed(spec)
        await self.post_events(body, [("Warning" if n.event.endswith("Failed") else "Normal", n.event[2:], n.message)
                                      for n in decision.notes if not is_instance_event(n.event) or n.event in events])
        self._notify(body, spec, [n for n in decision.notes if n.event in events])
        if any(a.verb == "delete_self" for a in decision.actions):
            await self.kube.delete(base.API_VERSION, KIND, meta["namespace"], meta["name"])
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
            await self._patch("batch/v1", "Job", ns, name, {"spec": {"suspend": value}})
        elif verb == "stop_child":
            kind = CHILD_KINDS[spec.DAG.Tasks[task].kind]
            await self._patch(base.API_VERSION, kind, ns, name, {"spec": {"suspend": True}})

    async def _patch(self, api_version: str, kind: str, ns: str, name: str, patch: dict[str, Any]) -> None:
        status, payload = await self.kube.request("PATCH", kubemod.path(api_version, kind, ns, name), patch,
                                                  content_type=MERGE)
        if status >= 300 and status != 404:  # gone already: nothing left to stop
            raise kubemod.KubeError(status, payload.get("message", "") if isinstance(payload, dict) else str(payload))

    # ------------------------------------------------------------------ notifications

    def _notify(self, body: Mapping[str, Any], spec: DagJobSpec | None, notes: list[Note]) -> None:
        """POST the listed events to an http(s) Topic.Endpoint, one after another (in order), in the background."""
        endpoint = endpoint_of(spec, self.settings)
        if not notes or spec is None or endpoint is None:
            return
        meta = body["metadata"]
        uid = meta["uid"]
        source = f"/namespaces/{meta['namespace']}/dagjobs/{meta['name']}"
        events = [cloudevent(f"io.lakejob.dagjob.{n.event}", source, n.task or meta["name"], {
            "Event": n.event, "JobId": uid, "JobName": spec.Name, "TaskName": n.task, "InstanceIds": list(n.indexes),
            "Message": n.message}) for n in notes]
        previous = self._outbox.get(uid)
        task = asyncio.get_running_loop().create_task(self._deliver(body, endpoint, events, previous))
        self._outbox[uid] = task
        task.add_done_callback(lambda t: self._outbox.pop(uid, None) if self._outbox.get(uid) is t else None)
        self.track(task)  # so that stop() ends a delivery still waiting when the operator stops

    async def _deliver(self, body: Mapping[str, Any], url: str, events: list[dict[str, Any]],
                       previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        uid = body["metadata"]["uid"]
        loop = asyncio.get_running_loop()
        for event in events:
            done: asyncio.Future[bool] = loop.create_future()
            self.notifier.send(url, event, _resolver(done))
            ok = await done
            counts = self._deliveries.setdefault(uid, [0, 0])
            counts[0 if ok else 1] += 1
        if uid in self._deliveries and base.cr_key(body) in self.bodies:
            self._spawn(base.cr_key(body))  # write the delivery counts to status

    def forget(self, key: Key, uid: str) -> None:
        super().forget(key, uid)
        self._deliveries.pop(uid, None)
        self._specs.pop(uid, None)
        self._release(uid)


def _resolver(future: asyncio.Future[bool]) -> Callable[[bool], None]:
    def on_done(ok: bool) -> None:
        if not future.done():
            future.set_result(ok)

    return on_done


# ------------------------------------------------------------------------------------ kopf

base.watch(KIND, DagJobReconciler.plural, {
    JOBS: (("batch", "v1", "jobs"), summarize_job),
    SPARK: ((GROUP, VERSION, "sparkbatches"), summarize_sparkbatch),
    FLINK: ((GROUP, VERSION, "flinkjarjobs"), summarize_flinkjarjob),
})
