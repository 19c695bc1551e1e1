"""The chart's Kueue queues (values `queues`, docs/queues.md "The chart's queues"): nothing unless
enabled; enabled, one ResourceFlavor, a ClusterQueue per queue with its CUs as cpu and memory
quotas and a LocalQueue per queue and namespace, named as the operator looks them up; a clear
failure when Kueue's API is absent or a queue is badly given. Where Kueue v0.17.0's CRDs are on
this machine (`make kueue`, or the Go module cache), the objects are checked against their v1beta2
schemas, unknown fields included."""
from __future__ import annotations

import copy
import glob
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.chart import helm, needs_helm, template

pytestmark = needs_helm

KUEUE = "kueue.x-k8s.io/v1beta2"
KINDS = {"ResourceFlavor", "ClusterQueue", "LocalQueue"}
QUEUES = ("queues.enabled=true", "queues.items[0].name= DLI_queue_a", "queues.items[0].cus=16",
          "queues.items[1].name=batch2", "queues.items[1].cus=3")


def kueue_objects(*sets: str, namespaces: tuple[str, ...] = ("team-a", "team-b")) -> list[dict[str, Any]]:
    ns = [f"queues.namespaces={{{','.join(namespaces)}}}"] if namespaces else []
    return [d for d in template(*sets, *ns, api_versions=(KUEUE,)) if d["apiVersion"].startswith("kueue.x-k8s.io/")]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}".lstrip("/"): d
            for d in docs if d["kind"] == kind}


def test_disabled_renders_no_kueue_object() -> None:
    assert not [d for d in template(api_versions=(KUEUE,)) if d["kind"] in KINDS]
    assert not [d for d in template("queues.items[0].name=a", "queues.items[0].cus=1", api_versions=(KUEUE,))
                if d["kind"] in KINDS]
    # and no Kueue API is needed then
    assert not [d for d in template() if d["kind"] in KINDS]


def test_enabled_renders_a_flavor_a_cluster_queue_per_queue_and_local_queues() -> None:
    docs = kueue_objects(*QUEUES)
    assert {d["apiVersion"] for d in docs} == {KUEUE}
    flavors = by_kind(docs, "ResourceFlavor")
    assert list(flavors) == ["default"] and flavors["default"]["spec"] == {}
    cqs = by_kind(docs, "ClusterQueue")
    assert sorted(cqs) == ["batch2", "dli-queue-a"]
    a = cqs["dli-queue-a"]
    assert a["metadata"]["annotations"] == {"lakejob.io/queue": "DLI_queue_a", "lakejob.io/cus": "16"}
    assert a["spec"] == {
        "namespaceSelector": {},
        "queueingStrategy": "BestEffortFIFO",
        "preemption": {"withinClusterQueue": "LowerPriority"},
        "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": "default", "resources": [
            {"name": "cpu", "nominalQuota": "16"}, {"name": "memory", "nominalQuota": "64Gi"}]}]}],
    }
    assert cqs["batch2"]["spec"]["resourceGroups"][0]["flavors"][0]["resources"] == [
        {"name": "cpu", "nominalQuota": "3"}, {"name": "memory", "nominalQuota": "12Gi"}]
    lqs = by_kind(docs, "LocalQueue")
    assert sorted(lqs) == ["team-a/batch2", "team-a/dli-queue-a", "team-b/batch2", "team-b/dli-queue-a"]
    assert {k: v["spec"] for k, v in lqs.items()} == {
        k: {"clusterQueue": k.split("/")[1]} for k in lqs}
    for d in docs:
        assert d["metadata"]["labels"]["app.kubernetes.io/instance"] == "lakejob"


@pytest.mark.parametrize(("raw", "expected"), [(" test", "test"), ("Dli_Queue_01 ", "dli-queue-01"),
                                             ("dli_queue_a", "dli-queue-a"), ("q-1", "q-1")])
def test_the_names_are_the_operators_local_queue_names(raw: str, expected: str) -> None:
    """docs/queues.md's rule: trimmed, lower-cased, `_` → `-`; the same as the operator's own
    (lakejob.render.workload.local_queue without LAKEJOB_QUEUE_MAP), where it has one."""
    docs = kueue_objects("queues.enabled=true", f"queues.items[0].name={raw}", "queues.items[0].cus=1")
    assert list(by_kind(docs, "ClusterQueue")) == [expected]
    assert list(by_kind(docs, "LocalQueue")) == [f"team-a/{expected}", f"team-b/{expected}"]
    try:
        from lakejob.render.workload import local_queue
    except ImportError:
        return
    assert local_queue(raw, {}) == expected


def test_flavor_preemption_and_strategy_from_values() -> None:
    docs = kueue_objects(*QUEUES, "queues.flavor=on-demand", "queues.preemption=Never", "queues.strategy=StrictFIFO")
    assert list(by_kind(docs, "ResourceFlavor")) == ["on-demand"]
    for cq in by_kind(docs, "ClusterQueue").values():
        assert cq["spec"]["preemption"] == {"withinClusterQueue": "Never"}
        assert cq["spec"]["queueingStrategy"] == "StrictFIFO"
        assert cq["spec"]["resourceGroups"][0]["flavors"][0]["name"] == "on-demand"


@pytest.mark.parametrize(("sets", "expected"), [
    ((), ["lakejob-system"]),                                      # neither: the release namespace
    (("watchNamespaces={w1,w2}",), ["w1", "w2"]),                  # the watched namespaces
    (("watchNamespaces={w1,w2}", "queues.namespaces={jobs}"), ["jobs"]),  # queues.namespaces wins
])
def test_local_queue_namespaces(sets: tuple[str, ...], expected: list[str]) -> None:
    docs = kueue_objects(*QUEUES, *sets, namespaces=())
    lqs = by_kind(docs, "LocalQueue").values()
    assert sorted({d["metadata"]["namespace"] for d in lqs}) == expected
    assert len(lqs) == 2 * len(expected)


def test_enabled_without_kueues_api_fails_saying_so() -> None:
    r = helm("--skip-crds", *[a for s in QUEUES for a in ("--set", s)])
    assert r.returncode != 0
    assert "queues.enabled is true but this cluster serves no kueue.x-k8s.io/v1beta2 API" in r.stderr
    assert "install Kueue first" in r.stderr and "--api-versions kueue.x-k8s.io/v1beta2" in r.stderr


def _fails(*args: str) -> str:
    r = helm("--skip-crds", "--api-versions", KUEUE, "--set", "queues.enabled=true", *args)
    assert r.returncode != 0, r.stdout
    return r.stderr


@pytest.mark.parametrize("cus", ["0", "-2"])
def test_bad_cus_are_refused_by_the_schema(cus: str) -> None:
    err = _fails("--set", "queues.items[0].name=a", "--set", f"queues.items[0].cus={cus}")
    assert "/queues/items/0/cus" in err and "minimum" in err


@pytest.mark.parametrize(("cus", "shown"), [
    ("0", "got 0"), ("1.5", "got 1.5"), ('"16"', 'got "16"'), ("null", "got <nil>"), ("[1]", "got []interface {}{1}"),
])
def test_bad_cus_are_refused_by_the_template_too(tmp_path: Path, cus: str, shown: str) -> None:
    """Without the schema (--skip-schema-validation, or a parent chart's values) the template names it."""
    values = tmp_path / "values.yaml"
    values.write_text(f"queues:\n  items:\n  - {{name: dli_a, cus: {cus}}}\n")
    err = _fails("--skip-schema-validation", "-f", str(values))
    assert f'queues.items[0].cus (queue "dli_a") must be a positive whole number of CUs, {shown}' in err


def test_whole_cus_from_a_values_file_are_fine(tmp_path: Path) -> None:
    """A values file's numbers reach the template as floats: 16 and 16.0 are 16 CUs."""
    values = tmp_path / "values.yaml"
    values.write_text("queues:\n  enabled: true\n  items:\n  - {name: a, cus: 16}\n  - {name: b, cus: 2.0}\n")
    r = helm("--skip-crds", "--api-versions", KUEUE, "-f", str(values))
    assert r.returncode == 0, r.stderr
    cqs = by_kind([d for d in yaml.safe_load_all(r.stdout) if d], "ClusterQueue")
    assert [q["name"] for q in cqs["a"]["spec"]["resourceGroups"][0]["flavors"][0]["resources"]] == ["cpu", "memory"]
    assert [q["nominalQuota"] for q in cqs["a"]["spec"]["resourceGroups"][0]["flavors"][0]["resources"]] == ["16", "64Gi"]
    assert [q["nominalQuota"] for q in cqs["b"]["spec"]["resourceGroups"][0]["flavors"][0]["resources"]] == ["2", "8Gi"]


@pytest.mark.parametrize(("name", "message"), [
    ("a.b", 'queues.items[0].name "a.b" is not a queue name'),
    ("-a", 'queues.items[0].name "-a" is not a queue name'),
    ("x" * 64, "is not a DNS-1123 label"),
])
def test_bad_names_are_refused(name: str, message: str) -> None:
    assert message in _fails("--set", f"queues.items[0].name={name}", "--set", "queues.items[0].cus=1")


def test_two_names_for_one_queue_are_refused() -> None:
    err = _fails("--set", "queues.items[0].name=dli_a", "--set", "queues.items[0].cus=1",
                 "--set", "queues.items[1].name=DLI-A", "--set", "queues.items[1].cus=2")
    assert 'queues.items[1].name "DLI-A" gives the queue "dli-a", as queues.items[0].name does' in err


@pytest.mark.parametrize(("key", "value"), [("queues.preemption", "Always"), ("queues.strategy", "FIFO"), ("queues.flavor", "Default_1"),
                                            ("queues.namespaces", "{Team_A}"), ("queues.cohort", "x")])
def test_bad_queue_values_are_refused_by_the_schema(key: str, value: str) -> None:
    err = _fails("--set", f"{key}={value}")
    assert "/queues" in err or "queues" in err


# --- against Kueue v0.17.0's CRDs, where this machine has them --------------------------------------

def _crd_folders() -> list[Path]:
    cache = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob"))
    modcache = Path(os.environ.get("GOMODCACHE", Path.home() / "go" / "pkg" / "mod"))
    found = [Path(p) for p in sorted(glob.glob(str(cache / "kueue" / "*" / "crds")))]
    found.append(modcache / "sigs.k8s.io" / "kueue@v0.17.0" / "config" / "components" / "crd" / "bases")
    return [p for p in found if (p / "kueue.x-k8s.io_clusterqueues.yaml").exists()]


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema that, like `kubectl apply` (field validation Strict),
    refuses unknown fields; CEL rules are left to the apiserver."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.mark.skipif(not _crd_folders(), reason="no Kueue v0.17.0 CRDs here (make kueue)")
def test_the_objects_fit_kueues_v1beta2_crds() -> None:
    folder = _crd_folders()[0]
    schemas = {}
    for kind, plural in (("ResourceFlavor", "resourceflavors"), ("ClusterQueue", "clusterqueues"),
                         ("LocalQueue", "localqueues")):
        crd = yaml.safe_load((folder / f"kueue.x-k8s.io_{plural}.yaml").read_text())
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
        assert version["served"] and version["storage"]
        schemas[kind] = (crd["spec"]["scope"], _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"])))
    docs = kueue_objects(*QUEUES, "queues.preemption=LowerOrNewerEqualPriority")
    assert {d["kind"] for d in docs} == KINDS
    for d in docs:
        scope, schema = schemas[d["kind"]]
        assert ("namespace" in d["metadata"]) == (scope == "Namespaced"), d["metadata"]
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in jsonschema.Draft7Validator(schema).iter_errors(d)]
        assert errors == [], (d["kind"], d["metadata"]["name"])
        if d["kind"] == "ClusterQueue":  # the CEL rule: every flavor lists every covered resource
            for group in d["spec"]["resourceGroups"]:
                for flavor in group["flavors"]:
                    assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]


def test_notes_list_the_queues(tmp_path: Path) -> None:
    from tests.unit.test_chart_install import notes

    text = notes(tmp_path, *QUEUES, "queues.namespaces={team-a,team-b}", api_versions=(KUEUE,))
    assert "dli-queue-a: 16 CUs\n     batch2: 3 CUs\n   with LocalQueues in team-a, team-b." in text
    assert "Kueue" not in notes(tmp_path / "off")
