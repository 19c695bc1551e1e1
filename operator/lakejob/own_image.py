"""Which image the containers the operator starts from its own image run (`fetch`, `upload`).

lakejob.operator's start-up handler calls `resolve` once, before any reconciler exists, and hands
the settings it returns to every reconciler. An explicit LAKEJOB_FETCHER_IMAGE wins. Empty (the
chart's and deploy/'s default) means the image of the operator's own container, read from its own
Pod (POD_NAME and POD_NAMESPACE from the downward API): an image set once, by `helm --set
image.tag=…`, a kustomize `images:` override or a registry mirror's admission webhook, then
reaches every container lakejob starts, not only the operator's. Outside a pod (`lakejob run` on
a workstation, the e2e tests) it is the released image.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from lakejob.kube import KubeError
from lakejob.settings import RELEASED_IMAGE, Settings

log = logging.getLogger("lakejob")

# The chart's and deploy/'s name for the operator's container; a pod with one container needs none.
CONTAINER = "operator"


class PodReader(Protocol):
    """The one call this module makes (lakejob.kube.Kube has it; tests pass a fake)."""

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...


class OwnImageError(Exception):
    """The operator's own image could not be learnt; the message says what to set instead."""


def container_image(pod: Mapping[str, Any], container: str = CONTAINER) -> str:
    """The image of `container` in the pod (or of its only container, whatever its name)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    named = [c for c in containers if c.get("name") == container]
    chosen = named or (containers if len(containers) == 1 else [])
    if not chosen or not chosen[0].get("image"):
        names = ", ".join(str(c.get("name")) for c in containers) or "none"
        raise OwnImageError(f"pod {pod.get('metadata', {}).get('name')}: no container named {container!r} "
                            f"(containers: {names}) to take the image from: set LAKEJOB_FETCHER_IMAGE")
    return str(chosen[0]["image"])


async def resolve(settings: Settings, kube: PodReader, env: Mapping[str, str]) -> Settings:
    """`settings` with fetcher_image filled in: as set, else the own pod's, else the released image.

    Raises OwnImageError when the operator runs in a pod it cannot read (no RBAC, deleted): starting
    with a guessed image would fail every job's fetch later, far from the cause. A transient API
    error (5xx, 429) propagates as the KubeError it is."""
    if settings.fetcher_image:
        log.info("fetch/upload containers run %s (LAKEJOB_FETCHER_IMAGE)", settings.fetcher_image)
        return settings
    name, namespace = env.get("POD_NAME", ""), env.get("POD_NAMESPACE", "")
    if not (name and namespace):
        log.info("fetch/upload containers run %s: LAKEJOB_FETCHER_IMAGE is empty and this is not a pod "
                 "(no POD_NAME/POD_NAMESPACE), so the released image", RELEASED_IMAGE)
        return settings.model_copy(update={"fetcher_image": RELEASED_IMAGE})
    try:
        pod = await kube.get("v1", "Pod", namespace, name)
    except KubeError as e:
        if e.transient:  # the apiserver's own trouble: the caller's retry may succeed
            raise
        # e.g. 403: no get on pods in the operator's own namespace
        raise OwnImageError(f"cannot read my own pod {namespace}/{name} to learn my image ({e}): grant get "
                            "on pods in my namespace or set LAKEJOB_FETCHER_IMAGE") from e
    if pod is None:
        raise OwnImageError(f"my own pod {namespace}/{name} does not exist (POD_NAME/POD_NAMESPACE wrong?): "
                            "set LAKEJOB_FETCHER_IMAGE")
    image = container_image(pod)
    log.info("fetch/upload containers run %s: my own container's image (pod %s/%s)", image, namespace, name)
    return settings.model_copy(update={"fetcher_image": image})
