"""docs/argocd/<kind>/health.lua, run in a real Lua VM (lupa) against a status for every state."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime  # type: ignore[import-untyped]

from lakejob.models.sparkbatch import STATES as SPARKBATCH_STATES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "argocd"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    lua.globals().obj = table(obj)
    script = (DOCS / kind / "health.lua").read_text()
    hs = lua.execute(script)
    return hs["status"], hs["message"]


SPARKBATCH = {"success": "Healthy", "running": "Healthy", "starting": "Progressing", "recovering": "Progressing",
              "dead": "Degraded", "killed": "Suspended"}


def test_every_sparkbatch_state_is_mapped() -> None:
    assert set(SPARKBATCH) == set(SPARKBATCH_STATES)


@pytest.mark.parametrize(("state", "expected"), sorted(SPARKBATCH.items()))
def test_sparkbatch_states(state: str, expected: str) -> None:
    obj = {"metadata": {"generation": 1}, "status": {"state": state, "observedGeneration": 1, "message": "m"}}
    assert health("SparkBatch", obj) == (expected, f"{state}: m")


def test_sparkbatch_without_status_is_progressing() -> None:
    assert health("SparkBatch", {"metadata": {"generation": 1}})[0] == "Progressing"


def test_sparkbatch_status_older_than_spec_is_progressing() -> None:
    obj = {"metadata": {"generation": 2}, "status": {"state": "dead", "observedGeneration": 1}}
    assert health("SparkBatch", obj)[0] == "Progressing"
