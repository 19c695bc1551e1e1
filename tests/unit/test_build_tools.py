"""hack/build-tools.sh fails with one clear line, and leaves nothing half-built, when Go or the proxy is missing."""
from __future__ import annotations

import shutil
import subprocess
import time
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


def test_a_successful_build_exits_zero_and_leaves_no_heartbeat(tmp_path: Path) -> None:
    """With a stand-in `go` that "builds" at once: every binary lands in the cache, the script exits
    0 (its heartbeat's clean-up must not turn success into failure), and no heartbeat outlives it."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "go").write_text('#!/bin/sh\n[ "$1" = build ] || exit 0\nwhile [ "$1" != -o ]; do shift; done\n'
                             'printf "#!/bin/sh\\n" > "$2" && chmod +x "$2"\n')
    (fake / "go").chmod(0o755)
    started = time.monotonic()
    r = run(tmp_path, f"{fake}:/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    # run() waits for its output pipes to close: a heartbeat (or its sleep) left behind holds them.
    assert time.monotonic() - started < 20
    built = sorted(p.name for p in (tmp_path / "cache" / "bin").iterdir() if not p.name.startswith("."))
    assert built == sorted(["coredns", "etcd", "helm", "kube-apiserver", "kube-controller-manager", "kube-proxy",
                            "kube-scheduler", "kubectl", "kubelet", "kwok"])
