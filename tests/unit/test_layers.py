"""The package's import layers, as pyproject's [tool.importlinter] contracts state them, checked by
import-linter's own `lint-imports` on this tree; and a copy of the tree with one forbidden import
added, which it must refuse (so a contract that checks nothing would fail here)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the lakejob package under `source_root` (first on its path, ahead of the
    installed one), with this tree's contracts; no cache left behind."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source_root),
                                                                        os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=source_root, env=env, capture_output=True, text=True, timeout=120)


def test_every_import_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    result = lint_imports(ROOT / "operator")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout
    for contract in contracts:
        assert f"{contract['name']} KEPT" in result.stdout


def test_the_shared_loop_importing_the_operator_again_is_refused(tmp_path: Path) -> None:
    """The cycle lakejob.operator → controllers.base → lakejob.operator that base.RUNNING removed."""
    shutil.copytree(ROOT / "operator" / "lakejob", tmp_path / "lakejob",
                    ignore=shutil.ignore_patterns("__pycache__"))
    base = tmp_path / "lakejob" / "controllers" / "base.py"
    base.write_text(base.read_text() + "\n\ndef _operator() -> object:\n    from lakejob import operator\n\n"
                    "    return operator\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "lakejob.controllers is not allowed to import lakejob.operator" in result.stdout
    assert "lakejob.controllers.base -> lakejob.operator" in result.stdout
