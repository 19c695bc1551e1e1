"""Rendering pieces every kind shares: the owner reference, child names, lakejob labels, metadata,
and the size check of the objects Kubernetes limits to 1 MiB (`check_size`, `ObjectTooLarge`);
the pod pieces: securityContext, a user's customisation block (`customize`) and read-only root
file systems with emptyDirs where an image writes (`read_only_root`).

Pure. Used by render/spark.py and the other kinds' renderers, and by controllers.base (to key a
CR by the short name its children carry in their `lakejob.io/name` label).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Self

from lakejob.models.common import PodCustomization, label_value
from lakejob.settings import Settings


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns what we render."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}


def short_name(name: str, limit: int = 40) -> str:
    """A DNS-1035 label from a CR name: as it is when short and already one, else a cleaned prefix
    plus `--` and a hash of the whole name (stable, and distinct for names that clean to the same
    prefix).

    Service names must be DNS-1035 labels (no dots, a letter first) and label values ≤ 63
    characters, while a CR name may contain dots, start with a digit and be 253 characters long.
    Injective (up to a 32-bit hash): a name kept as it is never contains `--`, and a hashed one
    always ends in `--` and the hash, so no CR's short name is another's (tests/unit/test_names.py).
    """
    clean = re.sub(r"[^a-z0-9-]", "-", name.lower())
    if not clean[:1].isalpha():
        clean = "j" + clean
    if clean == name and len(name) <= limit and "--" not in name:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    prefix = re.sub(r"-+", "-", clean)[:limit - 10].rstrip("-")
    return f"{prefix}--{digest}"


@dataclass(frozen=True)
class ChildNames:
    """A kind's child names derive from the CR's name only (so a restarted operator finds them);
    each kind's renderer subclasses this with its own names."""

    base: str

    @classmethod
    def of(cls, cr_name: str) -> Self:
        return cls(short_name(cr_name))


def attempt_hash(uid: str, attempt: int) -> str:
    """32 hex digits, stable for one attempt of one CR and new for the next: Spark application IDs
    and Flink JobIDs, so an answer about an earlier attempt is never mistaken for this one's."""
    return hashlib.sha256(f"{uid}/{attempt}".encode()).hexdigest()[:32]


def labels(owner: Owner, base: str, role: str, queue: str | None = None) -> dict[str, str]:
    """The labels of every child: how the operator finds them (kind + name) and what they are."""
    out = {
        "app.kubernetes.io/managed-by": "lakejob",
        "lakejob.io/kind": owner.kind,
        "lakejob.io/name": base,
        "lakejob.io/role": role,
    }
    if queue and label_value(queue):
        out["lakejob.io/queue"] = label_value(queue)
    return out


def meta(name: str, owner: Owner, lbls: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": owner.namespace, "labels": lbls, "ownerReferences": [owner.reference()]}


def security_context(uid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod- and container-level securityContext of every pod lakejob makes: non-root, no privileges."""
    pod = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
           "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return pod, container


def read_only_root(pod: dict[str, Any], containers: list[dict[str, Any]], writable: dict[str, str]) -> None:
    """readOnlyRootFilesystem on `containers`, with an emptyDir (volume name → path in `writable`)
    mounted in each of them where the image writes. Called after `customize`: a path the user's own
    volume is already mounted at keeps that volume (two mounts at one path are refused by the API)."""
    volumes = pod["spec"].setdefault("volumes", [])
    for name, path in writable.items():
        needed = False
        for c in containers:
            if not any(m.get("mountPath") == path for m in c.get("volumeMounts", [])):
                c.setdefault("volumeMounts", []).append({"name": name, "mountPath": path})
                needed = True
        if needed:
            volumes.append({"name": name, "emptyDir": {}})
    for c in containers:
        # A copy: security_context()'s dict may be shared with containers that stay writable.
        c["securityContext"] = {**(c.get("securityContext") or {}), "readOnlyRootFilesystem": True}


def place(pod: dict[str, Any], settings: Settings) -> None:
    """The operator's workload placement (settings.workload_*) under what the pod already has from
    its spec: the spec's nodeSelector keys win, its tolerations come first."""
    spec = pod["spec"]
    if settings.workload_node_selector:
        spec["nodeSelector"] = {**settings.workload_node_selector, **spec.get("nodeSelector", {})}
    if settings.workload_tolerations:
        have = spec.get("tolerations", [])
        spec["tolerations"] = [*have, *(t for t in settings.workload_tolerations if t not in have)]


def customize(pod: dict[str, Any], container: dict[str, Any], custom: PodCustomization | None) -> None:
    """Apply a user's typed pod customisation block (driver:, executor:, …) to a pod and its main container."""
    if custom is None:
        return
    meta, spec = pod["metadata"], pod["spec"]
    # Reserved label keys are ours; the user's extras never overwrite them.
    meta["labels"] = {**(custom.labels or {}), **meta.get("labels", {})}
    if custom.annotations:
        meta["annotations"] = {**meta.get("annotations", {}), **custom.annotations}
    if custom.nodeSelector:
        spec["nodeSelector"] = dict(custom.nodeSelector)
    if custom.tolerations:
        spec["tolerations"] = [t.model_dump(exclude_none=True) for t in custom.tolerations]
    if custom.priorityClassName:
        spec["priorityClassName"] = custom.priorityClassName
    if custom.schedulerName:
        spec["schedulerName"] = custom.schedulerName
    if custom.serviceAccountName:
        spec["serviceAccountName"] = custom.serviceAccountName
    # The host namespaces and securityContext reach here only where the operator's policy allows
    # them (lakejob.policy refuses the spec otherwise).
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if getattr(custom, flag):
            spec[flag] = True
    if custom.hostNetwork:
        # Else the pod resolves names with the node's resolver and the Services (the driver's,
        # the JobManager's) are not found.
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    wanted = custom.securityContext
    if wanted is not None and (wanted.privileged or (wanted.capabilities and wanted.capabilities.add)):
        # A copy: security_context()'s dict may be shared with the pod's other containers.
        sc = dict(container.get("securityContext") or {})
        if wanted.privileged:
            # The API refuses privileged together with allowPrivilegeEscalation: false.
            sc.update(privileged=True, allowPrivilegeEscalation=True)
        if wanted.capabilities and wanted.capabilities.add:
            sc["capabilities"] = {**sc.get("capabilities", {}), "add": list(wanted.capabilities.add)}
        container["securityContext"] = sc
    if custom.volumes:
        spec.setdefault("volumes", []).extend(v.model_dump(exclude_none=True) for v in custom.volumes)
    if custom.volumeMounts:
        container.setdefault("volumeMounts", []).extend(m.model_dump(exclude_none=True) for m in custom.volumeMounts)
    if custom.env:
        container.setdefault("env", []).extend(e.model_dump(exclude_none=True) for e in custom.env)


# The API server refuses a ConfigMap or Secret whose data is larger than 1 MiB (core.MaxSecretSize).
OBJECT_LIMIT_BYTES = 1024 * 1024


class Unrenderable(ValueError):
    """What a spec asks for cannot be rendered with the operator's settings (an object too large, a
    file that cannot be resolved, a version without an image); the message names the field."""


class ObjectTooLarge(Unrenderable):
    """A rendered object is larger than Kubernetes accepts: raised by the builders before any create."""


def check_size(obj: dict[str, Any], filled_by: str, limit: int = OBJECT_LIMIT_BYTES) -> dict[str, Any]:
    """`obj` when its JSON form fits in `limit` bytes (a bound on its data, which is what the API
    server counts), else ObjectTooLarge naming it, its size, the limit and `filled_by` (the spec
    fields that fill it): a clear refusal now instead of the API server's on every pass."""
    # UTF-8 as stored, not \u escapes (json.dumps' default), which would overstate non-ASCII text.
    size = len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > limit:
        meta = obj["metadata"]
        raise ObjectTooLarge(f"{obj['kind']} {meta['namespace']}/{meta['name']} would be {size} bytes, more than "
                             f"the {limit} bytes Kubernetes accepts; it holds {filled_by}: make them smaller")
    return obj


# The API server refuses an object whose annotations, keys and values together, exceed 256 KiB
# (apimachinery's TotalAnnotationSizeLimitB).
ANNOTATIONS_LIMIT_BYTES = 256 * 1024


def check_annotations_size(obj: dict[str, Any], filled_by: str) -> dict[str, Any]:
    """`obj` when its annotations fit in what the API server accepts, else ObjectTooLarge naming it,
    their size, the limit and `filled_by` (the spec fields that fill them)."""
    meta = obj["metadata"]
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               for k, v in (meta.get("annotations") or {}).items())
    if size > ANNOTATIONS_LIMIT_BYTES:
        raise ObjectTooLarge(f"{obj['kind']} {meta['namespace']}/{meta['name']}'s annotations would be {size} bytes, "
                             f"more than the {ANNOTATIONS_LIMIT_BYTES} bytes Kubernetes accepts; they hold "
                             f"{filled_by}: make them smaller")
    return obj
