"""The operator image: the Dockerfile is parsed with Docker's own parser (the `dockerfile` package)
and checked for what the chart relies on; its steps run here without a Docker engine: the wheel
builds, installs into a clean venv, and `lakejob run --help` works from it with only /tmp written."""
from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import dockerfile  # type: ignore[import-untyped]
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_dockerfile_follows_the_rules_the_chart_relies_on() -> None:
    commands = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    # The base is an ARG before the first FROM (images/build.py overrides it with its local Debian
    # Python); what everyone else builds on is its default, which must stay a python:*-slim.
    first = min(i for i, c in enumerate(commands) if c.cmd.upper() == "FROM")
    defaults = dict(v.split("=", 1) for c in commands[:first] if c.cmd.upper() == "ARG" for v in c.value if "=" in v)
    froms = [string.Template(c.value[0]).substitute(defaults) for c in commands if c.cmd.upper() == "FROM"]
    assert froms and all(f.startswith("python:") and f.endswith("-slim") for f in froms), froms
    final = commands[max(i for i, c in enumerate(commands) if c.cmd.upper() == "FROM"):]
    user = [c.value[0] for c in final if c.cmd.upper() == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and int(user[-1].split(":")[0]) >= 10000, user
    env = dict(zip(*[iter(v for c in final if c.cmd.upper() == "ENV" for v in c.value)] * 2))
    assert env.get("PYTHONUNBUFFERED") == "1"
    entry = [c.value for c in final if c.cmd.upper() == "ENTRYPOINT"]
    assert entry == [("lakejob",)]
    cmd = [c.value for c in final if c.cmd.upper() == "CMD"][-1]
    assert cmd[0] == "run" and any(a.startswith("--liveness=") for a in cmd)
    assert not any(c.cmd.upper() == "ADD" for c in commands), "COPY, not ADD (no remote fetches)"
    # The chart's pod runs with readOnlyRootFilesystem and a /tmp emptyDir: nothing else writable.
    assert all("chmod 777" not in " ".join(c.value) for c in commands)


def test_the_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheels = list(dist.glob("lakejob-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], check=True, capture_output=True,
                   timeout=600)
    # As in the image: the package's own files only, run from another directory, HOME unwritable.
    r = subprocess.run([str(venv / "bin" / "lakejob"), "run", "--help"], capture_output=True, text=True,
                       cwd=tmp_path, env={"PATH": str(venv / "bin"), "HOME": "/nonexistent", "TMPDIR": str(tmp_path)},
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--all-namespaces" in r.stdout and "--liveness" in r.stdout
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "import lakejob.operator, lakejob.crds"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
