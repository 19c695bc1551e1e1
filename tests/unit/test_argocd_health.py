"""docs/argocd/<kind>/health.lua, run in a real Lua VM (lupa) against a status for every state."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime  # type: ignore[import-untyped]

from lakejob.models import dagjob, flinkjarjob, sparkbatch, sparksession

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import render_argocd  # noqa: E402

STATES = {"SparkBatch": sparkbatch.STATES, "SparkSession": sparksession.STATES,
          "FlinkJarJob": flinkjarjob.PHASES, "DagJob": dagjob.STATES}
CASES = [(kind, state, health) for kind, (_, table, _) in render_argocd.HEALTH.items()
         for state, health in sorted(table.items())]


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    lua.globals().obj = table(obj)
    hs = lua.execute((ROOT / "docs" / "argocd" / kind / "health.lua").read_text())
    return hs["status"], hs["message"]


def test_scripts_are_generated_from_the_table() -> None:
    for rel, text in render_argocd.render().items():
        assert (ROOT / "docs" / "argocd" / rel).read_text() == text, f"{rel} drifted: run `make argocd`"


@pytest.mark.parametrize("kind", sorted(STATES))
def test_every_state_of_every_kind_is_mapped(kind: str) -> None:
    assert set(render_argocd.HEALTH[kind][1]) == set(STATES[kind])


@pytest.mark.parametrize(("kind", "state", "expected"), CASES)
def test_states(kind: str, state: str, expected: str) -> None:
    field, _, detail = render_argocd.HEALTH[kind]
    obj = {"metadata": {"generation": 1}, "status": {field: state, "observedGeneration": 1, detail: "why"}}
    assert health(kind, obj) == (expected, f"{state}: why")


@pytest.mark.parametrize("kind", sorted(STATES))
def test_without_status_it_is_progressing(kind: str) -> None:
    assert health(kind, {"metadata": {"generation": 1}})[0] == "Progressing"


@pytest.mark.parametrize("kind", sorted(STATES))
def test_a_status_older_than_the_spec_is_progressing(kind: str) -> None:
    field, table, _ = render_argocd.HEALTH[kind]
    obj = {"metadata": {"generation": 2}, "status": {field: next(iter(table)), "observedGeneration": 1}}
    assert health(kind, obj)[0] == "Progressing"
