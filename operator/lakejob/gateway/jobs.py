"""The gateway's Kubernetes edge: lakejob's custom resources and their drivers' logs, always as the
caller (lakejob.gateway.identity.Caller's headers on every request), through the operator's own
client (lakejob.kube.Kube: one connection pool for the whole gateway).

The gateway keeps no state: every answer is read from the apiserver when asked, lists use label
selectors, and an id that must be allocated (Livy's integers) is claimed by creating the object
whose name carries it (the apiserver's AlreadyExists is the lock). Called by the API modules
(lakejob.gateway.livy, …).
"""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lakejob import crds
from lakejob.gateway.identity import Caller
from lakejob.kube import Kube, KubeError, controller_uid, describe_owner, path, register_kind

GROUP_VERSION = f"{crds.GROUP}/{crds.VERSION}"
for _kind in crds.KINDS:  # the gateway runs no controller, which would teach the client these
    register_kind(GROUP_VERSION, _kind.kind, _kind.plural)
LOG_LINES = 100_000  # the most driver log lines one answer pages through (also bounded in bytes by Kube)
LOG_TIMEOUT_S = 20
OWNER = "lakejob.io/owner"  # annotation: who created a job through the gateway (DLI's owner, user_name)


def escape(value: str) -> str:
    """A field selector's value: `\\`, `,` and `=` escaped as the apiserver parses them."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def state_is(field: str, value: str, initial: str) -> list[str]:
    """The field selectors of a state filter: `field=value`, and for the state a job shows before
    the operator's first status (`initial`), `field=` too: the apiserver matches an absent field as
    empty, so a job made a moment ago is listed under the state its answers show."""
    return [f"{field}={escape(value)}", f"{field}="] if value == initial else [f"{field}={escape(value)}"]


def any_of(*alternatives: Sequence[str]) -> list[str]:
    """Field selectors that together match the objects matching one of each group's selectors (a
    selector is an AND; the apiserver has no OR: one list call each, their union)."""
    return [",".join(c) for c in itertools.product(*[a for a in alternatives if a])] or [""]


async def select_any(calls: Jobs, kind: str, namespace: str, selectors: list[str],
                     labels: str | None = None) -> list[dict[str, Any]]:
    """The objects matching any of the field `selectors` (any_of), each once; the lists in parallel."""
    lists = await asyncio.gather(*(calls.select(kind, namespace, labels, fields or None) for fields in selectors))
    return list({obj["metadata"]["name"]: obj for items in lists for obj in items}.values())


def created_ms(obj: dict[str, Any]) -> int:
    """When a job was made, ms since the epoch: its status' create_time, else its creationTimestamp."""
    st = obj.get("status") or {}
    if st.get("create_time"):
        return int(st["create_time"])
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000) if stamp else 0


class Jobs:
    """The calls of one request, made as `caller`."""

    def __init__(self, kube: Kube, caller: Caller) -> None:
        # A caller's own token goes without any credential of the gateway's beside it (a client
        # certificate would authenticate the request as the gateway); an impersonated identity
        # goes with them (impersonating needs the gateway's own right to).
        assert kube.bare is not None or caller.token is None
        self.kube = kube.bare if caller.token is not None and kube.bare is not None else kube
        self.caller = caller

    def owner(self) -> dict[str, str]:
        """The OWNER annotation of a job this caller creates; none for a bearer token, whose user
        the gateway does not know."""
        return {OWNER: self.caller.identity.user} if self.caller.identity is not None else {}

    async def _call(self, method: str, url: str, what: str, body: Any = None,
                    params: dict[str, str] | None = None,
                    content_type: str = "application/json") -> tuple[int, Any]:
        status, payload = await self.kube.request(method, url, body, params=params, content_type=content_type,
                                                  headers=self.caller.headers())
        if status >= 300 and status != 404:
            message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
            reason = payload.get("reason", "") if isinstance(payload, dict) else ""
            raise ApiError(status, reason, message, what)
        return status, payload

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        _, payload = await self._call("POST", path(obj["apiVersion"], obj["kind"], meta["namespace"]),
                                      f"create {obj['kind']} {meta.get('name') or meta.get('generateName', '') + '*'}", obj)
        return payload  # type: ignore[no-any-return]

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        status, payload = await self._call("GET", path(GROUP_VERSION, kind, namespace, name), f"get {kind} {name}")
        return None if status == 404 else payload

    async def select(self, kind: str, namespace: str, labels: Mapping[str, str] | str | None = None,
                   fields: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {}
        if labels:
            params["labelSelector"] = labels if isinstance(labels, str) else ",".join(f"{k}={v}" for k, v in labels.items())
        if fields:
            params["fieldSelector"] = fields
        status, payload = await self._call("GET", path(GROUP_VERSION, kind, namespace), f"list {kind}", params=params)
        return [] if status == 404 else list(payload.get("items") or [])

    async def delete(self, obj: dict[str, Any]) -> bool:
        """Delete the very object `obj` was read as (a uid precondition: a same-named successor made
        in between is never taken for it); False when it is gone already."""
        meta = _ours(obj)
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                   "preconditions": {"uid": meta["uid"]}}
        status, _ = await self._call("DELETE", path(GROUP_VERSION, obj["kind"], meta["namespace"], meta["name"]),
                                     f"delete {obj['kind']} {meta['name']}", options)
        return status != 404

    async def merge_patch(self, obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the very object `obj` was read as (its uid in the patch, which the apiserver
        refuses to change); None when it is gone."""
        meta = _ours(obj)
        body = {**patch, "metadata": {**patch.get("metadata", {}), "uid": meta["uid"]}}
        status, payload = await self._call("PATCH", path(GROUP_VERSION, obj["kind"], meta["namespace"], meta["name"]),
                                           f"patch {obj['kind']} {meta['name']}", body,
                                           content_type="application/merge-patch+json")
        return None if status == 404 else payload

    async def proxy(self, method: str, namespace: str, service: str, port: str, path_: str, body: Any = None,
                    params: dict[str, str] | None = None) -> tuple[int, Any]:
        """A request to a Service's port through the apiserver's Service proxy, as the caller (so
        `services/proxy` RBAC applies): the backend's own status and JSON answer. The apiserver's
        own refusals (RBAC, no endpoint to reach) raise ApiError."""
        url = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path_.lstrip('/')}"
        status, payload = await self.kube.request(method, url, body, params=params, headers=self.caller.headers())
        if status >= 300 and (not isinstance(payload, dict) or payload.get("kind") == "Status"):
            message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
            reason = payload.get("reason", "") if isinstance(payload, dict) else ""
            raise ApiError(status, reason, message, f"{method} {path_} of Service {service}")
        return status, payload

    async def pod_log(self, namespace: str, pod: str) -> list[str] | None:
        """The pod's log lines (its last LOG_LINES, at most Kube's LOG_TAIL_BYTES), None when the pod
        or its kubelet cannot be read; read as the caller, so `pods/log` RBAC applies."""
        return await self.kube.pod_log_tail(namespace, pod, LOG_LINES, LOG_TIMEOUT_S, headers=self.caller.headers())


def _ours(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj`'s metadata, when the vendor API may change it: not when another resource controls it
    (a DagJob's sparkBatch or flinkJarJob task): that one's owner stops or deletes it, else the two
    would fight. Refused as a conflict, naming the owner."""
    meta: dict[str, Any] = obj["metadata"]
    if controller_uid(obj) is not None:
        raise ApiError(409, "Conflict", f"{obj['kind']} {meta['name']} is {describe_owner(obj)}: stop or delete "
                                        "that instead", f"change {obj['kind']} {meta['name']}")
    return meta


class ApiError(KubeError):
    """The apiserver refused the caller's request (403 RBAC, 422 admission, 409 conflict…)."""

    def __init__(self, status: int, reason: str, message: str, what: str) -> None:
        super().__init__(status, message, what)
        self.reason = reason
