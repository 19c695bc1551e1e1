"""DLI's Flink JAR job API (`/v1.0/{project_id}/streaming/…`, as the seed and huaweicloudsdkdli's
DliClient call it) over FlinkJarJob.

A job is a FlinkJarJob whose spec is the request body as it came. DLI's job_id is an integer, so
it is claimed as Livy's ids are (lakejob.gateway.ids): the name `flink-job-<id>` and the label
DLI_FLINK_ID, from 1, per namespace. Jobs made with kubectl have no job_id and are not listed.

  POST   …/streaming/flink-jobs          create; {is_success, message, job: {job_id, status_name, status_desc}}
  GET    …/streaming/jobs                list: `status`, `name`, `queue_name` are field selectors (the
                                         CRD's selectableFields); `order`, `offset`/`limit` page it
  GET    …/streaming/jobs/{job_id}       {is_success, message, job_detail}
  PUT    …/streaming/flink-jobs/{job_id} update: the body's fields merged into the spec, checked as a
                                         creation is. A running job is cancelled and runs the new spec
                                         at once (the operator's new run); an ended one stays ended
                                         (spec.suspend set) until it is run
  POST   …/streaming/jobs/stop           {"job_ids": […]}: spec.suspend for each (DLI's stop:
                                         job_canceling, then job_cancel_success); one result each
  POST   …/streaming/jobs/run            {"job_ids": […], "resume_savepoint": bool}: each ended job runs
                                         again (suspend false, restartNonce + 1; resume_checkpoint =
                                         resume_savepoint: from the newest checkpoint); a live one is refused
  DELETE …/streaming/jobs/{job_id}       the FlinkJarJob deleted (its pods go with it)
  POST   …/streaming/jobs/delete         {"job_ids": […]}: each deleted; one result each
Updates and runs patch the object as read (its resourceVersion): two made at once cannot both
act on the same state. Errors are DLI's shape (lakejob.gateway.dli.error). Called by
lakejob.gateway.server.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lakejob.gateway import dli, ids, jobs, server
from lakejob.gateway.jobs import ApiError
from lakejob.models.flinkjarjob import TERMINAL_PHASES, FlinkJarJobSpec

KIND = "FlinkJarJob"
DLI_FLINK_ID = "lakejob.io/dli-flink-id"
SCHEME = ids.IdScheme(KIND, DLI_FLINK_ID, "flink-job-", first=1)
PREFIX = "/v1.0/{project_id}/streaming"
ORDERS = {"asc": False, "desc": True}  # DLI's order of a list: by job_id


def view(obj: dict[str, Any], project_id: str) -> dict[str, Any]:
    """A job as DLI shows it (the list's and show's FlinkJob)."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    created = jobs.created_ms(obj)
    return {"job_id": SCHEME.id_of(obj), "name": spec.get("name") or "", "desc": spec.get("desc") or "",
            "user_name": (meta.get("annotations") or {}).get(jobs.OWNER, ""), "job_type": "flink_jar_job",
            "status": st.get("status_name") or "job_init", "status_desc": st.get("status_desc") or "",
            "create_time": created, "start_time": int(st.get("start_time") or 0),
            "update_time": int(st.get("update_time") or created), "project_id": project_id,
            "main_class": spec.get("main_class") or "", "entrypoint_args": spec.get("entrypoint_args") or "",
            "queue_name": st.get("queue_name") or spec.get("queue_name") or "",
            "restart_times": int(st.get("restarts") or 0), "has_savepoint": bool(st.get("last_checkpoint")),
            "savepoint_path": st.get("last_checkpoint") or ""}


def _job_id(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    raise server.Refused(400, f"job_id {raw!r}: not a job id (an integer)")


async def _the_job(request: web.Request, job_id: int) -> dict[str, Any]:
    obj = await SCHEME.get(server.jobs(request), server.namespace(request), job_id)
    if obj is None:
        raise server.Refused(404, f"The job {job_id} does not exist.")
    return obj


async def create(request: web.Request) -> web.Response:
    body = await server.spec_body(request, FlinkJarJobSpec, "DLI's Flink JAR job request")
    created = await ids.create(server.jobs(request), SCHEME, server.namespace(request), body, server.jobs(request).owner())
    return web.json_response({"is_success": True, "message": "A Flink job is created successfully.",
                              "job": {"job_id": SCHEME.id_of(created), "status_name": "job_init", "status_desc": ""}})


async def list_jobs(request: web.Request) -> web.Response:
    order = request.query.get("order") or "desc"
    if order not in ORDERS:
        raise server.Refused(400, f"order={order!r}: must be asc or desc")
    q = request.query
    selectors = jobs.any_of(
        jobs.state_is("status.status_name", q["status"], "job_init") if q.get("status") else [],
        *([f"{field}={jobs.escape(q[param])}"] for param, field in (("name", "spec.name"),
                                                                     ("queue_name", "spec.queue_name")) if q.get(param)))
    items = await jobs.select_any(server.jobs(request), KIND, server.namespace(request), selectors, DLI_FLINK_ID)
    pid = request.match_info["project_id"]
    found = sorted((view(o, pid) for o in items if SCHEME.id_of(o) is not None), key=lambda j: int(j["job_id"]),
                  reverse=ORDERS[order])
    offset, limit = server.int_param(request, "offset") or 0, server.int_param(request, "limit")
    chosen = found[offset:] if limit is None else found[offset:offset + limit]
    return web.json_response({"is_success": True, "message": "", "job_list": {"total_count": len(found),
                                                                              "jobs": chosen}})


async def show(request: web.Request) -> web.Response:
    obj = await _the_job(request, _job_id(request.match_info["job_id"]))
    return web.json_response({"is_success": True, "message": "",
                              "job_detail": view(obj, request.match_info["project_id"])})


Act = Callable[[web.Request, int, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _each(request: web.Request, what: str, act: Act) -> web.Response:
    """Stop, run or delete every job of the body's job_ids: one result each, in order."""
    body = await server.json_body(request, f"DLI's batch {what} request")
    job_ids = body.get("job_ids")
    if not isinstance(job_ids, list) or not job_ids:
        raise server.Refused(400, "job_ids: give the ids of the jobs, a non-empty list")
    results = []
    for raw in job_ids:
        try:
            results.append(await act(request, _job_id(raw), body))
        except server.Refused as e:
            results.append({"is_success": False, "message": e.message})
        except ApiError as e:
            results.append({"is_success": False, "message": e.message})
    return web.json_response(results)


def _as_read(obj: dict[str, Any]) -> dict[str, Any]:
    """A patch's metadata that makes it apply to this very version of the object (else 409)."""
    return {"resourceVersion": obj["metadata"]["resourceVersion"]}


def _ended(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("state") in TERMINAL_PHASES


async def update(request: web.Request) -> web.Response:
    job_id = _job_id(request.match_info["job_id"])
    body = await server.json_body(request, "DLI's Flink JAR job update request")
    obj = await _the_job(request, job_id)
    spec = obj.get("spec") or {}
    patch = dict(body)
    if _ended(obj) and not spec.get("suspend"):
        patch["suspend"] = True  # DLI: an update does not start an ended job; its run does
    server.checked({**spec, **patch}, FlinkJarJobSpec)
    await server.jobs(request).merge_patch(obj, {"spec": patch, "metadata": _as_read(obj)})
    return web.json_response({"is_success": True, "message": f"The job {job_id} is updated successfully.",
                              "job": {"update_time": int(time.time() * 1000)}})


async def _run(request: web.Request, job_id: int, body: dict[str, Any]) -> dict[str, Any]:
    resume = body.get("resume_savepoint", False)
    if not isinstance(resume, bool):
        raise server.Refused(400, f"resume_savepoint {resume!r}: must be true or false")
    obj = await _the_job(request, job_id)
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    if not _ended(obj) and not spec.get("suspend"):
        raise server.Refused(400, f"The job {job_id} is {st.get('status_name') or 'job_init'}: stop it before "
                                  "running it again.")
    await server.jobs(request).merge_patch(obj, {"metadata": _as_read(obj), "spec": {
        "suspend": False, "restartNonce": int(spec.get("restartNonce") or 0) + 1, "resume_checkpoint": resume}})
    return {"is_success": True, "message": f"The request for running job {job_id} is delivered successfully."}


async def _stop(request: web.Request, job_id: int, body: dict[str, Any]) -> dict[str, Any]:
    obj = await _the_job(request, job_id)
    await server.jobs(request).merge_patch(obj, {"spec": {"suspend": True}})
    return {"is_success": True, "message": f"The request for stopping job {job_id} is delivered successfully."}


async def _delete(request: web.Request, job_id: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    await server.jobs(request).delete(await _the_job(request, job_id))
    return {"is_success": True, "message": f"The job {job_id} is deleted successfully."}


async def stop(request: web.Request) -> web.Response:
    return await _each(request, "stop", _stop)


async def run(request: web.Request) -> web.Response:
    return await _each(request, "run", _run)


async def delete_many(request: web.Request) -> web.Response:
    return await _each(request, "delete", _delete)


async def delete(request: web.Request) -> web.Response:
    return web.json_response(await _delete(request, _job_id(request.match_info["job_id"])))


def register(app: web.Application, gw: server.Gateway) -> None:
    app.router.add_post(PREFIX + "/flink-jobs", create)
    app.router.add_put(PREFIX + "/flink-jobs/{job_id}", update)
    app.router.add_get(PREFIX + "/jobs", list_jobs)
    app.router.add_get(PREFIX + "/jobs/{job_id}", show)
    app.router.add_post(PREFIX + "/jobs/stop", stop)
    app.router.add_post(PREFIX + "/jobs/run", run)
    app.router.add_post(PREFIX + "/jobs/delete", delete_many)
    app.router.add_delete(PREFIX + "/jobs/{job_id}", delete)
    gw.shapes["/v1.0/"] = dli.error
