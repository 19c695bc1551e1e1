"""Alibaba BatchCompute's job API (`/jobs…`, as the `batchcompute` Python SDK 2.1.7 calls it) over
DagJob.

A BatchCompute job is a DagJob whose spec is the request body (the kind takes BatchCompute's
fields as they are), in the caller's namespace (the key's `as.namespace`, else the gateway's:
BatchCompute's paths name no project). Its Id is the DagJob's uid, the JobId the operator puts in
log object names; the operator copies it to status.Id, a selectable field, so a job is found by the
apiserver (`status.Id=<id>`), and one without a status yet by its metadata.uid.

  POST   /jobs[?IdempotentToken=]        create; 201 {"Id"}. A repeat of a token returns the job it
                                         created (the DagJob's name is the token's hash: the
                                         apiserver's AlreadyExists is the lock); another body under
                                         the same token is 400 IdempotentTokenMismatch
  GET    /jobs?Marker&MaxItemCount&State list: {"Items": [job…], "NextMarker"}; State is a field
                                         selector (`status.State`; Waiting: none yet too); IsReverse, OrderBy=CreationTime
  GET    /jobs/{id}                      the job (the SDK's Job: state, times, metrics)
  GET    /jobs/{id}?description          the spec (the SDK's JobDescription)
  PUT    /jobs/{id}                      {"Priority": n}: spec.Priority (mutable: OnPriorityChange)
  POST   /jobs/{id}/stop, …/start        spec.suspend true / false (the job goes Stopped / Waiting)
  DELETE /jobs/{id}                      204; as BatchCompute, only a Stopped, Finished or Failed job
  GET    /jobs/{id}/tasks[/{task}]       status.Tasks as the SDK's Task (Marker, MaxItemCount, State)
  GET    /jobs/{id}/tasks/{task}/instances[/{n}]  each instance's state, from the task's finished and
                                         failed indexes (the SDK's Instance)
Every list's NextMarker names the first item of the next page, "" after the last.
Errors are BatchCompute's: {"Code", "Message", "RequestId", "HostId"} (`error`). Called by
lakejob.gateway.server.
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, get_args

from aiohttp import web
from pydantic import BaseModel, ValidationError

from lakejob.gateway import jobs, server
from lakejob.gateway.jobs import GROUP_VERSION, ApiError
from lakejob.models.common import describe_errors
from lakejob.models.dagjob import STATES, TERMINAL_STATES, DagJobSpec, parse_indexes

KIND = "DagJob"
TOKEN = "lakejob.io/idempotent-token"  # label: the IdempotentToken's hash (a label value can't hold any token)
BODY = "lakejob.io/idempotent-body"  # annotation: the created body's hash, to tell a repeat from a mismatch
HOST = socket.gethostname()  # HostId: which gateway replica answered
MAX_ITEMS = 100  # MaxItemCount's bound, as BatchCompute's
COUNTS = ("WaitingCount", "RunningCount", "StoppedCount", "FinishedCount", "FailedCount")
# BatchCompute's common error codes by HTTP status (its "Common error" table); 401 is ours: the
# request's signature, key or date did not verify (BatchCompute answers those 400/403).
CODES = {400: "InvalidParameter", 401: "SignatureDoesNotMatch", 403: "Forbidden", 404: "InvalidResource.NotFound",
         409: "StateConflict", 422: "InvalidParameter", 429: "Throttling", 503: "ServiceUnavailable"}
# What the middleware passes as `code` that is not BatchCompute's: the apiserver's reasons, and
# the gateway's own for a failed authentication; such a code gives way to the status's.
KUBE_REASONS = {"Unauthenticated", "Unauthorized", "NotFound", "AlreadyExists", "Conflict", "Invalid", "BadRequest",
                "TooManyRequests", "Gone", "Timeout", "ServerTimeout", "Expired", "ServiceUnavailable"}
# BatchCompute's code in a message: what the model's rules start theirs with ("InvalidName:
# Specified parameter …"), found after the field's path describe_errors puts first, or after the
# apiserver's words when admission refused the spec by the same rule.
CODE_IN_MESSAGE = re.compile(r"(?:^|: )((?:Invalid|Missing|QuotaExhausted)[A-Za-z]*(?:\.[^\s:]+)*): ")


def error(status: int, code: str | None, message: str) -> dict[str, Any]:
    """BatchCompute's error body. The code: the one given, else for a refused request the one its
    message carries, else the status's."""
    if code is None or code in KUBE_REASONS:
        found = CODE_IN_MESSAGE.search(message) if status in (400, 422) else None
        code = found[1] if found else CODES.get(status, "InternalError")
    return {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper(), "HostId": HOST}


# ----------------------------------------------------------------------------- bodies


def _models(tp: Any) -> Iterator[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield tp
    for arg in get_args(tp):
        yield from _models(arg)


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    seen.add(model)
    names = set(model.model_fields)
    for f in model.model_fields.values():
        for sub in _models(f.annotation):
            if sub not in seen:
                names |= _field_names(sub, seen)
    return names


# Every field name of a BatchCompute body: what `Invalid{Parameter}` may name (not a map's keys).
FIELDS = _field_names(DagJobSpec, set())


def model_code(e: ValidationError) -> str:
    """BatchCompute's code for the first broken rule: the code the rule's message starts with, else
    Missing{Field} / Invalid{Field} by its convention, naming the innermost field of the path."""
    first = e.errors()[0]
    match = CODE_IN_MESSAGE.match(str(first["msg"]).removeprefix("Value error, "))
    if match:
        return match[1]
    field = next((str(p) for p in reversed(first["loc"]) if str(p) in FIELDS), None)
    if field is None:
        return "InvalidParameter"
    return ("Missing" if first["type"] == "missing" else "Invalid") + field


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def without_sdk_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The body less the empty fields the SDK's classes put into every body it sends
    (Command.Docker {"Image": ""}, AutoCluster.DependencyIsvService "", Topic.UserData and
    UserTemplate ""), which DagJob does not have: empty, they ask for nothing, and left in, the kind
    would refuse every job the SDK creates. A non-empty one stays, and is refused by name."""
    out: dict[str, Any] = json.loads(json.dumps(body))
    for task in _dict(_dict(out.get("DAG")).get("Tasks")).values():
        command = _dict(_dict(_dict(task).get("Parameters")).get("Command"))
        if command.get("Docker") in ({"Image": ""}, {}):
            del command["Docker"]
        auto = _dict(_dict(task).get("AutoCluster"))
        if auto.get("DependencyIsvService") == "":
            del auto["DependencyIsvService"]
    topic = _dict(_dict(out.get("Notification")).get("Topic"))
    for key in ("UserData", "UserTemplate"):
        if topic.get(key) == "":
            del topic[key]
    return out


def digest(value: Any) -> str:
    """A short hash (128 bits, hex): fits a label value and a name, for any token or body."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def token_name(token: str) -> str:
    """The DagJob's name for an IdempotentToken: the same token is the same name in a namespace."""
    return f"job-{digest(token)}"


async def _job_body(request: web.Request) -> dict[str, Any]:
    """The request's job, checked by DagJob's rules (a 400 naming every field that breaks one, its
    Code BatchCompute's for the first): what becomes the spec."""
    body = without_sdk_defaults(await server.json_body(request, "BatchCompute's job description"))
    try:
        DagJobSpec.model_validate(body)
    except ValidationError as e:
        raise server.Refused(400, describe_errors(e), model_code(e)) from None
    return body


# ----------------------------------------------------------------------------- views (pure)


def bc_time(stamp: str | None) -> str | None:
    """A time as BatchCompute writes it and the SDK parses it ("%Y-%m-%dT%H:%M:%S.%fZ"; any other
    form the SDK reads as None)."""
    if not stamp:
        return None
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _counts(found: dict[str, Any] | None, waiting: int) -> dict[str, int]:
    """Metrics as BatchCompute counts them; before the operator's first status, all waiting."""
    if found is None:
        return {k: waiting if k == "WaitingCount" else 0 for k in COUNTS}
    return {k: int(found.get(k) or 0) for k in COUNTS}


def _instance_count(task: dict[str, Any]) -> int:
    """A command task's InstanceCount; a task of another kind (sparkBatch, …) is one instance."""
    return int(task.get("InstanceCount") or 1) if task.get("Parameters") is not None else 1


def view(obj: dict[str, Any]) -> dict[str, Any]:
    """A job as GetJob shows it (the SDK's Job)."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    tasks = (spec.get("DAG") or {}).get("Tasks") or {}
    return {"Id": meta.get("uid"), "Name": spec.get("Name") or st.get("Name") or "",
            "Owner": (meta.get("annotations") or {}).get(jobs.OWNER, ""), "Description": spec.get("Description") or "",
            "Priority": spec.get("Priority", st.get("Priority")), "State": st.get("State") or "Waiting",
            "Message": st.get("message") or "",
            "CreationTime": bc_time(st.get("CreationTime") or meta.get("creationTimestamp")),
            "StartTime": bc_time(st.get("StartTime")), "EndTime": bc_time(st.get("EndTime")),
            "TaskMetrics": _counts(st.get("TaskMetrics"), len(tasks)),
            "InstanceMetrics": _counts(st.get("InstanceMetrics"), sum(_instance_count(t) for t in tasks.values()))}


def _task_status(obj: dict[str, Any], name: str) -> dict[str, Any] | None:
    """status.Tasks[name]; for a task the operator has not yet reported, a Waiting one; None when
    the job's spec has no such task."""
    task = (((obj.get("spec") or {}).get("DAG") or {}).get("Tasks") or {}).get(name)
    if task is None:
        return None
    found = ((obj.get("status") or {}).get("Tasks") or {}).get(name)
    return found or {"State": "Waiting", "InstanceMetrics": _counts(None, _instance_count(task))}


def task_names(obj: dict[str, Any]) -> list[str]:
    return sorted(((obj.get("spec") or {}).get("DAG") or {}).get("Tasks") or {})


def task_view(obj: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A task as GetTask shows it (the SDK's Task); None when the job has no such task."""
    t = _task_status(obj, name)
    if t is None:
        return None
    count = _instance_count(obj["spec"]["DAG"]["Tasks"][name])
    return {"TaskName": name, "State": t.get("State") or "Waiting", "StartTime": bc_time(t.get("StartTime")),
            "EndTime": bc_time(t.get("EndTime")), "InstanceMetrics": _counts(t.get("InstanceMetrics"), count)}


def instance_views(obj: dict[str, Any], name: str) -> list[dict[str, Any]] | None:
    """A task's instances as GetInstance shows them (the SDK's Instance); None when the job has no
    such task. What the operator records per task, not per instance: which indexes finished and
    which failed; the others share the task's state (a task that failed or stopped stopped them),
    and its start time once it started, its end time once it ended."""
    t = _task_status(obj, name)
    if t is None:
        return None
    task = obj["spec"]["DAG"]["Tasks"][name]
    params = task.get("Parameters") or {}
    finished, failed = parse_indexes(t.get("FinishedIndexes")), parse_indexes(t.get("FailedIndexes"))
    task_state = t.get("State") or "Waiting"
    uid = (obj.get("metadata") or {}).get("uid", "")
    out = []
    for i in range(_instance_count(task)):
        if task.get("Parameters") is None:
            state = task_state  # a child resource's task: the task is its one instance
        else:
            state = "Finished" if i in finished else "Failed" if i in failed else (
                "Stopped" if task_state == "Failed" else task_state)
        entry: dict[str, Any] = {
            "InstanceId": i, "State": state,
            "StartTime": bc_time(t.get("StartTime")) if state != "Waiting" else None,
            "EndTime": bc_time(t.get("EndTime")) if state in ("Finished", "Failed", "Stopped") else None}
        # Where the operator uploads the instance's output (DagJob's StdoutRedirectPath).
        for stream, field in (("stdout", "StdoutRedirectPath"), ("stderr", "StderrRedirectPath")):
            if params.get(field):
                entry[field] = f"{params[field]}{stream}.{uid}.{name}.{i}"
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- paging (pure)


def job_key(obj: dict[str, Any]) -> str:
    """A job's place in a list: creation time, then name (unique in a namespace). Its marker."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('creationTimestamp', '')}/{meta.get('name', '')}"


def page(keys: list[str], marker: str, size: int, reverse: bool = False) -> tuple[int, int, str]:
    """(start, end, NextMarker) of the page of `keys` (sorted, ascending unless `reverse`) that
    begins at `marker`: the first key at or after it ("" from the start). The marker is a key, not
    an offset, so jobs created or deleted between two pages neither repeat nor skip one; a new job
    sorts last (its creation time is the latest), and a deleted marker job still has its place."""
    start = next((i for i, k in enumerate(keys) if (k <= marker if reverse else k >= marker)), len(keys)) \
        if marker else 0
    end = min(start + size, len(keys))
    return start, end, keys[end] if end < len(keys) else ""


def _page_size(request: web.Request) -> int:
    size = server.int_param(request, "MaxItemCount")
    if size is None:
        return MAX_ITEMS
    if not 1 <= size <= MAX_ITEMS:
        raise server.Refused(400, f"Specified parameter MaxItemCount is not valid. It must be in [1, {MAX_ITEMS}].",
                             "InvalidMaxItemCount")
    return size


def _state_param(request: web.Request) -> str | None:
    state = request.query.get("State") or None
    if state is not None and state not in STATES:
        raise server.Refused(400, f"Specified parameter State is not valid. It must be one of {', '.join(STATES)}.",
                             "InvalidState")
    return state


# ----------------------------------------------------------------------------- handlers


async def find(request: web.Request, job_id: str) -> dict[str, Any] | None:
    """The namespace's DagJob whose uid is `job_id`."""
    calls, ns = server.jobs(request), server.namespace(request)
    found = await calls.select(KIND, ns, fields=f"status.Id={jobs.escape(job_id)}")
    if found:
        return found[0]
    return by_uid(await calls.select(KIND, ns), job_id)


def by_uid(items: list[dict[str, Any]], job_id: str) -> dict[str, Any] | None:
    """The fallback of `find`: status.Id is written by the operator's first reconcile, so a job
    created a moment ago has none yet and no field selector finds it; its metadata.uid is the same
    id from the start (a list of the namespace's DagJobs, only when the selector found nothing)."""
    return next((o for o in items if (o.get("metadata") or {}).get("uid") == job_id), None)


async def _the_job(request: web.Request) -> dict[str, Any]:
    job_id = request.match_info["job_id"]
    obj = await find(request, job_id)
    if obj is None:
        raise server.Refused(404, f"Specified job {job_id} is not found.", "InvalidResource.NotFound")
    return obj


def _state(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("State") or "Waiting")


def _conflict(state: str) -> server.Refused:
    return server.Refused(409, f"User operation is invalid. The current resource state is {state}.", "StateConflict")


async def create(request: web.Request) -> web.Response:
    body = await _job_body(request)
    ns, token = server.namespace(request), request.query.get("IdempotentToken") or ""
    meta: dict[str, Any] = {"namespace": ns, "labels": {"app.kubernetes.io/created-by": "lakejob-gateway"},
                            "annotations": server.jobs(request).owner()}
    if not token:
        meta["generateName"] = "job-"
    else:
        meta["name"] = token_name(token)
        meta["labels"][TOKEN] = digest(token)
        meta["annotations"][BODY] = digest(body)
    calls = server.jobs(request)
    try:
        created = await calls.create({"apiVersion": GROUP_VERSION, "kind": KIND, "metadata": meta, "spec": body})
    except ApiError as e:
        if not (token and e.status == 409 and e.reason == "AlreadyExists"):
            raise
        created = await _repeat(request, meta["name"], body)
    return web.json_response({"Id": created["metadata"]["uid"]}, status=201)


async def _repeat(request: web.Request, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The job an IdempotentToken created before: the same body is a repeat (its job again),
    another is refused, as BatchCompute refuses it."""
    found = await server.jobs(request).get(KIND, server.namespace(request), name)
    if found is None:  # deleted since the create met it
        raise server.Refused(409, "The job of this IdempotentToken is being deleted; retry.", "StateConflict")
    if ((found.get("metadata") or {}).get("annotations") or {}).get(BODY) != digest(body):
        raise server.Refused(400, "Specified idempotent token mismatch: it was used with another job description.",
                             "IdempotentTokenMismatch")
    return found


async def list_jobs(request: web.Request) -> web.Response:
    for unsupported in ("ClusterId", "ProjectId"):
        if request.query.get(unsupported):
            raise server.Refused(400, f"Specified parameter {unsupported} is not valid: a DagJob's tasks run on the "
                                      f"Kubernetes cluster, there are no {unsupported}s to filter by.",
                                 f"Invalid{unsupported}")
    if (request.query.get("OrderBy") or "CreationTime") != "CreationTime":
        raise server.Refused(400, "Specified parameter OrderBy is not valid. It must be CreationTime.", "InvalidOrderBy")
    reverse = (request.query.get("IsReverse") or "").lower() == "true"
    size, state = _page_size(request), _state_param(request)
    items = await jobs.select_any(server.jobs(request), KIND, server.namespace(request),
                                  jobs.any_of(jobs.state_is("status.State", state, "Waiting") if state else []))
    items.sort(key=job_key, reverse=reverse)
    start, end, marker = page([job_key(o) for o in items], request.query.get("Marker") or "", size, reverse)
    return web.json_response({"Items": [view(o) for o in items[start:end]], "NextMarker": marker})


async def get(request: web.Request) -> web.Response:
    obj = await _the_job(request)
    # GetJobDescription is the same path with a bare `?description`.
    return web.json_response((obj.get("spec") or {}) if "description" in request.query else view(obj))


async def change_priority(request: web.Request) -> web.Response:
    body = await server.json_body(request, '{"Priority": n}')
    priority = body.get("Priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 1000:
        raise server.Refused(400, "Specified parameter Priority is not valid. It must be an integer in [0, 1000].",
                             "InvalidPriority")
    obj = await _the_job(request)
    if _state(obj) in TERMINAL_STATES:
        raise _conflict(_state(obj))
    await server.jobs(request).merge_patch(obj, {"spec": {"Priority": priority}})
    return web.Response(status=200)


async def _suspend(request: web.Request, value: bool) -> web.Response:
    """stop (value true): a Waiting or Running job; start (false): a stopped one (or one being
    stopped: suspend set, the operator not yet there). The operator does the rest."""
    obj = await _the_job(request)
    state, suspended = _state(obj), bool((obj.get("spec") or {}).get("suspend"))
    if state in TERMINAL_STATES or (not value and state != "Stopped" and not suspended):
        raise _conflict(state)
    await server.jobs(request).merge_patch(obj, {"spec": {"suspend": value}})
    return web.Response(status=200)


async def stop(request: web.Request) -> web.Response:
    return await _suspend(request, True)


async def start(request: web.Request) -> web.Response:
    return await _suspend(request, False)


async def delete(request: web.Request) -> web.Response:
    obj = await _the_job(request)
    if _state(obj) not in ("Stopped", *TERMINAL_STATES):
        raise _conflict(_state(obj))
    await server.jobs(request).delete(obj)
    return web.Response(status=204)


def _no_task(request: web.Request) -> server.Refused:
    return server.Refused(404, f"Specified task {request.match_info['task']} is not found.",
                          "InvalidResource.NotFound")


async def list_tasks(request: web.Request) -> web.Response:
    size, state = _page_size(request), _state_param(request)
    obj = await _the_job(request)
    tasks = [t for t in (task_view(obj, n) for n in task_names(obj)) if t and (state is None or t["State"] == state)]
    start_, end, marker = page([t["TaskName"] for t in tasks], request.query.get("Marker") or "", size)
    return web.json_response({"Items": tasks[start_:end], "NextMarker": marker})


async def get_task(request: web.Request) -> web.Response:
    task = task_view(await _the_job(request), request.match_info["task"])
    if task is None:
        raise _no_task(request)
    return web.json_response(task)


def _instance_marker(request: web.Request) -> int:
    """An instance list's Marker: the InstanceId the page starts at (the SDK's easy_list starts at 0)."""
    return server.int_param(request, "Marker") or 0


async def list_instances(request: web.Request) -> web.Response:
    size, state, first = _page_size(request), _state_param(request), _instance_marker(request)
    instances = instance_views(await _the_job(request), request.match_info["task"])
    if instances is None:
        raise _no_task(request)
    chosen = [i for i in instances if i["InstanceId"] >= first and (state is None or i["State"] == state)]
    marker = str(chosen[size]["InstanceId"]) if len(chosen) > size else ""
    return web.json_response({"Items": chosen[:size], "NextMarker": marker})


async def get_instance(request: web.Request) -> web.Response:
    instances = instance_views(await _the_job(request), request.match_info["task"])
    if instances is None:
        raise _no_task(request)
    raw = request.match_info["instance"]
    found = next((i for i in instances if str(i["InstanceId"]) == raw), None)
    if found is None:
        raise server.Refused(404, f"Specified instance {raw} is not found.", "InvalidResource.NotFound")
    return web.json_response(found)


def register(app: web.Application, gw: server.Gateway) -> None:
    app.router.add_post("/jobs", create)
    app.router.add_get("/jobs", list_jobs)
    app.router.add_get("/jobs/{job_id}", get)
    app.router.add_put("/jobs/{job_id}", change_priority)
    app.router.add_delete("/jobs/{job_id}", delete)
    app.router.add_post("/jobs/{job_id}/stop", stop)
    app.router.add_post("/jobs/{job_id}/start", start)
    app.router.add_get("/jobs/{job_id}/tasks", list_tasks)
    app.router.add_get("/jobs/{job_id}/tasks/{task}", get_task)
    app.router.add_get("/jobs/{job_id}/tasks/{task}/instances", list_instances)
    app.router.add_get("/jobs/{job_id}/tasks/{task}/instances/{instance}", get_instance)
    gw.shapes["/jobs"] = error
