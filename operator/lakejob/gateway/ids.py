"""Integer ids for the APIs whose ids a resource name cannot be (Livy's batch ids, DLI's Flink
job_id): per namespace and kind, from FIRST, each the next after the largest in use, carried in
the resource's name (`<prefix><id>`) and a label. An id is claimed by creating the object of that
name: the apiserver's AlreadyExists is the lock, so two gateway replicas never hand out one id, and
ids survive any restart with nothing stored but the objects themselves. Called by
lakejob.gateway.livy and lakejob.gateway.dli_flink.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lakejob.gateway import server
from lakejob.gateway.jobs import GROUP_VERSION, ApiError, Jobs

CLAIM_ATTEMPTS = 20  # ids tried before giving up when other creators keep taking them


@dataclass(frozen=True)
class IdScheme:
    kind: str
    label: str  # holds the id
    prefix: str  # the name is prefix + id
    first: int = 0

    def name_of(self, value: int) -> str:
        return f"{self.prefix}{value}"

    def id_of(self, obj: dict[str, Any]) -> int | None:
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(self.label, "")
        return int(value) if value.isdigit() else None

    async def get(self, jobs: Jobs, namespace: str, value: int) -> dict[str, Any] | None:
        obj = await jobs.get(self.kind, namespace, self.name_of(value))
        return obj if obj is not None and self.id_of(obj) == value else None


# (scheme, namespace) → the id this process tries next: one past the last it handed out. Only a
# hint, never the truth: when another replica has moved on, the create meets AlreadyExists and the
# ids in use are listed again. It spares a list of every object per create.
_next: dict[tuple[IdScheme, str], int] = {}


async def create(jobs: Jobs, scheme: IdScheme, namespace: str, spec: dict[str, Any],
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Create the resource under the next free id of `scheme` in `namespace`; the created object."""
    key = (scheme, namespace)
    for _ in range(CLAIM_ATTEMPTS):
        if key not in _next:
            taken = [i for i in map(scheme.id_of, await jobs.select(scheme.kind, namespace, scheme.label))
                     if i is not None]
            # Another request of this process may have moved on while this one listed.
            _next[key] = max(max(taken, default=scheme.first - 1) + 1, _next.get(key, scheme.first))
        # Taken and moved on in one step (no await between): no two requests here try one id.
        value = _next[key]
        _next[key] = value + 1
        obj = {"apiVersion": GROUP_VERSION, "kind": scheme.kind,
               "metadata": {"name": scheme.name_of(value), "namespace": namespace,
                            "labels": {scheme.label: str(value), "app.kubernetes.io/created-by": "lakejob-gateway"},
                            **({"annotations": annotations} if annotations else {})},
               "spec": spec}
        try:
            return await jobs.create(obj)
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                _next.pop(key, None)  # another replica has moved on: list again, take the next after its
                continue
            raise
    raise server.Refused(503, f"could not claim an id in {CLAIM_ATTEMPTS} attempts (many concurrent creates); retry")
