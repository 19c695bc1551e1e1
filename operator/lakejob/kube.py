"""The async Kubernetes API edge: create-if-absent, delete, status patches, Events, logs.

Everything in lakejob that talks to the apiserver goes through one `Kube` object, made once at
start-up (`Kube.connect`) and shared by all handlers, so there is one HTTP connection pool
(aiohttp) for the whole operator. Credentials come from the standard resolution: the in-cluster
service account, else $KUBECONFIG / ~/.kube/config (parsed by kubernetes_asyncio's loader).

Bodies travel as plain dicts: the render functions build them, and responses are used only for
the few fields we need, so nothing is (de)serialised into generated model classes (that costs
more CPU than the request itself at burst rates).
"""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import Configuration

# apiVersion/kind → (URL prefix, plural). Only the kinds lakejob creates.
_PATHS: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Pod"): ("/api/v1", "pods"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts"),
    ("v1", "Event"): ("/api/v1", "events"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs"),
}


def register_kind(api_version: str, kind: str, plural: str) -> None:
    """Teach the client a custom resource kind (called by lakejob.crds' KINDS at import)."""
    _PATHS[(api_version, kind)] = (f"/apis/{api_version}", plural)


def path(api_version: str, kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    prefix, plural = _PATHS[(api_version, kind)]
    p = f"{prefix}/namespaces/{namespace}/{plural}"
    if name:
        p += f"/{name}"
    if sub:
        p += f"/{sub}"
    return p


class KubeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass
class Kube:
    server: str
    session: aiohttp.ClientSession
    token_file: str | None = None
    _token: str | None = None
    _token_read: float = 0.0

    @classmethod
    async def connect(cls) -> Kube:
        cfg = Configuration()
        token_file = None
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
        except k8s_config.ConfigException:
            # Read $KUBECONFIG now, not at import (the loader's default is frozen when imported).
            await k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None,
                                              client_configuration=cfg)
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        # Many concurrent creates in a burst: a generous pool, as kopf's own client uses.
        connector = aiohttp.TCPConnector(ssl=ctx, limit=256)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
        kube = cls(server=str(cfg.host).rstrip("/"), session=session, token_file=token_file)
        bearer = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if bearer and not token_file:
            kube._token = bearer.removeprefix("Bearer ").strip()
        return kube

    async def close(self) -> None:
        await self.session.close()

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.token_file and time.monotonic() - self._token_read > 60:
            # Bound service-account tokens rotate; re-read the projected file every minute.
            with open(self.token_file) as f:
                self._token = f.read().strip()
            self._token_read = time.monotonic()
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def request(self, method: str, url_path: str, body: Any = None, *,
                      content_type: str = "application/json", params: dict[str, str] | None = None,
                      timeout: float | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = aiohttp.ClientTimeout(total=timeout)
        async with self.session.request(method, self.server + url_path, data=data, params=params,
                                        headers=self._headers(content_type), **kw) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text) if text else None
            except json.JSONDecodeError:
                payload = text
            return resp.status, payload

    @staticmethod
    def _raise(status: int, payload: Any) -> None:
        message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
        raise KubeError(status, message)

    async def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; True if created, False if it already existed (creates are idempotent by name)."""
        meta = obj["metadata"]
        status, payload = await self.request("POST", path(obj["apiVersion"], obj["kind"], meta["namespace"]), obj)
        if status == 409 and isinstance(payload, dict) and payload.get("reason") == "AlreadyExists":
            return False
        if status >= 300:
            self._raise(status, payload)
        return True

    async def replace(self, obj: dict[str, Any]) -> None:
        """PUT `obj` over the existing one (no resourceVersion: last writer wins, as we own it)."""
        meta = obj["metadata"]
        status, payload = await self.request("PUT", path(obj["apiVersion"], obj["kind"], meta["namespace"],
                                                         meta["name"]), obj)
        if status >= 300:
            self._raise(status, payload)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str,
                     propagation: str = "Background") -> bool:
        """Delete; True if it was there. Background propagation lets the GC take dependents."""
        status, payload = await self.request(
            "DELETE", path(api_version, kind, namespace, name),
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation})
        if status == 404:
            return False
        if status >= 300:
            self._raise(status, payload)
        return True

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        status, payload = await self.request("GET", path(api_version, kind, namespace, name))
        if status == 404:
            return None
        if status >= 300:
            self._raise(status, payload)
        return payload  # type: ignore[no-any-return]

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status_patch: dict[str, Any]) -> int:
        """Merge-patch the status subresource (None values delete keys); returns the new resourceVersion."""
        status, payload = await self.request(
            "PATCH", path(api_version, kind, namespace, name, "status"), {"status": status_patch},
            content_type="application/merge-patch+json")
        if status >= 300:
            self._raise(status, payload)
        return int(payload["metadata"]["resourceVersion"])

    async def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about `obj` (best effort: an Event is never worth failing a reconcile)."""
        meta = obj["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "type": type_, "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": "lakejob"}, "reportingComponent": "lakejob.io/operator",
        }
        try:
            await self.create(event)
        except (KubeError, aiohttp.ClientError, asyncio.TimeoutError):
            pass

    async def pod_log_tail(self, namespace: str, name: str, lines: int, timeout: float) -> list[str] | None:
        """The last `lines` lines of a pod's log, or None when the kubelet can't be reached in time."""
        try:
            status, payload = await self.request(
                "GET", path("v1", "Pod", namespace, name, "log"), params={"tailLines": str(lines)}, timeout=timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None
        if status >= 300 or not isinstance(payload, str):
            return None
        return payload.splitlines()[-lines:]
