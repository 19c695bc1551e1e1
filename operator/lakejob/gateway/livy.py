"""Livy's batch API (HDInsight's `/livy/batches`, Apache Livy's `/batches`) over SparkBatch.

A Livy batch is a SparkBatch whose spec is the request body as it came (the kind accepts Livy's
fields as they are) and whose integer id is in its name, `livy-batch-<id>`, and its label
LIVY_ID. Ids are per namespace, from 0, each the next after the largest in use: claimed by
creating the object of that name (a second gateway replica that picked the same id gets
AlreadyExists and takes the next), so they are unique and survive any restart. An id is reused only
once its batch and every later one were deleted (and not by a replica that made a larger one since
it started).

Paths, under `/batches`, `/livy/batches` (the caller's namespace: its key's default, else the
gateway's) and `/namespaces/{namespace}/livy/batches`:
  POST   …/batches              the body → a SparkBatch; 200 with the batch (the seed's status)
  GET    …/batches?from=&size=  {from, total, sessions: [batch…]}, by id
  GET    …/batches/{id}         {id, name, state, appId, appInfo, log}
  GET    …/batches/{id}/state   {id, state}
  GET    …/batches/{id}/log?from=&size=   {id, from, total, log}: the driver's log, paged as Livy
                                pages it (size 100 by default, from the last `size` lines)
  DELETE …/batches/{id}         the SparkBatch deleted (its driver stops); {"msg": "deleted"}
  GET    /version               {version}: Livy's whose API is served
Interactive sessions are lakejob.gateway.livy_sessions'.
Errors are Livy's: {"msg": "…"} with the HTTP status. Called by lakejob.gateway.server.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from lakejob.gateway import ids, logs, server
from lakejob.models.sparkbatch import SparkBatchSpec

KIND = "SparkBatch"
LIVY_ID = "lakejob.io/livy-id"
NAME_PREFIX = "livy-batch-"
LIVY_VERSION = "0.8.0-incubating"  # the Livy whose REST API is served (batches, sessions, statements)
SCHEME = ids.IdScheme(KIND, LIVY_ID, NAME_PREFIX)


def error(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"msg": message}


def livy_id(obj: dict[str, Any]) -> int | None:
    return SCHEME.id_of(obj)


def state(obj: dict[str, Any]) -> str:
    """The Livy state of a SparkBatch: its own state (they share Livy's names), `starting` until the
    operator has written one."""
    return str((obj.get("status") or {}).get("state") or "starting")


def view(obj: dict[str, Any]) -> dict[str, Any]:
    """A batch as Livy shows it."""
    st = obj.get("status") or {}
    spec = obj.get("spec") or {}
    return {"id": livy_id(obj), "name": spec.get("name"), "owner": None, "proxyUser": spec.get("proxyUser"),
            "state": state(obj), "appId": st.get("appId"),
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}, "log": list(st.get("log") or [])}


def _batch_id(request: web.Request) -> int:
    raw = request.match_info["batch_id"]
    if not raw.isdigit():
        raise server.Refused(404, f"Session '{raw}' not found.")
    return int(raw)


async def _the_batch(request: web.Request) -> tuple[int, dict[str, Any]]:
    batch_id = _batch_id(request)
    obj = await SCHEME.get(server.jobs(request), server.namespace(request), batch_id)
    if obj is None:
        raise server.Refused(404, f"Session '{batch_id}' not found.")
    return batch_id, obj


async def create(request: web.Request) -> web.Response:
    body = await server.spec_body(request, SparkBatchSpec, "Livy's batch request")
    created = await ids.create(server.jobs(request), SCHEME, server.namespace(request), body)
    return web.json_response(view(created))


async def list_batches(request: web.Request) -> web.Response:
    from_, size = server.int_param(request, "from") or 0, server.int_param(request, "size")
    items = await server.jobs(request).select(KIND, server.namespace(request), LIVY_ID)
    batches = sorted((view(o) for o in items if livy_id(o) is not None), key=lambda b: int(b["id"]))
    chosen = logs.window(batches, from_, size)
    return web.json_response({"from": from_, "total": len(batches), "sessions": chosen})


async def get(request: web.Request) -> web.Response:
    _, obj = await _the_batch(request)
    return web.json_response(view(obj))


async def get_state(request: web.Request) -> web.Response:
    batch_id, obj = await _the_batch(request)
    return web.json_response({"id": batch_id, "state": state(obj)})


async def get_log(request: web.Request) -> web.Response:
    batch_id, obj = await _the_batch(request)
    lines = await logs.driver_lines(server.jobs(request), server.namespace(request), obj)
    start, end = logs.page(len(lines), server.int_param(request, "from"), server.int_param(request, "size"))
    return web.json_response({"id": batch_id, "from": start, "total": len(lines), "log": lines[start:end]})


async def delete(request: web.Request) -> web.Response:
    _, obj = await _the_batch(request)
    await server.jobs(request).delete(obj)
    return web.json_response({"msg": "deleted"})


async def version(request: web.Request) -> web.Response:
    """Livy's server version: clients (pylivy) pick the API of Livy 0.5 and later by it."""
    return web.json_response({"version": LIVY_VERSION})


def register(app: web.Application, gw: server.Gateway) -> None:
    for path in ("/version", "/livy/version", "/namespaces/{namespace}/livy/version"):
        app.router.add_get(path, version)
    for prefix in ("/batches", "/livy/batches", "/namespaces/{namespace}/livy/batches"):
        app.router.add_post(prefix, create)
        app.router.add_get(prefix, list_batches)
        app.router.add_get(prefix + "/{batch_id}", get)
        app.router.add_get(prefix + "/{batch_id}/state", get_state)
        app.router.add_get(prefix + "/{batch_id}/log", get_log)
        app.router.add_delete(prefix + "/{batch_id}", delete)
    for shape_prefix in ("/batches", "/livy", "/namespaces/"):
        gw.shapes[shape_prefix] = error
