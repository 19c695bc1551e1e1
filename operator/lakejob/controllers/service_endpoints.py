"""The Endpoints of the operator's selectorless Services, written when what they hold changes.

A SparkSession's driver Service and a FlinkJarJob's JobManager Service have no selector (why:
render.endpoints); their reconcilers hold one `EndpointsWriter` each and call `follow` at the end
of every pass with the Service and the pod index's summaries, and `delete` with the Service. The
writer remembers per CR the digest of what it wrote, so a pass whose pods did not change the
Endpoints costs nothing, and one that did costs one write (create, or a PUT carrying the
object's uid, which the apiserver refuses for a same-named successor). After a restart (nothing
remembered) the first pass reads them back when they may exist. Endpoints of that name that are not
the CR's are reported (NotOwned), never replaced; ours go with the CR (ownerReference). One
exception, and not an error: a Service made by an operator before this one still has its selector
(children are created if absent, never rewritten), so Kubernetes' endpoint controller keeps its
Endpoints, and the writer leaves them to it, for that CR's life, and to its deletion with the Service.
"""
from __future__ import annotations

from typing import Any

from lakejob import kube as kubemod
from lakejob.render import endpoints as render

ABSENT = ""  # the uid remembered for Endpoints known not to exist
KUBERNETES = "-"  # ... for Endpoints Kubernetes' endpoint controller keeps (a Service with a selector)
NONE_YET = render.digest({})  # what Endpoints without members hold


def kept_by_kubernetes(existing: dict[str, Any]) -> bool:
    """Endpoints Kubernetes' endpoint controller keeps for a Service with a selector (its labels)."""
    labels = existing["metadata"].get("labels") or {}
    return kubemod.controller_uid(existing) is None and (
        labels.get("endpoints.kubernetes.io/managed-by") == "endpoint-controller"
        or labels.get("endpointslice.kubernetes.io/skip-mirror") == "true")


class EndpointsWriter:
    """One kind's Endpoints: CR uid → (the object's uid or ABSENT, the digest of what it holds)."""

    def __init__(self) -> None:
        self._written: dict[str, tuple[str, bytes]] = {}

    def forget(self, owner_uid: str) -> None:
        self._written.pop(owner_uid, None)

    async def sync(self, kube: kubemod.Kube, owner_uid: str, wanted: dict[str, Any], may_exist: bool) -> None:
        """Make the CR's Endpoints hold what `wanted` does. `may_exist`: they may be there although
        this operator has not written them since it started (the CR had pods before this pass); a
        brand-new CR's are not, so its passes before its pod has an IP cost no request at all."""
        digest = render.digest(wanted)
        known = self._written.get(owner_uid)
        if known is not None and (known[1] == digest or known[0] == KUBERNETES):
            return
        meta = wanted["metadata"]
        if known is None:
            existing = await kube.get(render.API_VERSION, render.KIND, meta["namespace"], meta["name"]) \
                if may_exist else None
            if existing is None:
                known = (ABSENT, NONE_YET)
            elif kept_by_kubernetes(existing):
                self._written[owner_uid] = (KUBERNETES, NONE_YET)
                return
            elif not kubemod.owned_by(existing, wanted):
                raise kubemod.NotOwned(render.KIND, meta["namespace"], meta["name"], kubemod.describe_owner(existing))
            else:
                known = (existing["metadata"]["uid"], render.digest(existing))
            self._written[owner_uid] = known
            if known[1] == digest:
                return
        try:
            stored = None
            if known[0] != ABSENT:
                stored = await kube.replace({**wanted, "metadata": {**meta, "uid": known[0]}})
            if stored is None:  # none there (or ours were deleted behind our back): make them
                stored = await kube.create_object(wanted)
        except kubemod.KubeError as e:
            if e.status != 409:
                raise
            # What we remembered is not what is there (a create whose answer was lost, a same-named
            # successor): forgotten, so they are read back, never the same refused write for ever.
            self._written.pop(owner_uid, None)
            if may_exist:
                raise  # the next pass reads them back (its CR had pods: may_exist)
            await self.sync(kube, owner_uid, wanted, may_exist=True)  # a new CR's: read back now, once
            return
        self._written[owner_uid] = (stored["metadata"]["uid"], digest)

    async def follow(self, kube: kubemod.Kube, owner_uid: str, service: dict[str, Any], pods: list[dict[str, Any]],
                     role: str, may_exist: bool) -> None:
        """`sync` the Endpoints of the CR's `service` (as rendered) to the pod summaries of `role`
        among `pods` (the CR's, from the pod index)."""
        members = [p for p in pods if p["role"] == role]
        await self.sync(kube, owner_uid, render.build_endpoints(service, members), may_exist)

    async def delete(self, kube: kubemod.Kube, owner_uid: str, namespace: str, name: str) -> None:
        """Delete the CR's Endpoints with its Service; a later sync starts afresh. Kubernetes' own
        (an older Service's) go with the Service; anyone else's are reported (NotOwned)."""
        self._written.pop(owner_uid, None)
        await kube.delete_child(render.API_VERSION, render.KIND, namespace, name, owner_uid, leave=kept_by_kubernetes)
