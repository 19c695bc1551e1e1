"""Where lakejob's API credentials come from: one kopf.ConnectionInfo for kopf and for lakejob.kube.

In a pod: the service account, at KUBERNETES_SERVICE_HOST/PORT as client-go has it (no cluster DNS
needed); lakejob.kube re-reads its token file as it rotates. Elsewhere the kubeconfig ($KUBECONFIG,
~/.kube/config): tokens, client certificates and basic auth through kopf's own plain loader; only a
user whose credentials come from an exec plugin or an auth-provider (the clouds' logins: EKS, GKE,
AKS) goes through kubernetes_asyncio's loader, imported then and only then. That library is 850
modules and ~50 MiB of the operator's memory, which kopf imports at start-up whenever it can
(to recognise its classes); `lakejob run` and `lakejob gateway` stop that import when
`needs_client_library()` says nothing will need it (lakejob.cli).

Called by lakejob.kube (Kube.connect) and by lakejob.operator's kopf login handler, so kopf's
watches and lakejob's writes always act as the same identity. kopf is imported inside the
functions: `needs_client_library` must answer before kopf is first imported.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import kopf

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
log = logging.getLogger("lakejob")


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").exists()


def kubeconfig_user() -> dict[str, Any]:
    """The current context's user entry of the kubeconfig files (the first file naming a thing
    wins, as kubectl merges them); empty when there is no kubeconfig or no such user."""
    paths = [os.path.expanduser(p.strip()) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    if not paths and os.path.exists(os.path.expanduser("~/.kube/config")):
        paths = [os.path.expanduser("~/.kube/config")]
    current: str | None = None
    contexts: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
        current = current or config.get("current-context")
        for item in config.get("contexts") or []:
            contexts.setdefault(item.get("name"), item.get("context") or {})
        for item in config.get("users") or []:
            users.setdefault(item.get("name"), item.get("user") or {})
    context = contexts.get(current or "", {})
    return users.get(context.get("user", ""), {})


def needs_client_library() -> bool:
    """Whether the credentials in use come from an exec plugin or an auth-provider, which only
    kubernetes_asyncio's loader runs (and refreshes)."""
    return not in_cluster() and any(k in kubeconfig_user() for k in ("exec", "auth-provider"))


async def connection_info() -> kopf.ConnectionInfo:
    """The server, its CA and our credentials (see the module's docstring for which source)."""
    import kopf

    settings = kopf.OperatorSettings()
    if in_cluster():
        info = kopf.login_with_service_account(settings=settings)
        if info is not None:
            host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            return dataclasses.replace(info, server=f"https://{f'[{host}]' if ':' in host else host}:{port}")
    if needs_client_library():
        info = await kopf.login_via_async_client(logger=log, settings=settings)
    else:
        info = kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no Kubernetes credentials: not in a pod, and no kubeconfig ($KUBECONFIG, ~/.kube/config)")
    return info
