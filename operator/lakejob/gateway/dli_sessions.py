"""DLI's Spark session API (`/v2.0/{project_id}/sessions`, the seed's "Creating a Session") over
SparkSession.

A DLI session is a SparkSession whose spec is the request body as it came (the kind takes DLI's
fields: `kind`, `cluster_name`, `sc_type`, packages, sizing). Its id is the SparkSession's name: a
fresh UUID when the gateway creates it (as DLI's), the name as it is for one made with kubectl.
The project's namespace as for batches (lakejob.gateway.dli).

  POST   …/sessions                    create; 200 with the session (the seed's Table 3)
  GET    …/sessions?from=&size=        {from, total, sessions}: the project's, newest first
  GET    …/sessions/{session_id}       the session
  GET    …/sessions/{session_id}/state {id, state}
  DELETE …/sessions/{session_id}       stop: spec.suspend (shutting_down, then success; it stays
                                       listed); {"msg": "deleted"}
Errors are DLI's (lakejob.gateway.dli.error). Called by lakejob.gateway.server.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from lakejob.gateway import dli, jobs, logs, server
from lakejob.models.sparksession import SparkSessionSpec

KIND = "SparkSession"
PREFIX = "/v2.0/{project_id}/sessions"


def view(obj: dict[str, Any]) -> dict[str, Any]:
    """A session as DLI shows it (Table 3)."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    created = jobs.created_ms(obj)
    return {"id": meta.get("name"), "appId": st.get("appId"), "name": spec.get("name"),
            "owner": (meta.get("annotations") or {}).get(jobs.OWNER), "proxyUser": spec.get("proxyUser"),
            "state": st.get("state") or "starting", "kind": spec.get("kind"), "log": list(st.get("log") or []),
            "sc_type": st.get("sc_type") or spec.get("sc_type") or "A",
            "cluster_name": spec.get("cluster_name") or spec.get("queue"),
            "create_time": created, "update_time": int(st.get("update_time") or created)}


async def _the_session(request: web.Request) -> dict[str, Any]:
    session_id = request.match_info["session_id"]
    obj = await server.jobs(request).get(KIND, server.namespace(request), session_id)
    if obj is None:
        raise server.Refused(404, f"The session {session_id} does not exist.")
    return obj


async def create(request: web.Request) -> web.Response:
    body = await server.spec_body(request, SparkSessionSpec, "DLI's session request")
    return web.json_response(view(await dli.create_named(request, KIND, body)))


async def list_sessions(request: web.Request) -> web.Response:
    from_, size = server.int_param(request, "from") or 0, server.int_param(request, "size")
    items = await server.jobs(request).select(KIND, server.namespace(request))
    sessions = sorted((view(o) for o in items), key=lambda s: (s["create_time"], s["id"]), reverse=True)
    chosen = logs.window(sessions, from_, size)
    return web.json_response({"from": from_, "total": len(sessions), "sessions": chosen})


async def get(request: web.Request) -> web.Response:
    return web.json_response(view(await _the_session(request)))


async def get_state(request: web.Request) -> web.Response:
    s = view(await _the_session(request))
    return web.json_response({"id": s["id"], "state": s["state"]})


async def stop(request: web.Request) -> web.Response:
    obj = await _the_session(request)
    await server.jobs(request).merge_patch(obj, {"spec": {"suspend": True}})
    return web.json_response({"msg": "deleted"})


def register(app: web.Application, gw: server.Gateway) -> None:
    app.router.add_post(PREFIX, create)
    app.router.add_get(PREFIX, list_sessions)
    app.router.add_get(PREFIX + "/{session_id}", get)
    app.router.add_get(PREFIX + "/{session_id}/state", get_state)
    app.router.add_delete(PREFIX + "/{session_id}", stop)
