"""Generate the CustomResourceDefinitions from the pydantic models (`make crds`, `lakejob crds`).

pydantic's JSON Schema is turned into a Kubernetes structural schema: `$ref`s inlined, optional
fields unwrapped from `anyOf [X, null]`, titles and defaults dropped (defaults are applied by the
operator, so Argo CD never sees the apiserver rewrite an object), each model's `__rules__` added
as `x-kubernetes-validations`, and every spec field but the model's `__mutable__` ones made
immutable with transition rules. The output is deterministic, so a test can diff it against
`crds/` and the chart's copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from lakejob.models.dagjob import DagJobSpec, DagJobStatus
from lakejob.models.flinkjarjob import FlinkJarJobSpec, FlinkJarJobStatus
from lakejob.models.sparkbatch import SparkBatchSpec, SparkBatchStatus
from lakejob.models.sparksession import SparkSessionSpec, SparkSessionStatus

GROUP = "lakejob.io"
VERSION = "v1alpha1"
CATEGORY = "lakejob"


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict[str, str]]
    description: str
    extra_columns: list[dict[str, str]] = field(default_factory=list)
    # Fields a list may select on (CRD selectableFields: `kubectl get --field-selector`, and the
    # gateway's filtered lists, done by the apiserver instead of by reading everything).
    selectable: list[str] = field(default_factory=list)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: list[Kind] = [
    Kind(
        kind="SparkBatch", plural="sparkbatches", short_names=["sb"], spec=SparkBatchSpec, status=SparkBatchStatus,
        # DLI's list filters (state, job_name, queue_name / cluster_name), lakejob.gateway.dli
        selectable=[".status.state", ".spec.name", ".spec.queue", ".spec.cluster_name"],
        description="A Spark batch job (DLI batch / Livy batch API): the operator runs its driver pod, "
                    "the driver runs its executors.",
        columns=[
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
            {"name": "AppID", "type": "string", "jsonPath": ".status.appId"},
            AGE,
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": "1"},
        ],
    ),
    Kind(
        kind="SparkSession", plural="sparksessions", short_names=["ss"], spec=SparkSessionSpec,
        status=SparkSessionStatus,
        description="An interactive Spark session (DLI / Livy session API): a Spark Connect server that clients "
                    "attach to at status.connectUrl, shut down when idle for heartbeatTimeoutInSecond.",
        columns=[
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "URL", "type": "string", "jsonPath": ".status.connectUrl"},
            AGE,
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": "1"},
            {"name": "Idle-Since", "type": "string", "jsonPath": ".status.idleSince", "priority": "1"},
        ],
    ),
    Kind(
        kind="DagJob", plural="dagjobs", short_names=["dag"], spec=DagJobSpec, status=DagJobStatus,
        # BatchCompute's job Id (the uid, copied by the operator) and its list's State filter,
        # lakejob.gateway.batchcompute
        selectable=[".status.Id", ".status.State"],
        description="A BatchCompute DAG job: tasks (commands as Indexed Jobs, SparkBatch and FlinkJarJob "
                    "children) run in dependency order.",
        columns=[
            {"name": "State", "type": "string", "jsonPath": ".status.State"},
            {"name": "Tasks", "type": "string", "jsonPath": ".status.TaskProgress"},
            AGE,
            {"name": "Priority", "type": "integer", "jsonPath": ".spec.Priority", "priority": "1"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": "1"},
        ],
    ),
    Kind(
        kind="FlinkJarJob", plural="flinkjarjobs", short_names=["fjj"], spec=FlinkJarJobSpec,
        # DLI's list filters (status, name, queue_name), lakejob.gateway.dli_flink
        selectable=[".status.status_name", ".spec.name", ".spec.queue_name"],
        status=FlinkJarJobStatus,
        description="A Flink JAR job (DLI Flink JAR job API) as a standalone application cluster: one "
                    "JobManager pod, a TaskManager ReplicaSet, sized in CUs.",
        columns=[
            {"name": "Status", "type": "string", "jsonPath": ".status.status_name"},
            {"name": "Parallelism", "type": "integer", "jsonPath": ".status.resources.parallelism"},
            {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts"},
            AGE,
            {"name": "JobID", "type": "string", "jsonPath": ".status.job_id", "priority": "1"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": "1"},
        ],
    ),
]


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one pydantic JSON Schema node into an OpenAPI v3 structural schema node."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "default", "$defs"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs) if isinstance(value, dict) else value
        elif key == "additionalProperties" and value is False:
            continue
        else:
            out[key] = _structural(value, defs)
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]  # structural schemas forbid unknown fields by pruning/strict validation
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _structural(raw, defs)
    return schema


def _immutable(spec: dict[str, Any], mutable: frozenset[str]) -> None:
    """Make every spec field but `mutable` immutable once set, and forbid adding or removing one."""
    fixed = sorted(k for k in spec["properties"] if k not in mutable)
    # The shorter list names the rule: "only suspend may change", or "every field but checkpoint_path".
    which = f"only {', '.join(sorted(mutable))} may change" if len(mutable) <= len(fixed) else \
        f"every field but {', '.join(fixed)} may change"
    for name in fixed:
        prop = spec["properties"][name]
        prop.setdefault("x-kubernetes-validations", []).append(
            {"rule": "self == oldSelf",
             "message": f"{name} is immutable once the job exists ({which}); "
                        "delete and re-create the object to change it"})
    optional = [k for k in fixed if k not in spec.get("required", [])]
    if optional:
        spec.setdefault("x-kubernetes-validations", []).append(
            {"rule": " && ".join(f"has(self.{k}) == has(oldSelf.{k})" for k in optional),
             "message": f"{', '.join(optional)} cannot be added to or removed from spec once the job exists "
                        f"({which})" if len(optional) < 3 else
                        f"fields cannot be added to or removed from spec once the job exists ({which})"})


def crd(kind: Kind) -> dict[str, Any]:
    spec = _model_schema(kind.spec)
    _immutable(spec, getattr(kind.spec, "__mutable__", frozenset()))
    status = _model_schema(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "lakejob"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind.kind, "plural": kind.plural, "singular": kind.kind.lower(),
                      "listKind": f"{kind.kind}List", "shortNames": kind.short_names, "categories": [CATEGORY]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                **({"selectableFields": [{"jsonPath": p} for p in kind.selectable]} if kind.selectable else {}),
                "additionalPrinterColumns": [
                    {**c, "priority": int(c["priority"])} if "priority" in c else c for c in kind.columns],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": kind.description,
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string", "description": "The versioned schema of this "
                                       f"representation of an object: {GROUP}/{VERSION}."},
                        "kind": {"type": "string", "description": f"The REST resource this object represents: "
                                 f"{kind.kind}."},
                        # Nothing but its type: the apiserver refuses a CRD whose metadata schema says
                        # more than name/generateName rules, and publishes ObjectMeta's own docs for it.
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status,
                    },
                }},
            }],
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text for every kind's CRD."""
    return {f"{GROUP}_{k.plural}.yaml": yaml.safe_dump(crd(k), sort_keys=False, width=120) for k in KINDS}


def kustomization() -> str:
    """crds/kustomization.yaml, so that deploy/'s kustomize base can include the CRDs directory."""
    return yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": sorted(render_all())}, sort_keys=False)


def write(directory: Path, with_kustomization: bool = False) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = dict(render_all())
    if with_kustomization:
        files["kustomization.yaml"] = kustomization()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
