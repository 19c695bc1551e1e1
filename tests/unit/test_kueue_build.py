"""hack/kueue/build.sh (make kueue): one clear line and nothing half-built when Go or the proxy is
missing; with a stand-in `go`, the binary and the module's CRDs land in the cache under the hash of
the inputs, and a second run prints the same path without running Go at all."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "kueue" / "build.sh"


def run(tmp_path: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": path, "HOME": str(tmp_path), "LAKEJOB_CACHE": str(tmp_path / "cache"), **env})


def built(tmp_path: Path) -> list[str]:
    """What the script left in its cache folder (a killed or failed build leaves nothing, not even .build.*)."""
    folder = tmp_path / "cache" / "kueue"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.skipif(Path("/usr/bin/go").exists() or Path("/bin/go").exists(), reason="Go is on the minimal PATH")
def test_no_go_toolchain(tmp_path: Path) -> None:
    r = run(tmp_path, "/usr/bin:/bin")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "build-kueue: no Go toolchain on PATH: install Go 1.25 or newer and put its bin directory on PATH, then retry"]
    assert built(tmp_path) == []


def test_unreachable_module_proxy(tmp_path: Path) -> None:
    go = shutil.which("go")
    assert go, "the machine has Go"
    r = run(tmp_path, f"{Path(go).parent}:/usr/bin:/bin", GOPROXY="http://127.0.0.1:9",
            GOMODCACHE=str(tmp_path / "mod"), GOCACHE=str(tmp_path / "gocache"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "build-kueue: could not download the Go modules in hack/kueue/module: is the Go module proxy reachable "
        "(GOPROXY=http://127.0.0.1:9)?")
    assert built(tmp_path) == []
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path / "mod")], check=False)  # Go's module cache is read-only


def test_a_build_caches_the_binary_and_the_crds_and_is_not_redone(tmp_path: Path) -> None:
    module = tmp_path / "kueue-module"  # what `go list -m` names: the module's folder in the module cache
    (module / "config" / "components" / "crd" / "bases").mkdir(parents=True)
    (module / "config" / "components" / "crd" / "bases" / "kueue.x-k8s.io_workloads.yaml").write_text("kind: X\n")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    calls = tmp_path / "calls"
    (fake / "go").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        f'case "$1" in\n  list) echo {module} ;;\n'
        '  build) while [ "$1" != -o ]; do shift; done; printf "#!/bin/sh\\n" > "$2" && chmod +x "$2" ;;\nesac\n')
    (fake / "go").chmod(0o755)
    (tmp_path / "cache" / "kueue" / "0ld").mkdir(parents=True)  # an older build, to be dropped

    first = run(tmp_path, f"{fake}:/usr/bin:/bin")
    assert first.returncode == 0, first.stderr
    binary = Path(first.stdout.strip())
    assert binary.name == "kueue" and binary.parent.parent == tmp_path / "cache" / "kueue"
    assert binary.exists()
    assert [p.name for p in (binary.parent / "crds").iterdir()] == ["kueue.x-k8s.io_workloads.yaml"]
    assert built(tmp_path) == [binary.parent.name]
    assert "-X sigs.k8s.io/kueue/pkg/version.GitVersion=v0.17.0" in calls.read_text()

    calls.unlink()
    second = run(tmp_path, f"{fake}:/usr/bin:/bin")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert not calls.exists()
