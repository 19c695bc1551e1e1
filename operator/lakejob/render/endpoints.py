"""Pure builders: the Services whose Endpoints the operator writes itself (a SparkSession's driver
Service, a FlinkJarJob's JobManager Service), and those Endpoints. No I/O.

Why the operator and not Kubernetes: for a Service with a selector, the controller-manager's
endpoint controllers (Endpoints and EndpointSlices) recompute the Service at each change of a pod
it selects by listing every pod of the namespace and matching the selector, and look at every
Service of the namespace at each pod change. With thousands of sessions and Flink jobs in one
namespace that work grows with the square of the live objects, on the same cores as the apiserver
(docs/performance.md, "Selectorless Services"). The operator watches those pods anyway (its pod
index), so a SparkSession's driver Service and a FlinkJarJob's JobManager Service have no selector
and the operator writes their Endpoints: the members Kubernetes would pick (pods with an IP that
have not ended or begun to terminate), on the Service's target ports.

Why headless and publishing addresses that are not Ready: every client of these Services asks for
the pod by name (a session's Spark Connect and REPL clients, TaskManagers, the operator's REST
polls, the apiserver's Service proxy), so a virtual IP would add only its costs: an IP allocated
per job and kube-proxy rewriting its rules at each job's start and end, work that grows with the
jobs (docs/performance.md, "Session 20"); and a client starting beside the pod resolves its name
as soon as it has an IP rather than caching "no such host".

Why Endpoints and not an EndpointSlice: the apiserver's Service proxy (`services/<name>:<port>/proxy`,
which the gateway forwards Livy statements through) still reads Endpoints in Kubernetes 1.34, and
Kubernetes' EndpointSlice mirroring controller turns the Endpoints of a selectorless Service into
the EndpointSlice that CoreDNS and kube-proxy read, at a cost per change that does not grow with
the namespace's pods. One object written by the operator serves all three.

`build_service` is called by render.spark (a session's driver Service) and render.flink;
`build_endpoints` by controllers.service_endpoints (which writes them when they change), with the
Service as those build it and the pods as controllers.pods summarises them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

API_VERSION = "v1"
KIND = "Endpoints"


def build_service(metadata: dict[str, Any], ports: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """A headless Service without a selector, publishing its members before they are Ready, on
    `ports` (name, port; each the pod's own port)."""
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": metadata,
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "ports": [{"name": name, "port": port, "targetPort": port} for name, port in ports]},
    }


def member(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """A pod summary's address (its `ip`, controllers.pods), if it is one: an IP, not ended, not
    being deleted."""
    if not pod.get("ip") or pod.get("deleting") or pod.get("phase") in ("Succeeded", "Failed"):
        return None
    return {"name": pod["name"], "ip": pod["ip"]}


def build_endpoints(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The Endpoints of `service` (a rendered Service manifest: its name, labels, owner, ports)
    holding those of `pods` (summaries) that are members, every one an address (the Service
    publishes them before they are Ready: `build_service`). Named as the Service (as Kubernetes
    requires), with its labels, which the mirrored EndpointSlice carries too."""
    meta, spec = service["metadata"], service["spec"]
    addresses = [{"ip": m["ip"], "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": m["name"]}}
                 for m in filter(None, map(member, pods))]
    subset: dict[str, Any] = {"ports": [{"name": p["name"], "port": p.get("targetPort", p["port"]),
                                         "protocol": p.get("protocol", "TCP")} for p in spec.get("ports", [])],
                              "addresses": addresses}
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta.get("labels", {})),
                     "ownerReferences": meta.get("ownerReferences", [])},
        "subsets": [subset] if addresses else [],
    }


def digest(endpoints: Mapping[str, Any]) -> bytes:
    """A short digest of what the operator sets in Endpoints (the apiserver adds the rest): what the
    writer keeps per CR to tell changed Endpoints from the ones it wrote."""
    what = json.dumps(endpoints.get("subsets") or [], sort_keys=True)
    return hashlib.blake2b(what.encode(), digest_size=8).digest()
