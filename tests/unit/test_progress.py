"""The progress lines of the long steps: hack/progress.py (a context manager) and hack/progress.sh
(a bash function wrapping a command), each with a heartbeat during a slow step and none during a
fast one, and the wrapped step's failure passed on unchanged."""
from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lakejob_hack_progress", ROOT / "hack" / "progress.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


progress = _load()


def _step(seconds: float, every: float | None, detail: str = "") -> list[str]:
    out = io.StringIO()
    with progress.step("t", "building x", (3, 9), every=every, detail=lambda: detail, out=out):
        subprocess.run([sys.executable, "-c", f"import time; time.sleep({seconds})"], check=True)
    return out.getvalue().splitlines()


def test_a_slow_step_beats_with_what_its_log_says() -> None:
    lines = _step(1.3, every=0.4, detail="STEP 4/9: RUN pip install")
    assert lines[0] == "t: [3/9] building x…"
    beats = lines[1:-1]
    assert 2 <= len(beats) <= 3, lines
    assert all(b.startswith("t: … still building x, ") and b.endswith(" s (STEP 4/9: RUN pip install)")
               for b in beats), beats
    assert lines[-1].startswith("t: [3/9] building x: done in ") and lines[-1].endswith(" s")


def test_a_fast_step_does_not_beat() -> None:
    assert _step(0.0, every=0.5) == ["t: [3/9] building x…", "t: [3/9] building x: done in 0 s"]


def test_a_step_without_a_heartbeat_never_beats() -> None:
    assert len(_step(0.5, every=None)) == 2


def test_a_failing_step_says_so_and_its_exit_code_goes_on() -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit) as raised:
        with progress.step("t", "building y", every=0.2, out=out):
            raise SystemExit(subprocess.run([sys.executable, "-c", "raise SystemExit(3)"]).returncode)
    assert raised.value.code == 3
    lines = out.getvalue().splitlines()
    assert lines[0] == "t: building y…" and lines[-1].startswith("t: building y: failed after ")
    time.sleep(0.5)  # the heartbeat has stopped with the step
    assert out.getvalue().splitlines() == lines


SCRIPT = """set -euo pipefail
. {progress}
slow() {{ cd / && echo "slow ran in $PWD" && sleep "$1" && return "$2"; }}
rc=0
PROGRESS_HEARTBEAT=1 progress_run --log {log} t 3/9 "building x" slow "$1" "$2" || rc=$?
echo "rc=$rc cwd=$PWD"
"""


def _bash(tmp_path: Path, seconds: float, code: int) -> tuple[subprocess.CompletedProcess[str], str]:
    script, log = tmp_path / "s.sh", tmp_path / "cmd.log"
    script.write_text(SCRIPT.format(progress=ROOT / "hack" / "progress.sh", log=log))
    r = subprocess.run(["bash", str(script), str(seconds), str(code)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=30)
    return r, log.read_text()


def test_the_bash_helper_beats_during_a_slow_command_and_keeps_its_exit_code(tmp_path: Path) -> None:
    r, log = _bash(tmp_path, 2.5, 7)
    # The command's output went to its log, the progress lines to stderr; its cd stayed in its subshell.
    assert log == "slow ran in /\n"
    assert r.stdout == f"rc=7 cwd={tmp_path}\n"
    lines = r.stderr.splitlines()
    assert lines[0] == "t: [3/9] building x…"
    assert len(lines[1:-1]) >= 1 and all(b.startswith("t: … still building x, ") for b in lines[1:-1]), lines
    assert lines[-1].startswith("t: [3/9] building x: failed (exit 7) after ")


def test_the_bash_helper_is_quiet_during_a_fast_command(tmp_path: Path) -> None:
    r, _ = _bash(tmp_path, 0, 0)
    assert r.stdout == f"rc=0 cwd={tmp_path}\n"
    lines = r.stderr.splitlines()  # (bash counts whole seconds: a start at x.99 s ends "in 1 s")
    assert len(lines) == 2 and lines[0] == "t: [3/9] building x…", lines
    assert lines[1].startswith("t: [3/9] building x: done in ")
