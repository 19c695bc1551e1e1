"""The async Kubernetes API edge: create-if-absent, delete, status patches, Events, logs.

Everything in lakejob that talks to the apiserver goes through one `Kube` object, made once at
start-up (`Kube.connect`) and shared by all handlers, so there is one HTTP connection pool
(aiohttp) for the whole operator. Credentials come from the standard resolution: the in-cluster
service account, else $KUBECONFIG / ~/.kube/config (lakejob.credentials).

Bodies travel as plain dicts: the render functions build them, and responses are used only for
the few fields we need, so nothing is (de)serialised into generated model classes (that costs
more CPU than the request itself at burst rates).
"""
from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from dataclasses import dataclass, replace
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from multidict import CIMultiDict

from lakejob import credentials

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
    ("v1", "Endpoints"): ("/api/v1", "endpoints"),
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


LOG_TAIL_BYTES = 1024 * 1024  # the most of a pod's log tail the operator holds at once


class KubeError(Exception):
    """The apiserver refused a request: its HTTP status, its message, and which request it was."""

    def __init__(self, status: int, message: str, what: str = ""):
        super().__init__(f"{what}: {status} {message}" if what else f"{status}: {message}")
        self.status = status
        self.message = message
        self.what = what  # e.g. "create Pod etl-driver-1"

    @property
    def transient(self) -> bool:
        """Worth retrying as it is: a conflict, throttling, or the server's own trouble. Any other
        4xx is a rejection that the same request will meet again."""
        return self.status in (409, 429) or self.status >= 500


class NotOwned(KubeError):
    """An object with our child's name exists and is not ours: it is reported, never patched or deleted."""

    def __init__(self, kind: str, namespace: str, name: str, owner: str):
        super().__init__(409, f"{kind} {namespace}/{name} exists and is not this object's child ({owner})",
                         f"create {kind} {name}")
        self.kind, self.name, self.owner = kind, name, owner

    @property
    def transient(self) -> bool:
        return False


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The UID of the object's controller (the ownerReference with controller: true), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owned_by(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Is `existing` the object `wanted` describes, as far as ownership goes? With an owner: the same
    controller UID. Without one (the namespace-wide driver RBAC): our managed-by label."""
    uid = controller_uid(wanted)
    if uid is not None:
        return controller_uid(existing) == uid
    labels = (existing.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/managed-by") == "lakejob"


def describe_owner(existing: Mapping[str, Any]) -> str:
    for ref in (existing.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return f"controlled by {ref.get('kind')} {ref.get('name')} uid {ref.get('uid')}"
    return "not made by lakejob"


def _merge(defaults: dict[str, str], extra: Sequence[tuple[str, str]]) -> CIMultiDict[str]:
    merged = CIMultiDict(defaults)
    for name in {n for n, _ in extra}:
        merged.popall(name, None)
    for name, value in extra:
        merged.add(name, value)
    return merged


# The most connections to the apiserver at once (requests beyond wait for one). Each TLS connection
# holds asyncio's 256 KiB read buffer and OpenSSL's state, about 0.3 MiB: a pool of 256 reached 244
# open connections in a 1,000-CR burst, most of the operator's memory beyond its CR bodies
# (tracemalloc, docs/performance.md). The apiserver's CPU, not the number of requests in flight,
# bounds a burst on this machine; 64 is the default number of concurrent reconcile passes.
POOL_CONNECTIONS = 64


@dataclass
class Kube:
    server: str
    session: aiohttp.ClientSession
    token_file: str | None = None
    _token: str | None = None
    _token_read: float = 0.0
    # Leader election's fence (lakejob.leader.Elector.fence): called before every request that
    # writes; it ends the process when this replica may no longer be the leader.
    fence: Callable[[], None] | None = None
    # The same server with no credentials of ours (no client certificate, no token): what the
    # gateway sends a caller's own bearer token through, so that only the caller's token counts.
    bare: Kube | None = None

    @classmethod
    async def connect(cls) -> Kube:
        info = await credentials.connection_info()

        def session(ctx: ssl.SSLContext) -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(ssl=ctx, limit=POOL_CONNECTIONS)
            return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))

        token_file = str(credentials.SERVICE_ACCOUNT / "token") if credentials.in_cluster() else None
        kube = cls(server=str(info.server).rstrip("/"), session=session(info.as_ssl_context()), token_file=token_file)
        bare = replace(info, certificate_path=None, certificate_data=None, private_key_path=None,
                                   private_key_data=None)
        kube.bare = cls(server=kube.server, session=session(bare.as_ssl_context()))
        if info.token and not token_file:
            kube._token = info.token
        return kube

    async def close(self) -> None:
        await self.session.close()
        if self.bare is not None:
            await self.bare.close()

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
                      timeout: float | None = None, headers: Sequence[tuple[str, str]] = ()) -> tuple[int, Any]:
        """One request; `headers` replace the defaults of their names (a name may repeat:
        Impersonate-Group). The gateway's: the caller's own token, or impersonation of the caller's
        identity (lakejob.gateway.identity)."""
        if self.fence is not None and method != "GET":
            self.fence()
        data = None if body is None else json.dumps(body)
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = aiohttp.ClientTimeout(total=timeout)
        async with self.session.request(method, self.server + url_path, data=data, params=params,
                                        headers=_merge(self._headers(content_type), headers), **kw) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text) if text else None
            except json.JSONDecodeError:
                payload = text
            return resp.status, payload

    @staticmethod
    def _raise(status: int, payload: Any, what: str) -> None:
        message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
        raise KubeError(status, message, what)

    async def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; True if created, False if our own copy already existed (creates are
        idempotent by name). An object of that name that is not ours raises NotOwned."""
        meta = obj["metadata"]
        what = f"create {obj['kind']} {meta['name']}"
        status, payload = await self.request("POST", path(obj["apiVersion"], obj["kind"], meta["namespace"]), obj)
        if status == 409 and isinstance(payload, dict) and payload.get("reason") == "AlreadyExists":
            if obj["kind"] == "Secret":
                # Never read (the operator may create Secrets, not get them): a same-named Secret
                # is used as it is, and never patched or deleted either (the GC only removes ours).
                return False
            existing = await self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
            if existing is None:  # deleted in between: the next pass creates it
                raise KubeError(409, "it was being deleted", what)
            if not owned_by(existing, obj):
                raise NotOwned(obj["kind"], meta["namespace"], meta["name"], describe_owner(existing))
            return False
        if status >= 300:
            self._raise(status, payload, what)
        return True

    async def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` and return it as stored (its uid); one of that name already there is a
        KubeError 409 (transient: the caller's next pass looks at it)."""
        meta = obj["metadata"]
        status, payload = await self.request("POST", path(obj["apiVersion"], obj["kind"], meta["namespace"]), obj)
        if status >= 300:
            self._raise(status, payload, f"create {obj['kind']} {meta['name']}")
        return payload  # type: ignore[no-any-return]

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """PUT `obj` over an existing one that is ours, and return it as stored; None if it is gone.
        With metadata.uid in `obj`, the apiserver refuses (409) to replace a same-named successor."""
        meta = obj["metadata"]
        status, payload = await self.request("PUT", path(obj["apiVersion"], obj["kind"], meta["namespace"],
                                                         meta["name"]), obj)
        if status == 404:
            return None
        if status >= 300:
            self._raise(status, payload, f"replace {obj['kind']} {meta['name']}")
        return payload  # type: ignore[no-any-return]

    async def delete(self, api_version: str, kind: str, namespace: str, name: str,
                     propagation: str = "Background", uid: str | None = None) -> bool:
        """Delete; True if it was there. Background propagation lets the GC take dependents. With
        `uid`, only that very object (a precondition the apiserver checks): a same-named successor
        is never taken for it."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        status, payload = await self.request("DELETE", path(api_version, kind, namespace, name), options)
        if status == 404:
            return False
        if status == 409 and uid:  # the precondition failed: that object is gone already
            return False
        if status >= 300:
            self._raise(status, payload, f"delete {kind} {name}")
        return True

    async def delete_child(self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str, *,
                           leave: Callable[[dict[str, Any]], bool] | None = None) -> bool:
        """Delete a child by name only if it is ours (its controller is `owner_uid`); an object of
        that name that is not ours is left alone and raises NotOwned, unless `leave` says it is one
        to leave alone quietly (one Kubernetes keeps for us). True if it was deleted."""
        existing = await self.get(api_version, kind, namespace, name)
        if existing is None or (leave is not None and leave(existing)):
            return False
        if controller_uid(existing) != owner_uid:
            raise NotOwned(kind, namespace, name, describe_owner(existing))
        return await self.delete(api_version, kind, namespace, name, uid=existing["metadata"]["uid"])

    async def patch_child(self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str,
                          patch: dict[str, Any]) -> bool:
        """Merge-patch a child only if it is ours; False if it is gone, NotOwned if it is not ours.
        The patch carries the child's UID, which the apiserver refuses to change: a same-named
        successor created in between is refused, not patched."""
        existing = await self.get(api_version, kind, namespace, name)
        if existing is None:
            return False
        if controller_uid(existing) != owner_uid:
            raise NotOwned(kind, namespace, name, describe_owner(existing))
        body = {**patch, "metadata": {**patch.get("metadata", {}), "uid": existing["metadata"]["uid"]}}
        status, payload = await self.request("PATCH", path(api_version, kind, namespace, name), body,
                                             content_type="application/merge-patch+json")
        if status == 404:
            return False
        if status >= 300:
            self._raise(status, payload, f"patch {kind} {name}")
        return True

    async def watch_one(self, api_version: str, kind: str, namespace: str, name: str, resource_version: str,
                        timeout_s: int = 300) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """The watch events (type, object) of one object after `resource_version`, until the
        apiserver ends the stream (at most `timeout_s`); an ERROR event (e.g. 410 Gone: that
        version is compacted away) is yielded like the others. Called by lakejob.submit (--watch)."""
        params = {"watch": "1", "fieldSelector": f"metadata.name={name}", "resourceVersion": resource_version,
                  "timeoutSeconds": str(timeout_s)}
        async with self.session.get(self.server + path(api_version, kind, namespace), params=params,
                                    headers=self._headers(),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_s + 30)) as resp:
            if resp.status >= 300:
                self._raise(resp.status, await resp.text(), f"watch {kind} {name}")
            # One event a line; read in chunks, not readline(): an object may outgrow its line limit.
            pending = b""
            async for chunk in resp.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        status, payload = await self.request("GET", path(api_version, kind, namespace, name))
        if status == 404:
            return None
        if status >= 300:
            self._raise(status, payload, f"get {kind} {name}")
        return payload  # type: ignore[no-any-return]

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status_patch: dict[str, Any]) -> int:
        """Merge-patch the status subresource (None values delete keys); returns the new resourceVersion."""
        status, payload = await self.request(
            "PATCH", path(api_version, kind, namespace, name, "status"), {"status": status_patch},
            content_type="application/merge-patch+json")
        if status >= 300:
            self._raise(status, payload, f"write the status of {kind} {name}")
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

    async def failed_creates(self, namespace: str, kind: str) -> dict[str, str]:
        """The newest FailedCreate Event's message for each object of this kind in the namespace that
        has one, by the object's UID (a controller that cannot create its pods says why there, and
        only there). One LIST for the whole namespace, however many objects are asked about."""
        status, payload = await self.request(
            "GET", path("v1", "Event", namespace),
            params={"fieldSelector": f"reason=FailedCreate,involvedObject.kind={kind}"})
        if status >= 300 or not isinstance(payload, dict):
            return {}
        newest: dict[str, tuple[str, str]] = {}  # uid → (when, message)
        for event in payload.get("items") or []:
            uid = (event.get("involvedObject") or {}).get("uid")
            when = event.get("lastTimestamp") or event.get("eventTime") or ""
            if uid and event.get("message") and (uid not in newest or when >= newest[uid][0]):
                newest[uid] = (when, str(event["message"]))
        return {uid: message for uid, (_, message) in newest.items()}

    async def pod_log_tail(self, namespace: str, name: str, lines: int, timeout: float,
                           headers: Sequence[tuple[str, str]] = ()) -> list[str] | None:
        """The last `lines` lines of a pod's log, or None when the kubelet can't be reached in time
        (or the pod is not there). Read as a stream keeping only the last LOG_TAIL_BYTES: a driver
        that printed megabytes per line never costs the operator more memory than that."""
        try:
            async with self.session.get(self.server + path("v1", "Pod", namespace, name, "log"),
                                        params={"tailLines": str(lines)},
                                        headers=_merge(self._headers(), headers),
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status >= 300:
                    return None
                tail = b""
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    tail = (tail + chunk)[-LOG_TAIL_BYTES:]
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None
        return tail.decode(errors="replace").splitlines()[-lines:]
