"""Rendering pieces every kind shares: the owner reference, child names, lakejob labels, metadata.

Pure. Used by render/spark.py and the other kinds' renderers, and by controllers.base (to key a
CR by the short name its children carry in their `lakejob.io/name` label).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Self

from lakejob.models.common import PodCustomization, label_value


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
    plus a hash of the whole name (stable, and distinct for names that clean to the same prefix).

    Service names must be DNS-1035 labels (no dots, a letter first) and label values ≤ 63
    characters, while a CR name may contain dots, start with a digit and be 253 characters long.
    """
    clean = re.sub(r"[^a-z0-9-]", "-", name.lower())
    if not clean[:1].isalpha():
        clean = "j" + clean
    if clean == name and len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{clean[:limit - 9].rstrip('-')}-{digest}"


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
    if custom.volumes:
        spec.setdefault("volumes", []).extend(v.model_dump(exclude_none=True) for v in custom.volumes)
    if custom.volumeMounts:
        container.setdefault("volumeMounts", []).extend(m.model_dump(exclude_none=True) for m in custom.volumeMounts)
    if custom.env:
        container.setdefault("env", []).extend(e.model_dump(exclude_none=True) for e in custom.env)
