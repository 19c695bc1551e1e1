"""hack/build-tools.sh fails with one clear line, and leaves nothing half-built, when Go or the proxy is missing."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "build-tools.sh"


def run(tmp_path: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={"PATH": path, "HOME": str(tmp_path), "LAKEJOB_CACHE": str(tmp_path / "cache"), **env})


@pytest.mark.skipif(Path("/usr/bin/go").exists() or Path("/bin/go").exists(), reason="Go is on the minimal PATH")
def test_no_go_toolchain(tmp_path: Path) -> None:
    r = run(tmp_path, "/usr/bin:/bin")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "build-tools: no Go toolchain on PATH: install Go 1.26 or newer and put its bin directory on PATH, then retry"]
    assert not list((tmp_path / "cache" / "bin").iterdir())


def test_unreachable_module_proxy(tmp_path: Path) -> None:
    go = shutil.which("go")
    assert go, "the machine has Go"
    r = run(tmp_path, f"{Path(go).parent}:/usr/bin:/bin", GOPROXY="http://127.0.0.1:9", GOFLAGS="-mod=mod",
            GOMODCACHE=str(tmp_path / "mod"), GOCACHE=str(tmp_path / "gocache"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "build-tools: could not download the Go modules in hack/tools/k8s: is the Go module proxy reachable "
        "(GOPROXY=http://127.0.0.1:9)?")
    assert not [p for p in (tmp_path / "cache" / "bin").iterdir() if not p.name.startswith(".")]
