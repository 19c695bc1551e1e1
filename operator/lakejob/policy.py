"""The operator's policy over what a spec may ask of its pods and where it may send notifications:
a pure check of (spec, settings, namespace).

Pod customisation (the `driver:`, `executor:`, `jobManager:`, `taskManager:` blocks and a DagJob
command task's `pod:`) may ask for what escapes a namespace's isolation: another ServiceAccount,
hostPath volumes, the host's network/PID/IPC namespaces, a privileged container, added
capabilities; so may Spark's own `spark.kubernetes.{driver,executor}.volumes.hostPath.*` conf keys.
Each is refused unless LAKEJOB_POD_POLICY_ALLOW (settings.PodPolicy) allows it, everywhere or in
the CR's namespace. What no setting may allow (the conf keys that wire or secure a Spark job) is a
model rule instead (models.spark.REFUSED_CONF_KEYS), enforced at admission too; this cannot be,
because admission does not know the operator's settings. A DagJob's own notification URL
(Notification.Topic.Endpoint) must name a host LAKEJOB_NOTIFY_ALLOWED_HOSTS allows: the operator
POSTs from inside the cluster (lakejob.http refuses link-local addresses and redirects besides).

`errors` walks any spec model, so it finds the blocks of every kind and those of the SparkBatch and
FlinkJarJob specs a DagJob embeds. `checked` folds it into the (spec, error) pair of
controllers.base.parse_spec: each kind's controller calls it right where it parses its spec, so a
refused spec fails at once with reason InvalidSpec through the path an invalid one takes.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel

from lakejob.models.common import PodCustomization
from lakejob.models.dagjob import DagJobSpec
from lakejob.models.spark import SparkAppSpec
from lakejob.settings import Settings

SETTING = "LAKEJOB_POD_POLICY_ALLOW"
NOTIFY_SETTING = "LAKEJOB_NOTIFY_ALLOWED_HOSTS"
# Spark mounts these itself on the pods it makes (spark.kubernetes.executor.volumes.hostPath.<name>.*).
_HOSTPATH_CONF = re.compile(r"^(spark\.kubernetes\.(driver|executor)\.volumes\.hostPath\.[^.]+)\.")

M = TypeVar("M", bound=BaseModel)


def _nodes(node: object, path: str) -> Iterator[tuple[str, BaseModel]]:
    """Every model in the tree under `node` with its path, dotted as parse_spec names fields."""
    if isinstance(node, BaseModel):
        yield path, node
        for name in type(node).model_fields:
            value = getattr(node, name)
            if value is not None:
                yield from _nodes(value, f"{path}.{name}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _nodes(item, f"{path}.{i}")
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from _nodes(item, f"{path}.{key}")


def _asks(custom: PodCustomization) -> Iterator[tuple[str, str]]:
    """(feature, field) for each governed thing a pod customisation block asks for."""
    if custom.serviceAccountName:
        yield "serviceAccountName", "serviceAccountName"
    for i, volume in enumerate(custom.volumes or []):
        if volume.hostPath is not None:
            yield "hostPath", f"volumes.{i}.hostPath"
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if getattr(custom, flag):
            yield flag, flag
    if custom.securityContext is not None:
        if custom.securityContext.privileged:
            yield "privileged", "securityContext.privileged"
        if custom.securityContext.capabilities and custom.securityContext.capabilities.add:
            yield "capabilities", "securityContext.capabilities.add"


def _conf_asks(spec: SparkAppSpec) -> Iterator[tuple[str, str]]:
    """Spark's hostPath volume keys, once per volume (each has several: mount.path, options.path, …)."""
    volumes = {m.group(1) for key in spec.conf or {} if (m := _HOSTPATH_CONF.match(key))}
    for volume in sorted(volumes):
        yield "hostPath", f"conf.{volume}.*"


def http_url(endpoint: str) -> bool:
    """An http(s) URL we can POST to (BatchCompute's MNS endpoint template, http://[UserId].mns…, is not)."""
    try:
        parts = urlsplit(endpoint)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _endpoint_errors(spec: BaseModel, settings: Settings) -> Iterator[str]:
    """A DagJob's own notification URL must name a host LAKEJOB_NOTIFY_ALLOWED_HOSTS allows."""
    topic = spec.Notification.Topic if isinstance(spec, DagJobSpec) and spec.Notification else None
    if topic is None or not topic.Endpoint or not http_url(topic.Endpoint):
        return
    host = (urlsplit(topic.Endpoint).hostname or "").lower()
    if not any(fnmatch.fnmatchcase(host, allowed) for allowed in settings.notify_allowed_hosts):
        yield (f"spec.Notification.Topic.Endpoint: host {host} refused by operator policy (allow with "
               f"{NOTIFY_SETTING}={host}, or name a topic the operator maps in LAKEJOB_NOTIFICATION_TOPICS)")


def errors(spec: BaseModel, settings: Settings, namespace: str) -> list[str]:
    """Every field of `spec` that asks for what the policy does not allow in `namespace`, each
    message naming the field and the setting that would allow it."""
    out = list(_endpoint_errors(spec, settings))
    for path, node in _nodes(spec, "spec"):
        asks = _asks(node) if isinstance(node, PodCustomization) else \
            _conf_asks(node) if isinstance(node, SparkAppSpec) else iter(())
        for feature, field in asks:
            if not settings.pod_policy.allows(feature, namespace):
                out.append(f"{path}.{field}: refused by operator policy (allow with {SETTING}={feature}, "
                           f"or {namespace}/{feature} for namespace {namespace} only)")
    return out


def checked(parsed: tuple[M | None, str | None], settings: Settings, namespace: str) -> tuple[M | None, str | None]:
    """parse_spec's (spec, error) with the policy applied: a spec it refuses becomes (None, why),
    which each kind's decide fails with reason InvalidSpec, as a spec that fails validation."""
    spec, error = parsed
    if spec is None:
        return parsed
    refused = errors(spec, settings, namespace)
    return (None, "; ".join(refused)) if refused else parsed
