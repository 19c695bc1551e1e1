"""The generated CRDs: committed copies up to date, and the schema a structural, immutable one."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakejob import crds
from lakejob.models.sparkbatch import SparkBatchSpec

REPO = Path(__file__).resolve().parents[2]
CRD_DIRS = [REPO / "crds", REPO / "charts" / "lakejob" / "crds"]
FILE = "lakejob.io_sparkbatches.yaml"
RENDERED = crds.render_all()


def sparkbatch() -> dict[str, Any]:
    (kind,) = [k for k in crds.KINDS if k.kind == "SparkBatch"]
    return crds.crd(kind)


def version() -> dict[str, Any]:
    (v,) = sparkbatch()["spec"]["versions"]
    out: dict[str, Any] = v
    return out


def root() -> dict[str, Any]:
    schema: dict[str, Any] = version()["schema"]["openAPIV3Schema"]
    return schema


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = root()["properties"]["spec"]
    return schema


def schema_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (not the maps of property names) with its path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from schema_nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from schema_nodes(node[key], f"{path}[{key}]")
    for key in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(node.get(key) or []):
            yield from schema_nodes(sub, f"{path}<{key}{i}>")


# ----------------------------------------------------------------------------- drift


def test_render_all_is_deterministic() -> None:
    assert crds.render_all() == RENDERED
    assert FILE in RENDERED  # one file per kind; the other kinds' CRDs are checked in their own tests


@pytest.mark.parametrize("directory", CRD_DIRS, ids=lambda d: str(d.relative_to(REPO)))
def test_committed_crds_match_the_models(directory: Path) -> None:
    on_disk = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    assert on_disk == sorted(RENDERED), (
        f"{directory.relative_to(REPO)} holds {on_disk}, the models give {sorted(RENDERED)}: run `make crds`")
    kustomization = directory / "kustomization.yaml"
    if directory == REPO / "crds":  # kustomize (deploy/base) includes crds/ as a directory
        assert kustomization.read_text() == crds.kustomization(), "crds/kustomization.yaml is stale: run `make crds`"
    else:  # Helm installs every file in a chart's crds/: nothing but CRDs there
        assert not kustomization.exists()
    for name, text in RENDERED.items():
        committed = (directory / name).read_bytes()
        assert committed == text.encode(), (
            f"{directory.relative_to(REPO) / name} is out of date with lakejob.models: run `make crds`")


def test_committed_crd_loads_to_the_generated_object() -> None:
    assert yaml.safe_load((REPO / "crds" / FILE).read_text()) == sparkbatch()


# ----------------------------------------------------------------------------- names, columns, subresources


def test_names() -> None:
    crd = sparkbatch()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "sparkbatches.lakejob.io"
    assert crd["spec"]["group"] == "lakejob.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {"kind": "SparkBatch", "plural": "sparkbatches", "singular": "sparkbatch",
                                    "listKind": "SparkBatchList", "shortNames": ["sb"], "categories": ["lakejob"]}


def test_version_and_status_subresource() -> None:
    v = version()
    assert v["name"] == "v1alpha1"
    assert v["served"] is True and v["storage"] is True
    assert v["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = version()["additionalPrinterColumns"]
    assert columns[:4] == [
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
        {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
        {"name": "AppID", "type": "string", "jsonPath": ".status.appId"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    # anything after the default four is for -o wide only
    for extra in columns[4:]:
        assert isinstance(extra["priority"], int) and extra["priority"] >= 1


def test_printer_columns_point_at_status_fields() -> None:
    status_props = root()["properties"]["status"]["properties"]
    for column in version()["additionalPrinterColumns"]:
        path = column["jsonPath"].split(".")
        if path[1] == "status":
            assert path[2] in status_props, column
            assert status_props[path[2]]["type"] == column["type"]


def test_root_schema() -> None:
    r = root()
    assert r["type"] == "object"
    assert r["required"] == ["spec"]
    assert set(r["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert r["properties"]["metadata"] == {"type": "object"}
    assert r["properties"]["apiVersion"]["description"].endswith("lakejob.io/v1alpha1.")


# ----------------------------------------------------------------------------- structural schema


@pytest.mark.parametrize("forbidden", ["default", "title", "$ref", "$defs", "anyOf", "allOf", "oneOf", "not",
                                       "const"])
def test_no_forbidden_keys_in_schema(forbidden: str) -> None:
    offenders = [path for path, node in schema_nodes(root()) if forbidden in node]
    assert offenders == []


def test_no_additional_properties_false() -> None:
    offenders = [path for path, node in schema_nodes(root()) if node.get("additionalProperties") is False]
    assert offenders == []


def test_every_node_has_a_type() -> None:
    offenders = [path for path, node in schema_nodes(root()) if "type" not in node]
    assert offenders == []


def test_spec_bounds_keep_cel_cost_finite() -> None:
    """Every string, list and map under spec is bounded (the apiserver estimates CEL cost from these)."""
    unbounded = []
    for path, node in schema_nodes(spec_schema()):
        t = node["type"]
        if t == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
        elif t == "array" and "maxItems" not in node:
            unbounded.append(path)
        elif t == "object" and isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
            unbounded.append(path)
    assert unbounded == []


def test_spec_properties_match_the_model() -> None:
    spec = spec_schema()
    assert set(spec["properties"]) == set(SparkBatchSpec.model_fields)
    assert spec["required"] == ["file"]
    assert spec["type"] == "object"


@pytest.mark.parametrize(("field", "expected"), [
    ("sc_type", {"type": "string", "enum": ["A", "B", "C"]}),
    ("feature", {"type": "string", "enum": ["basic", "custom", "ai"]}),
    ("max_retry_times", {"type": "integer", "minimum": 0, "maximum": 100}),
    ("driverCores", {"type": "integer", "minimum": 1, "maximum": 256}),
    ("name", {"type": "string", "maxLength": 128}),
    ("schedulingTimeout", {"type": "string", "pattern": "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$", "minLength": 2}),
    ("spark_version", {"type": "string", "pattern": r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"}),
    ("driverMemory", {"type": "string", "pattern": r"^\s*([0-9]+)\s*([kKmMgGtT])[bB]?\s*$", "maxLength": 32}),
    ("suspend", {"type": "boolean"}),
    ("conf", {"type": "object", "maxProperties": 256}),
    ("args", {"type": "array", "maxItems": 256}),
])
def test_spec_field_constraints(field: str, expected: dict[str, Any]) -> None:
    prop = spec_schema()["properties"][field]
    assert {k: prop.get(k) for k in expected} == expected
    assert prop.get("description"), f"{field} has no description for kubectl explain"


def test_status_state_enum() -> None:
    state = root()["properties"]["status"]["properties"]["state"]
    assert state["type"] == "string"
    assert state["enum"] == ["starting", "running", "recovering", "success", "dead", "killed"]


# ----------------------------------------------------------------------------- immutability


IMMUTABLE = {"rule": "self == oldSelf"}


def test_every_spec_field_but_suspend_is_immutable() -> None:
    props = spec_schema()["properties"]
    for name, prop in props.items():
        rules = [v["rule"] for v in prop.get("x-kubernetes-validations", [])]
        if name == "suspend":
            assert "self == oldSelf" not in rules
        else:
            assert rules.count("self == oldSelf") == 1, name
            (v,) = [v for v in prop["x-kubernetes-validations"] if v["rule"] == "self == oldSelf"]
            assert v["message"] == (f"{name} is immutable once the job exists (only suspend may change); "
                                    "delete and re-create the object to change it")


def test_suspend_cannot_go_back() -> None:
    rules = spec_schema()["properties"]["suspend"]["x-kubernetes-validations"]
    assert rules == [{"rule": "self || !oldSelf",
                      "message": "a stopped job stays stopped: suspend cannot go back to false"}]


def test_optional_fields_cannot_be_added_or_removed() -> None:
    spec = spec_schema()
    (presence,) = [v for v in spec["x-kubernetes-validations"] if "oldSelf" in v["rule"]]
    optional = sorted(set(spec["properties"]) - {"suspend", "file"})
    assert presence["rule"] == " && ".join(f"has(self.{k}) == has(oldSelf.{k})" for k in optional)
    assert "suspend" not in presence["rule"]
    assert presence["message"] == ("fields cannot be added to or removed from spec once the job exists "
                                   "(only suspend may change)")


def test_status_has_no_immutability_rules() -> None:
    status = root()["properties"]["status"]
    rules = [v["rule"] for _, node in schema_nodes(status) for v in node.get("x-kubernetes-validations", [])]
    assert rules == []


# ----------------------------------------------------------------------------- kubectl explain, kubectl wait


def kind_root(kind: crds.Kind) -> dict[str, Any]:
    (v,) = crds.crd(kind)["spec"]["versions"]
    schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
    return schema


# The root's metadata is only {"type": "object"}: the apiserver refuses a CRD whose metadata schema
# says more than rules on name/generateName, and `kubectl explain` shows ObjectMeta's own text.
UNDESCRIBED = {".metadata"}


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_every_property_has_a_description(kind: crds.Kind) -> None:
    # What `kubectl explain <kind>.<path>` prints: a field without one says nothing.
    missing = [path for path, node in schema_nodes(kind_root(kind))
               for name, prop in (node.get("properties") or {}).items()
               if not prop.get("description", "").strip() and f"{path}.{name}" not in UNDESCRIBED]
    assert missing == []


def test_the_description_walk_sees_what_it_must() -> None:
    # The walk above reaches map values and list items (DagJob's Tasks, every kind's conditions).
    (dag,) = [k for k in crds.KINDS if k.kind == "DagJob"]
    paths = {path for path, _ in schema_nodes(kind_root(dag))}
    assert ".spec.DAG.Tasks[additionalProperties].Parameters.Command.CommandLine" in paths
    assert ".status.conditions[items].observedGeneration" in paths


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_conditions_are_a_map_keyed_by_type(kind: crds.Kind) -> None:
    conditions = kind_root(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions["type"] == "array"
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    # A map key must be required (or defaulted) for the apiserver to accept the CRD.
    item = conditions["items"]
    assert {"type", "status", "reason"} <= set(item["required"])
    assert set(item["properties"]) == {"type", "status", "reason", "message", "lastTransitionTime",
                                       "observedGeneration"}
