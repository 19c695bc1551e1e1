"""What the real-tier e2e tests share: whether the cluster has its real node, the local images'
references (images/build.py), and how a manifest asks for the real node (its label and taint)."""
from __future__ import annotations

import copy
import functools
import json
import os
import sys
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import incluster  # noqa: E402  (hack/incluster.py: the chart from the local images, on the real node)

REAL_NODE = os.environ.get("LAKEJOB_REAL_NODE", "1") != "0"
TOLERATION = incluster.TOLERATION
SELECTOR = incluster.SELECTOR
# The in-cluster gateway's keys file (conftest.incluster_operator): a Livy user, a DLI key, a BatchCompute key.
GATEWAY_KEYS, GATEWAY_USER, GATEWAY_PASSWORD = "lakejob-gateway-keys", "livy:real", "real-password-do-not-print"
GATEWAY_DLI_AK, GATEWAY_DLI_SK, GATEWAY_DLI_USER = "REALDLIACCESSKEY", "real-dli-secret-do-not-print", "dli:real"
GATEWAY_DLI_PROJECT = "0f4c2d1e8b7a4e5f9c3d2b1a0e9f8d7c"
GATEWAY_BC_AK, GATEWAY_BC_SK, GATEWAY_BC_USER = "LTAIrealBatchCompute", "real-bc-secret-do-not-print", "bc:real"


def gateway_keys(namespace: str) -> dict[str, Any]:
    """The Secret of the keys file: Livy user `real` stands for GATEWAY_USER, default `namespace`; the
    DLI key for GATEWAY_DLI_USER, its project GATEWAY_DLI_PROJECT being `namespace`; the BatchCompute
    key for GATEWAY_BC_USER in `namespace`."""
    keys = {"livy": [{"user": "real", "password": GATEWAY_PASSWORD, "as": {"user": GATEWAY_USER, "namespace": namespace}}],
            "dli": [{"accessKey": GATEWAY_DLI_AK, "secretKey": GATEWAY_DLI_SK,
                     "as": {"user": GATEWAY_DLI_USER, "projects": {GATEWAY_DLI_PROJECT: namespace}}}],
            "batchcompute": [{"accessKeyId": GATEWAY_BC_AK, "accessKeySecret": GATEWAY_BC_SK,
                              "as": {"user": GATEWAY_BC_USER, "namespace": namespace}}]}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": GATEWAY_KEYS}, "type": "Opaque",
            "stringData": {"keys.yaml": json.dumps(keys)}}


@functools.cache
def images() -> dict[str, str]:
    """name → reference of every image images/build.py builds (e.g. "spark" → lakejob.local/spark:4.0.1)."""
    return incluster.images.names()


def on_real_node(manifest: dict[str, Any]) -> dict[str, Any]:
    """A pod manifest that tolerates the real node's taint and selects it (a copy)."""
    out = copy.deepcopy(manifest)
    spec = out["spec"]
    spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **SELECTOR}
    spec["tolerations"] = [*spec.get("tolerations", []), TOLERATION]
    return out


def install_chart(kubectl: Any, watch: str, before: Callable[[str], None] | None = None,
                  **extra: Any) -> tuple[str, str]:
    """The chart from the local images on the real node, watching `watch`, with `extra` top-level
    values; (release, namespace). `before(namespace)` runs once the release's namespace exists
    (e.g. to put a Secret the chart mounts there)."""
    ns = kubectl.fresh_namespace("lakejob-sys")
    if before is not None:
        before(ns)
    release = f"lj{uuid.uuid4().hex[:5]}"
    values = incluster.values([watch], retries={"backoffSeconds": 2, "backoffMaxSeconds": 10,
                                                "defaultMaxRetryTimes": 20}, **extra)
    try:
        incluster.install(kubectl.kubeconfig, release, ns, values, timeout_s=180)
    except incluster.InstallError as e:
        pods = kubectl.result("get", "pods", "-n", ns, "-o", "wide").stdout
        raise AssertionError(f"{e}\n{pods}\n{kubectl.events(ns)}") from None
    return release, ns


def uninstall_chart(kubectl: Any, release: str, namespace: str) -> None:
    # Tolerant: the teardown test may have replaced the cluster under this release.
    incluster.uninstall(kubectl.kubeconfig, release, namespace)
    kubectl.ok("delete", "namespace", namespace, "--wait=false")


def wait_endpoints(kubectl: Any, ns: str, service: str, owner_kind: str, ip: str) -> None:
    """The selectorless Service `service` leads to `ip` alone: the Endpoints the operator writes (owned
    by its `owner_kind` CR) and the EndpointSlice Kubernetes mirrors from them (what CoreDNS and
    kube-proxy read)."""
    def agree() -> bool:
        eps = kubectl.get("endpoints", service, ns) or {}
        owners = [r["kind"] for r in eps.get("metadata", {}).get("ownerReferences") or []]
        mine = [a["ip"] for s in eps.get("subsets") or [] for a in s.get("addresses") or []]
        mirrored = [a for s in kubectl.list("endpointslices", ns, f"kubernetes.io/service-name={service}")
                    for e in s.get("endpoints") or [] if e["conditions"].get("ready") for a in e["addresses"]]
        return owners == [owner_kind] and mine == [ip] and mirrored == [ip]

    kubectl.wait_for(agree, f"the Endpoints of {service} and their mirrored EndpointSlice to hold {ip}",
                     timeout=30, namespace=ns)
