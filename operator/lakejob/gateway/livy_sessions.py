"""Livy's interactive sessions and their statements (`/sessions`, as Apache Livy and pylivy call
them) over SparkSession.

A Livy session is a SparkSession whose spec is the request body (Livy's fields are the kind's),
with two of Livy's defaults made explicit: `kind` pyspark when the body has none (Livy 0.5+'s
sessions take each statement's kind; a pyspark session runs sql statements too) and `queue`
`default` when neither queue nor cluster_name is given (YARN's default queue, where Livy puts a
session; a SparkSession needs one). Its integer id is in its name, `livy-session-<id>`, and label
LIVY_ID, claimed as batches' ids are (lakejob.gateway.ids): per namespace, from 0, surviving
restarts.

Statements run in the session's own pod, in its statement server (lakejob.repl.server, a sidecar
of the driver), reached through the apiserver's Service proxy as the caller: the gateway keeps none
of them, and any replica answers the same. A statement also marks the session active (the
heartbeat annotation, as Livy's statements reset its idle timeout).

Paths, under `/sessions`, `/livy/sessions` and `/namespaces/{namespace}/livy/sessions`:
  POST   …/sessions                          the body → a SparkSession; 201 with the session
  GET    …/sessions?from=&size=              {from, total, sessions: [session…]}, by id
  GET    …/sessions/{id}                     {id, name, appId, owner, proxyUser, kind, state, appInfo, log}
  GET    …/sessions/{id}/state               {id, state}
  GET    …/sessions/{id}/log?from=&size=     the driver's log, paged as Livy pages it
  DELETE …/sessions/{id}                     the SparkSession deleted; {"msg": "deleted"}
  POST   …/sessions/{id}/statements          {code, kind}: 201 the statement (waiting)
  GET    …/sessions/{id}/statements          {total_statements, statements}
  GET    …/sessions/{id}/statements/{sid}    {id, code, state, output, progress, started, completed}
  POST   …/sessions/{id}/statements/{sid}/cancel   {"msg": "canceled"}
Statements are served while the session is idle or busy (400 otherwise, naming its state).
Errors are Livy's {"msg": "…"}. Called by lakejob.gateway.server.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from lakejob.gateway import ids, livy, logs, server
from lakejob.models.sparksession import HEARTBEAT_ANNOTATION, SparkSessionSpec
from lakejob.render import sparksession as render

KIND = "SparkSession"
NAME_PREFIX = "livy-session-"
SCHEME = ids.IdScheme(KIND, livy.LIVY_ID, NAME_PREFIX)
LIVE_STATES = ("idle", "busy")  # the statement server listens (the driver pod is Ready)


def view(obj: dict[str, Any]) -> dict[str, Any]:
    """A session as Livy shows it."""
    st = obj.get("status") or {}
    spec = obj.get("spec") or {}
    return {"id": SCHEME.id_of(obj), "name": spec.get("name"), "appId": st.get("appId"),
            "owner": (obj["metadata"].get("annotations") or {}).get("lakejob.io/owner"),
            "proxyUser": spec.get("proxyUser"), "kind": spec.get("kind"), "state": livy.state(obj),
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}, "log": list(st.get("log") or [])}


def _number(raw: str, what: str) -> int:
    if not raw.isdigit():
        raise server.Refused(404, f"{what} '{raw}' not found.")
    return int(raw)


async def _the_session(request: web.Request) -> tuple[int, dict[str, Any]]:
    session_id = _number(request.match_info["session_id"], "Session")
    obj = await SCHEME.get(server.jobs(request), server.namespace(request), session_id)
    if obj is None:
        raise server.Refused(404, f"Session '{session_id}' not found.")
    return session_id, obj


async def create(request: web.Request) -> web.Response:
    body = await server.json_body(request, "Livy's session request")
    body.setdefault("kind", "pyspark")
    if body.get("queue") is None and body.get("cluster_name") is None:
        body["queue"] = "default"
    spec = server.checked(body, SparkSessionSpec)
    jobs = server.jobs(request)
    created = await ids.create(jobs, SCHEME, server.namespace(request), spec, jobs.owner())
    return web.json_response(view(created), status=201)


async def list_sessions(request: web.Request) -> web.Response:
    from_, size = server.int_param(request, "from") or 0, server.int_param(request, "size")
    items = await server.jobs(request).select(KIND, server.namespace(request), livy.LIVY_ID)
    sessions = sorted((view(o) for o in items if SCHEME.id_of(o) is not None), key=lambda s: int(s["id"]))
    chosen = logs.window(sessions, from_, size)
    return web.json_response({"from": from_, "total": len(sessions), "sessions": chosen})


async def get(request: web.Request) -> web.Response:
    _, obj = await _the_session(request)
    return web.json_response(view(obj))


async def get_state(request: web.Request) -> web.Response:
    session_id, obj = await _the_session(request)
    return web.json_response({"id": session_id, "state": livy.state(obj)})


async def get_log(request: web.Request) -> web.Response:
    session_id, obj = await _the_session(request)
    lines = await logs.driver_lines(server.jobs(request), server.namespace(request), obj)
    start, end = logs.page(len(lines), server.int_param(request, "from"), server.int_param(request, "size"))
    return web.json_response({"id": session_id, "from": start, "total": len(lines), "log": lines[start:end]})


async def delete(request: web.Request) -> web.Response:
    _, obj = await _the_session(request)
    await server.jobs(request).delete(obj)
    return web.json_response({"msg": "deleted"})


async def _statements(request: web.Request, method: str, path: str, body: Any = None,
                      params: dict[str, str] | None = None) -> web.Response:
    """The statement server's answer to `method path`, for a session that has one running."""
    session_id, obj = await _the_session(request)
    state = livy.state(obj)
    if state not in LIVE_STATES:
        raise server.Refused(400, f"Session {session_id} is {state}: statements run while it is idle or busy")
    jobs = server.jobs(request)
    if method == "POST" and path == "statements":
        # Livy's statements are activity: the session's idle timeout starts again.
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        await jobs.merge_patch(obj, {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: now}}})
    status, payload = await jobs.proxy(method, obj["metadata"]["namespace"], render.service_name(obj["metadata"]["name"]),
                                       render.REPL_PORT_NAME, path, body, params)
    return web.json_response(payload, status=status)


async def create_statement(request: web.Request) -> web.Response:
    body = await server.json_body(request, "Livy's statement request: {code, kind}")
    return await _statements(request, "POST", "statements", body)


async def list_statements(request: web.Request) -> web.Response:
    params = {k: request.query[k] for k in ("from", "size") if k in request.query}
    return await _statements(request, "GET", "statements", params=params)


async def get_statement(request: web.Request) -> web.Response:
    sid = _number(request.match_info["statement_id"], "Statement")
    return await _statements(request, "GET", f"statements/{sid}")


async def cancel_statement(request: web.Request) -> web.Response:
    sid = _number(request.match_info["statement_id"], "Statement")
    return await _statements(request, "POST", f"statements/{sid}/cancel")


def register(app: web.Application, gw: server.Gateway) -> None:
    for prefix in ("/sessions", "/livy/sessions", "/namespaces/{namespace}/livy/sessions"):
        app.router.add_post(prefix, create)
        app.router.add_get(prefix, list_sessions)
        app.router.add_get(prefix + "/{session_id}", get)
        app.router.add_get(prefix + "/{session_id}/state", get_state)
        app.router.add_get(prefix + "/{session_id}/log", get_log)
        app.router.add_delete(prefix + "/{session_id}", delete)
        app.router.add_post(prefix + "/{session_id}/statements", create_statement)
        app.router.add_get(prefix + "/{session_id}/statements", list_statements)
        app.router.add_get(prefix + "/{session_id}/statements/{statement_id}", get_statement)
        app.router.add_post(prefix + "/{session_id}/statements/{statement_id}/cancel", cancel_statement)
    gw.shapes["/sessions"] = livy.error
