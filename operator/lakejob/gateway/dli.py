"""DLI's Spark batch API (`/v2.0/{project_id}/batches`, as the seed and huaweicloudsdkdli's
DliClient call it) over SparkBatch.

A DLI batch is a SparkBatch whose spec is the request body as it came (the kind accepts DLI's
fields as they are). Its id is the SparkBatch's name: a fresh UUID when the gateway creates it, as
DLI's ids are, and the name as it is for one made with kubectl, so every SparkBatch of the
project's namespace is in the list. The project's namespace: the key's `as.projects` map, else
the namespace named as the project id (lakejob.gateway.identity).

  POST   …/batches                  create; 200 with the batch (the seed's response fields)
  GET    …/batches                  list: state, job_name, job-id, queue_name / cluster_name are
                                    field selectors (the CRD's selectableFields); start/end (create
                                    time, ms), order, from/size page the result
  GET    …/batches/{batch_id}       the batch
  GET    …/batches/{batch_id}/state {id, state}
  GET    …/batches/{batch_id}/log   {id, from, total, log}: the driver's log, paged as Livy pages it
  DELETE …/batches/{batch_id}       cancel: spec.suspend (the job ends `killed` and stays listed,
                                    as a cancelled DLI job does); {"msg": "deleted"}
Errors are DLI's: {"is_success": false, "error_code": "DLI.xxxx", "error_msg": "…"} (ERROR_CODES).
Called by lakejob.gateway.server.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from lakejob.gateway import jobs, logs, server
from lakejob.gateway.jobs import GROUP_VERSION
from lakejob.models.sparkbatch import SparkBatchSpec

KIND = "SparkBatch"
PREFIX = "/v2.0/{project_id}/batches"
# HTTP status → DLI's error code (DLI.0001 parameter error, DLI.0002 no such object, DLI.0003
# permission denied, DLI.0999 server error; APIG.0301 an authentication that failed, as Huawei
# Cloud's API gateway answers it).
ERROR_CODES = {400: "DLI.0001", 401: "APIG.0301", 403: "DLI.0003", 404: "DLI.0002", 409: "DLI.0001",
               422: "DLI.0001"}
ORDERS = {"duration_desc", "duration_asc", "create_time_desc", "create_time_asc"}


def error(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"is_success": False, "error_code": ERROR_CODES.get(status, "DLI.0999"), "error_msg": message}


def view(obj: dict[str, Any]) -> dict[str, Any]:
    """A batch as DLI shows it (the create response and show's fields)."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    queue = st.get("queue") or spec.get("queue") or spec.get("cluster_name") or ""
    created = jobs.created_ms(obj)
    out = {"id": meta.get("name"), "appId": st.get("appId") or "", "name": spec.get("name") or "",
           "owner": (meta.get("annotations") or {}).get(jobs.OWNER, ""), "proxyUser": spec.get("proxyUser") or "",
           "state": st.get("state") or "starting", "kind": "", "log": list(st.get("log") or []),
           "sc_type": st.get("sc_type") or spec.get("sc_type") or "", "cluster_name": st.get("cluster_name") or queue,
           "queue": queue, "image": spec.get("image") or "", "create_time": created,
           "update_time": int(st.get("update_time") or created), "feature": spec.get("feature") or "",
           "spark_version": spec.get("spark_version") or "", "req_body": json.dumps(spec, separators=(",", ":"))}
    if st.get("duration") is not None:
        out["duration"] = int(st["duration"])
    return out


async def _the_batch(request: web.Request) -> dict[str, Any]:
    batch_id = request.match_info["batch_id"]
    obj = await server.jobs(request).get(KIND, server.namespace(request), batch_id)
    if obj is None:
        raise server.Refused(404, f"The batch job {batch_id} does not exist.")
    return obj


async def create_named(request: web.Request, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a `kind` of this spec named by a fresh UUID (DLI's ids), its owner the caller."""
    meta: dict[str, Any] = {"name": str(uuid.uuid4()), "namespace": server.namespace(request),
                            "labels": {"app.kubernetes.io/created-by": "lakejob-gateway"}}
    if owner := server.jobs(request).owner():
        meta["annotations"] = owner
    return await server.jobs(request).create({"apiVersion": GROUP_VERSION, "kind": kind, "metadata": meta,
                                              "spec": spec})


async def create(request: web.Request) -> web.Response:
    body = await server.spec_body(request, SparkBatchSpec, "DLI's batch request")
    return web.json_response(view(await create_named(request, KIND, body)))


def _selectors(query: Any) -> list[str]:
    """The field selectors of a list's filters (queue_name or cluster_name matches either spec
    field, which DLI treats as one; a new batch without status is `starting`)."""
    queue = query.get("queue_name") or query.get("cluster_name")
    return jobs.any_of(
        jobs.state_is("status.state", query["state"], "starting") if query.get("state") else [],
        *([f"{field}={jobs.escape(query[param])}"] for param, field in (("job_name", "spec.name"),
                                                                         ("job-id", "metadata.name")) if query.get(param)),
        [f"spec.{field}={jobs.escape(queue)}" for field in ("queue", "cluster_name")] if queue else [])


async def list_batches(request: web.Request) -> web.Response:
    order = request.query.get("order") or "create_time_desc"
    if order not in ORDERS:
        raise server.Refused(400, f"order={order!r}: must be one of {', '.join(sorted(ORDERS))}")
    start, end = server.int_param(request, "start"), server.int_param(request, "end")
    from_, size = server.int_param(request, "from") or 0, server.int_param(request, "size")
    found = await jobs.select_any(server.jobs(request), KIND, server.namespace(request), _selectors(request.query))
    batches = [view(o) for o in found
               if (start is None or jobs.created_ms(o) >= start) and (end is None or jobs.created_ms(o) <= end)]
    key = "duration" if order.startswith("duration") else "create_time"
    batches.sort(key=lambda b: (b.get(key) or 0, b["id"]), reverse=order.endswith("_desc"))
    chosen = logs.window(batches, from_, size)
    return web.json_response({"from": from_, "total": len(batches), "sessions": chosen,
                              "create_time": int(time.time() * 1000)})


async def get(request: web.Request) -> web.Response:
    return web.json_response(view(await _the_batch(request)))


async def get_state(request: web.Request) -> web.Response:
    b = view(await _the_batch(request))
    return web.json_response({"id": b["id"], "state": b["state"]})


async def get_log(request: web.Request) -> web.Response:
    obj = await _the_batch(request)
    lines = await logs.driver_lines(server.jobs(request), server.namespace(request), obj)
    start, end = logs.page(len(lines), server.int_param(request, "from"), server.int_param(request, "size"))
    return web.json_response({"id": obj["metadata"]["name"], "from": start, "total": len(lines),
                              "log": lines[start:end]})


async def cancel(request: web.Request) -> web.Response:
    obj = await _the_batch(request)
    await server.jobs(request).merge_patch(obj, {"spec": {"suspend": True}})
    return web.json_response({"msg": "deleted"})


def register(app: web.Application, gw: server.Gateway) -> None:
    app.router.add_post(PREFIX, create)
    app.router.add_get(PREFIX, list_batches)
    app.router.add_get(PREFIX + "/{batch_id}", get)
    app.router.add_get(PREFIX + "/{batch_id}/state", get_state)
    app.router.add_get(PREFIX + "/{batch_id}/log", get_log)
    app.router.add_delete(PREFIX + "/{batch_id}", cancel)
    gw.shapes["/v2.0/"] = error
