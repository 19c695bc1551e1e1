"""`lakejob gateway`: one aiohttp server for the vendors' REST APIs over lakejob's custom resources.

What every API shares lives here: authentication (lakejob.gateway.identity: who the caller is,
before any handler runs), the caller's namespace, and errors in the shape of the API a path
belongs to (each API module registers its routes and its error shape). The gateway holds no state
(lakejob.gateway.jobs); any number of replicas behind one Service answer alike.

Called by lakejob.cli (`lakejob gateway`); tests build the app with `make_app`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from lakejob.gateway import identity, signing
from lakejob.gateway.jobs import ApiError, Jobs
from lakejob.kube import Kube
from lakejob.models.common import describe_errors

log = logging.getLogger("lakejob.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# An API's error body: (HTTP status, the vendor's error code or None, message) → JSON body.
ErrorShape = Callable[[int, str | None, str], dict[str, Any]]


@dataclass
class Gateway:
    kube: Kube
    keys: identity.KeysFile
    default_namespace: str | None = None
    # path prefix → the error shape of the API served under it (longest prefix wins)
    shapes: dict[str, ErrorShape] = field(default_factory=dict)


GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
CALLER: web.RequestKey[identity.Caller] = web.RequestKey("caller", identity.Caller)


class Refused(Exception):
    """A request the gateway answers with an error of its API's shape."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def jobs(request: web.Request) -> Jobs:
    """The Kubernetes calls of this request, made as its caller."""
    caller = request[CALLER]
    return Jobs(gateway(request).kube, caller)


def namespace(request: web.Request) -> str:
    """The namespace a request acts in: the path's (`/namespaces/NS/…`, DLI's project_id by the
    documented rule), else the caller's key's default, else the gateway's."""
    caller = request[CALLER]
    if "project_id" in request.match_info:
        return caller.project_namespace(request.match_info["project_id"])
    ns = request.match_info.get("namespace") or caller.namespace or gateway(request).default_namespace
    if not ns:
        raise Refused(400, "no namespace: use the paths under /namespaces/NAMESPACE/, or give the key a default "
                           "namespace (as.namespace in the keys file), or start the gateway with --namespace")
    return str(ns)


def int_param(request: web.Request, name: str) -> int | None:
    """An integer query parameter (None when absent); a 400 naming it when it is not one."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise Refused(400, f"{name}={value!r}: not an integer") from None


async def json_body(request: web.Request, what: str) -> dict[str, Any]:
    """The request's JSON object (a 400 saying what was expected otherwise)."""
    try:
        body = await request.json()
    except ValueError:
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, f"the body must be a JSON object ({what})")
    return body


async def spec_body(request: web.Request, model: type[BaseModel], what: str) -> dict[str, Any]:
    """The request's JSON object, checked by the kind's own rules before anything is created (a
    400 naming every field that breaks one); returned as it came, to be the resource's spec."""
    return checked(await json_body(request, what), model)


def checked(body: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """`body`, once the kind's own rules accept it as a spec (a 400 naming every field that breaks one)."""
    try:
        model.model_validate(body)
    except ValidationError as e:
        raise Refused(400, describe_errors(e)) from None
    return body


async def _authenticate(request: web.Request, body: bytes) -> identity.Caller:
    header = request.headers.get("Authorization", "")
    scheme = header.split(None, 1)[0].lower() if header else ""
    gw = gateway(request)
    if scheme == "bearer":
        return identity.bearer_caller(header)
    if scheme == "basic":
        return identity.basic_caller(header, gw.keys.keys())
    if header.startswith(signing.SIGNED_PREFIXES):
        req = signing.SignedRequest(method=request.method, path=request.rel_url.raw_path,
                                    query=request.rel_url.raw_query_string, headers=request.headers, body=body)
        return identity.signed_caller(req, gw.keys.keys(), datetime.now(timezone.utc))
    raise identity.Unauthenticated("no credentials: send a Kubernetes bearer token, Livy's basic auth or the "
                                   "vendor's request signature" if not header else "unsupported Authorization scheme")


def _shape(request: web.Request) -> ErrorShape:
    shapes = gateway(request).shapes
    best = max((p for p in shapes if request.path.startswith(p)), key=len, default=None)
    return shapes[best] if best is not None else (lambda status, code, message: {"error": message})


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, then run the handler; every failure in the shape of the path's API."""
    if request.path == "/healthz":
        return await handler(request)
    shape = _shape(request)
    try:
        body = await request.read()
        try:
            request[CALLER] = await _authenticate(request, body)
        except identity.Unauthenticated as e:
            raise Refused(401, f"not authenticated: {e}", "Unauthenticated") from None
        return await handler(request)
    except Refused as e:
        headers = {"WWW-Authenticate": 'Basic realm="lakejob"'} if e.status == 401 else None
        return web.json_response(shape(e.status, e.code, e.message), status=e.status, headers=headers)
    except ApiError as e:
        # The apiserver's verdict on the caller's request, passed on with its own words: 403 names
        # the identity and the verb it lacks, 422 the field admission refused.
        status = e.status if e.status in (400, 403, 404, 409, 422, 429) else 502
        return web.json_response(shape(status, e.reason or None, e.message), status=status)
    except (asyncio.TimeoutError, OSError) as e:
        log.warning("%s %s: the Kubernetes API did not answer: %s", request.method, request.path, e)
        return web.json_response(shape(503, None, "the Kubernetes API did not answer; retry"), status=503)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(gw: Gateway, apis: list[Callable[[web.Application, Gateway], None]]) -> web.Application:
    """The app: the gateway, /healthz, and each API's routes (`api(app, gw)` adds them and its
    error shape)."""
    app = web.Application(middlewares=[middleware], client_max_size=16 * 1024 * 1024)
    app[GATEWAY] = gw
    app.router.add_get("/healthz", healthz)
    for api in apis:
        api(app, gw)
    return app


def serve(port: int, keys_path: str | None, default_namespace: str | None) -> None:
    from lakejob.gateway import batchcompute, dli, dli_flink, dli_sessions, livy, livy_sessions

    async def start() -> web.Application:
        kube = await Kube.connect()
        gw = Gateway(kube=kube, keys=identity.KeysFile(keys_path), default_namespace=default_namespace)
        gw.keys.keys()  # a broken keys file stops the start, naming the field
        app = make_app(gw, [livy.register, livy_sessions.register, dli.register, dli_sessions.register,
                                dli_flink.register, batchcompute.register])

        async def close(app: web.Application) -> None:
            await kube.close()

        app.on_cleanup.append(close)
        return app

    web.run_app(start(), port=port, access_log=None, print=lambda text: log.info("%s", text))
