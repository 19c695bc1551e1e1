"""lakejob's Argo CD resource customisations (docs/argocd, written by hack/render_argocd.py), run as
Argo CD's own tests run the ones it ships (util/lua's health_test.go and custom_actions_test.go): every
health_test.yaml and action_test.yaml is read and each case run in a Lua 5.1 VM (lupa.lua51; Argo CD
embeds gopher-lua, a Lua 5.1) that has only the libraries Argo CD gives a script. Around that: the files
are the generator's output, every state of the models has its case, the testdata fit the models, the
health semantics docs/argocd/README.md states, and argocd-cm.yaml is what Argo CD parses.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51  # type: ignore[import-untyped]
from pydantic import BaseModel

from lakejob.models import dagjob, flinkjarjob, sparkbatch, sparksession

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import render_argocd  # noqa: E402

DOCS = ROOT / "docs" / "argocd"
TREE = DOCS / "resource_customizations" / "lakejob.io"
KINDS = {k.name: k for k in render_argocd.KINDS}
MODELS: dict[str, tuple[tuple[str, ...], type[BaseModel], type[BaseModel]]] = {
    "SparkBatch": (sparkbatch.STATES, sparkbatch.SparkBatchSpec, sparkbatch.SparkBatchStatus),
    "SparkSession": (sparksession.STATES, sparksession.SparkSessionSpec, sparksession.SparkSessionStatus),
    # The lifecycle phase: DLI's status_name is shown beside it (render_argocd says why).
    "FlinkJarJob": (flinkjarjob.PHASES, flinkjarjob.FlinkJarJobSpec, flinkjarjob.FlinkJarJobStatus),
    "DagJob": (dagjob.STATES, dagjob.DagJobSpec, dagjob.DagJobStatus),
}
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run_lua(script: str, obj: dict[str, Any]) -> Any:
    """The script's return value, as Python, the script run with `obj` as Argo CD runs it."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    # Argo CD opens only base, table, package and a cut-down os (util/lua/lua.go): without the string
    # library there are no string methods either, so a script using one fails here as it would there.
    lua.execute("getmetatable('').__index = nil; string, io, os, math, debug, coroutine = nil")

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    return to_python(lua.execute(script))


def to_python(value: Any) -> Any:
    if lua51.lua_type(value) == "table":
        keys = list(value.keys())
        if keys and sorted(keys, key=str) == list(range(1, len(keys) + 1)):
            return [to_python(value[i]) for i in range(1, len(keys) + 1)]
        return {k: to_python(value[k]) for k in keys}
    # Lua 5.1 has only doubles; Argo CD's JSON of a whole double is an integer too.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def health(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    hs = run_lua((TREE / kind / "health.lua").read_text(), obj)
    assert hs["status"] in HEALTH_STATUSES, hs
    return dict(hs)


def cases(test_file: str, key: str) -> list[Any]:
    out = []
    for path in sorted(TREE.glob(f"*/{test_file}")):
        for case in load(path)[key]:
            out.append(pytest.param(path.parent, case, id=f"{path.parent.relative_to(TREE)}/{case['inputPath']}"
                                    + (f"/{case['action']}" if "action" in case else "")))
    return out


def test_files_are_the_generators_output() -> None:
    files = render_argocd.render()
    for rel, text in files.items():
        assert (DOCS / rel).read_text() == text, f"docs/argocd/{rel} drifted: run `make argocd`"
    stray = {str(p.relative_to(DOCS)) for p in TREE.rglob("*") if p.is_file()} - set(files)
    assert not stray, f"files `make argocd` does not write: {sorted(stray)}"


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_state_of_the_model_has_a_health_and_a_case(kind: str) -> None:
    states = MODELS[kind][0]
    assert set(KINDS[kind].health) == set(states)
    field = KINDS[kind].field
    tested = {(load(TREE / kind / c["inputPath"]).get("status") or {}).get(field)
              for c in load(TREE / kind / "health_test.yaml")["tests"]}
    assert set(states) <= tested


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_testdata_fit_the_models(kind: str) -> None:
    _, spec_model, status_model = MODELS[kind]
    for path in sorted((TREE / kind).rglob("testdata/*.yaml")):
        obj = load(path)
        assert (obj["apiVersion"], obj["kind"]) == ("lakejob.io/v1alpha1", kind), path
        spec_model.model_validate(obj["spec"])
        # Status models ignore unknown fields (an older operator's): a misspelt one must fail here.
        assert set(obj.get("status", {})) <= set(status_model.model_fields), path
        status_model.model_validate(obj.get("status", {}))


# The semantics of docs/argocd/README.md, written out rather than read from the generator's table: a
# batch that runs is Progressing (as Argo CD treats a Job), a service that runs is Healthy, a stop is
# Suspended, a failure Degraded.
SEMANTICS = [
    ("SparkBatch", "starting", "", "Progressing"), ("SparkBatch", "running", "", "Progressing"),
    ("SparkBatch", "success", "", "Healthy"), ("SparkBatch", "dead", "", "Degraded"),
    ("SparkBatch", "killed", "Suspended", "Suspended"),
    ("DagJob", "Waiting", "", "Progressing"), ("DagJob", "Running", "", "Progressing"),
    ("DagJob", "Finished", "", "Healthy"), ("DagJob", "Failed", "", "Degraded"),
    ("DagJob", "Stopped", "Suspended", "Suspended"),
    ("FlinkJarJob", "Pending", "", "Progressing"), ("FlinkJarJob", "Running", "", "Healthy"),
    ("FlinkJarJob", "Restarting", "", "Progressing"), ("FlinkJarJob", "Succeeded", "", "Healthy"),
    ("FlinkJarJob", "Failed", "", "Degraded"), ("FlinkJarJob", "Cancelled", "Suspended", "Suspended"),
    ("SparkSession", "starting", "", "Progressing"), ("SparkSession", "idle", "", "Healthy"),
    ("SparkSession", "busy", "", "Healthy"), ("SparkSession", "error", "", "Degraded"),
    ("SparkSession", "success", "Stopped", "Suspended"), ("SparkSession", "success", "DriverExited", "Healthy"),
    ("SparkSession", "dead", "IdleTimeout", "Suspended"),
]


@pytest.mark.parametrize(("kind", "state", "reason", "expected"), SEMANTICS)
def test_semantics(kind: str, state: str, reason: str, expected: str) -> None:
    obj = {"metadata": {"generation": 3}, "spec": {},
           "status": {KINDS[kind].field: state, "reason": reason, "observedGeneration": 3}}
    assert health(kind, obj)["status"] == expected


@pytest.mark.parametrize(("folder", "case"), cases("health_test.yaml", "tests"))
def test_health(folder: Path, case: dict[str, Any]) -> None:
    assert health(folder.name, load(folder / case["inputPath"])) == case["healthStatus"]


@pytest.mark.parametrize(("folder", "case"), cases("actions/action_test.yaml", "discoveryTests"))
def test_action_discovery(folder: Path, case: dict[str, Any]) -> None:
    found = run_lua((folder / "discovery.lua").read_text(), load(folder / case["inputPath"]))
    assert sorted(({"name": name, **action} for name, action in found.items()), key=lambda a: a["name"]) == \
        sorted(case["result"], key=lambda a: a["name"])


@pytest.mark.parametrize(("folder", "case"), cases("actions/action_test.yaml", "actionTests"))
def test_action(folder: Path, case: dict[str, Any]) -> None:
    before = load(folder / case["inputPath"])
    after = run_lua((folder / case["action"] / "action.lua").read_text(), before)
    assert after == load(folder / case["expectedOutputPath"])
    assert after != before


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_actions_are_the_specs_switches(kind: str) -> None:
    """stop wherever the spec has `suspend`; resume only where suspend may go back to false (SparkBatch
    and SparkSession forbid it at admission); restart where there is a restartNonce."""
    fields = MODELS[kind][1].model_fields
    suspend = fields.get("suspend")
    one_way = suspend is not None and "self || !oldSelf" in str(suspend.json_schema_extra)
    expected = {"stop"} if suspend else set()
    expected |= {"resume"} if suspend and not one_way else set()
    expected |= {"restart"} if "restartNonce" in fields else set()
    assert {a.name for a in KINDS[kind].actions} == expected
    folders = {p.name for p in (TREE / kind / "actions").iterdir() if p.is_dir()} - {"testdata"}
    assert folders == expected


def test_argocd_cm_is_what_argo_cd_reads() -> None:
    """argocd-cm.yaml's keys hold the very scripts of the tree, in the shape Argo CD parses an actions
    key into (discovery.lua, definitions of name and action.lua)."""
    data = load(DOCS / "argocd-cm.yaml")["data"]
    for kind, k in KINDS.items():
        assert data[f"resource.customizations.health.lakejob.io_{kind}"] == (TREE / kind / "health.lua").read_text()
        actions = yaml.safe_load(data[f"resource.customizations.actions.lakejob.io_{kind}"])
        assert actions["discovery.lua"] == (TREE / kind / "actions" / "discovery.lua").read_text()
        assert [(d["name"], d["action.lua"]) for d in actions["definitions"]] == \
            [(a.name, (TREE / kind / "actions" / a.name / "action.lua").read_text()) for a in k.actions]
