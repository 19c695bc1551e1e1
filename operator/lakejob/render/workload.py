"""Kueue Workloads: the one unit of admission lakejob writes per queued job (docs/queues.md). Pure.

A queued job gets a `kueue.x-k8s.io/v1beta2` Workload owned by its CR, with one podSet per role whose
templates are the pods lakejob renders (so Kueue counts the very requests the scheduler will see),
and no pod until Kueue admits it. No webhook of Kueue's defaults anything (docs/queues.md, "Running
Kueue here"), so every field Kueue reads is written here.

Called by controllers.queueing (which creates it) and, for the LocalQueue rule, by the reconcilers
that route a job to its queue.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lakejob.models.common import label_value
from lakejob.render import common
from lakejob.render.common import Owner

API_VERSION = "kueue.x-k8s.io/v1beta2"
KIND = "Workload"
PLURAL = "workloads"
# Kueue's limit on podSets per Workload (apis/kueue/v1beta2/workload_types.go: MaxItems=8).
MAX_POD_SETS = 8
# The run of its job a Workload is for, on a kind whose job has runs (a FlinkJarJob's spec generation,
# status.runGeneration): a new run gets a new Workload (its podSets may differ), and decide tells the
# previous run's, still in the index for a moment, from it (controllers.admission.gate).
RUN_LABEL = "lakejob.io/run"
# Which task of a DagJob a Workload is for (a DagJob has one per command task run).
TASK_LABEL = "lakejob.io/task"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def local_queue(queue: str, queue_map: Mapping[str, str]) -> str:
    """The LocalQueue a job's queue name goes to: the operator's map first (LAKEJOB_QUEUE_MAP, by
    the name as written or trimmed), else the name trimmed, lower-cased and `_` → `-` (DLI queue
    names are lower-case letters, digits and `_`; Kubernetes names cannot hold `_`)."""
    name = queue.strip()
    mapped = queue_map.get(queue, queue_map.get(name))
    return mapped if mapped is not None else name.lower().replace("_", "-")


def task_label(task: str) -> str:
    """A task name as a label value (task names are free text)."""
    return label_value(task) or "task"


def invalid_local_queue(name: str) -> str | None:
    """Why `name` cannot be a LocalQueue's name (a DNS-1123 label), or None."""
    return None if _DNS_LABEL.match(name) else f"{name!r} is not a valid LocalQueue name (a DNS-1123 label)"


def workload_name(kind: str, cr_name: str) -> str:
    """One Workload per CR, named after it and its kind (a SparkBatch and a SparkSession may share a name)."""
    return f"{common.short_name(cr_name)}-{kind.lower()}"


@dataclass(frozen=True)
class PodSet:
    """One role of a job: `count` pods like `pod` (a rendered Pod manifest)."""

    name: str
    count: int
    pod: dict[str, Any]


def template(pod: Mapping[str, Any]) -> dict[str, Any]:
    """A Pod manifest as a podSet's template: its labels and spec only (names, owners and the
    namespace are the Workload's business, not a template's)."""
    labels = (pod.get("metadata") or {}).get("labels")
    return {**({"metadata": {"labels": dict(labels)}} if labels else {}), "spec": pod["spec"]}


def build_workload(owner: Owner, local_queue_name: str, pod_sets: Sequence[PodSet], priority: int = 0,
                   queue_label: str | None = None, run: int | None = None, name: str | None = None,
                   extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Workload of a job: active, in `local_queue_name`, at `priority`, owned by the CR (and, for a
    kind whose job has runs, labelled with the `run` it is for). `name`: a kind with several Workloads
    (a DagJob's task runs) names each; `extra_labels` tell them apart."""
    if not 1 <= len(pod_sets) <= MAX_POD_SETS:
        raise common.Unrenderable(f"a Kueue Workload holds 1 to {MAX_POD_SETS} podSets, not {len(pod_sets)}")
    labels = common.labels(owner, common.short_name(owner.name), "workload", queue_label)
    if run is not None:
        labels[RUN_LABEL] = str(run)
    labels.update(extra_labels or {})
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": common.meta(name or workload_name(owner.kind, owner.name), owner, labels),
        "spec": {"queueName": local_queue_name, "priority": priority, "active": True,
                 "podSets": [{"name": p.name, "count": p.count, "template": template(p.pod)}
                             for p in pod_sets if p.count > 0]},
    }
