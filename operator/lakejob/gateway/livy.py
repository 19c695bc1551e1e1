"""Livy's batch API (HDInsight's `/livy/batches`, Apache Livy's `/batches`) over SparkBatch.

A Livy batch is a SparkBatch whose spec is the request body as it came (the kind accepts Livy's
fields as they are) and whose integer id is in its name, `livy-batch-<id>`, and its label
LIVY_ID. Ids are per namespace, from 0, each the next after the largest in use: claimed by
creating the object of that name (a second gateway replica that picked the same id gets
AlreadyExists and takes the next), so they are unique and survive any restart. An id is reused only
once its batch and every later one were deleted.

Paths, under `/batches`, `/livy/batches` (the caller's namespace: its key's default, else the
gateway's) and `/namespaces/{namespace}/livy/batches`:
  POST   …/batches              the body → a SparkBatch; 200 with the batch (the seed's status)
  GET    …/batches?from=&size=  {from, total, sessions: [batch…]}, by id
  GET    …/batches/{id}         {id, name, state, appId, appInfo, log}
  GET    …/batches/{id}/state   {id, state}
  GET    …/batches/{id}/log?from=&size=   {id, from, total, log}: the driver's log, paged as Livy
                                pages it (size 100 by default, from the last `size` lines)
  DELETE …/batches/{id}         the SparkBatch deleted (its driver stops); {"msg": "deleted"}
Errors are Livy's: {"msg": "…"} with the HTTP status. Called by lakejob.gateway.server.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from lakejob.gateway import server
from lakejob.gateway.jobs import ApiError, GROUP_VERSION
from lakejob.models.common import describe_errors
from lakejob.models.sparkbatch import SparkBatchSpec

KIND = "SparkBatch"
LIVY_ID = "lakejob.io/livy-id"
NAME_PREFIX = "livy-batch-"
DEFAULT_SIZE = 100  # Livy's default page, for lists and logs
CLAIM_ATTEMPTS = 20  # ids tried before giving up when other creators keep taking them


def error(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"msg": message}


def name_of(batch_id: int) -> str:
    return f"{NAME_PREFIX}{batch_id}"


def livy_id(obj: dict[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(LIVY_ID, "")
    return int(value) if value.isdigit() else None


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


def page(total: int, from_: int | None, size: int | None) -> tuple[int, int]:
    """(start, end) of a page as Livy computes it: `size` lines (100 by default; negative: all),
    from `from` or else the last `size`."""
    size = DEFAULT_SIZE if size is None else size
    size = total if size < 0 else size
    start = max(0, total - size) if from_ is None or from_ < 0 else min(from_, total)
    return start, min(total, start + size)


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise server.Refused(400, f"{name}={value!r}: not an integer") from None


def _batch_id(request: web.Request) -> int:
    raw = request.match_info["batch_id"]
    if not raw.isdigit():
        raise server.Refused(404, f"Session '{raw}' not found.")
    return int(raw)


async def _the_batch(request: web.Request) -> tuple[int, dict[str, Any]]:
    batch_id = _batch_id(request)
    obj = await server.jobs(request).get(KIND, server.namespace(request), name_of(batch_id))
    if obj is None or livy_id(obj) != batch_id:
        raise server.Refused(404, f"Session '{batch_id}' not found.")
    return batch_id, obj


async def create(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise server.Refused(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise server.Refused(400, "the body must be a JSON object (Livy's batch request)")
    try:
        SparkBatchSpec.model_validate(body)  # the operator's own rules, before anything is created
    except ValidationError as e:
        raise server.Refused(400, describe_errors(e)) from None
    ns, calls = server.namespace(request), server.jobs(request)
    for _ in range(CLAIM_ATTEMPTS):
        taken = [i for i in map(livy_id, await calls.select(KIND, ns, LIVY_ID)) if i is not None]
        batch_id = max(taken, default=-1) + 1
        obj = {"apiVersion": GROUP_VERSION, "kind": KIND,
               "metadata": {"name": name_of(batch_id), "namespace": ns,
                            "labels": {LIVY_ID: str(batch_id), "app.kubernetes.io/created-by": "lakejob-gateway"}},
               "spec": body}
        try:
            created = await calls.create(obj)
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                continue  # another creator took this id first: the next one
            raise
        return web.json_response(view(created))
    raise server.Refused(503, f"could not claim a batch id in {CLAIM_ATTEMPTS} attempts (many concurrent creates); "
                              "retry")


async def list_batches(request: web.Request) -> web.Response:
    from_, size = _int_param(request, "from") or 0, _int_param(request, "size")
    items = await server.jobs(request).select(KIND, server.namespace(request), LIVY_ID)
    batches = sorted((view(o) for o in items if livy_id(o) is not None), key=lambda b: int(b["id"]))
    size = DEFAULT_SIZE if size is None else size
    chosen = batches[max(0, from_):] if size < 0 else batches[max(0, from_):max(0, from_) + size]
    return web.json_response({"from": from_, "total": len(batches), "sessions": chosen})


async def get(request: web.Request) -> web.Response:
    _, obj = await _the_batch(request)
    return web.json_response(view(obj))


async def get_state(request: web.Request) -> web.Response:
    batch_id, obj = await _the_batch(request)
    return web.json_response({"id": batch_id, "state": state(obj)})


async def get_log(request: web.Request) -> web.Response:
    batch_id, obj = await _the_batch(request)
    st = obj.get("status") or {}
    lines = None
    if st.get("driverPod"):
        lines = await server.jobs(request).pod_log(server.namespace(request), st["driverPod"])
    if lines is None:  # no driver (yet, or any more): what the operator kept of it
        lines = list(st.get("log") or [])
    start, end = page(len(lines), _int_param(request, "from"), _int_param(request, "size"))
    return web.json_response({"id": batch_id, "from": start, "total": len(lines), "log": lines[start:end]})


async def delete(request: web.Request) -> web.Response:
    batch_id, _ = await _the_batch(request)
    await server.jobs(request).delete(KIND, server.namespace(request), name_of(batch_id))
    return web.json_response({"msg": "deleted"})


def register(app: web.Application, gw: server.Gateway) -> None:
    for prefix in ("/batches", "/livy/batches", "/namespaces/{namespace}/livy/batches"):
        app.router.add_post(prefix, create)
        app.router.add_get(prefix, list_batches)
        app.router.add_get(prefix + "/{batch_id}", get)
        app.router.add_get(prefix + "/{batch_id}/state", get_state)
        app.router.add_get(prefix + "/{batch_id}/log", get_log)
        app.router.add_delete(prefix + "/{batch_id}", delete)
    for shape_prefix in ("/batches", "/livy", "/namespaces/"):
        gw.shapes[shape_prefix] = error
