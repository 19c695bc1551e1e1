"""hack/cluster/cluster.py's process records: a just-started process counts as running, a recycled PID never does.

The first test is the regression behind a red CI run: right after fork+exec the new process's
/proc/PID/cmdline is briefly empty, and a check that read it took a healthy kube-apiserver for dead.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "cluster" / "cluster.py"


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("LAKEJOB_RUN_DIR", str(tmp_path / "run"))
    spec = importlib.util.spec_from_file_location("cluster_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "run" / "pids").mkdir(parents=True)
    (tmp_path / "run" / "logs").mkdir()
    yield module
    module._stop_all(quiet=True)


def test_a_process_is_running_the_moment_spawn_returns(cluster: ModuleType) -> None:
    for i in range(50):  # the old check lost this race about once in 20 with /bin/sleep, mostly with Go binaries
        name = "operator"
        pid = cluster.spawn(name, ["sleep", "30"])
        assert cluster.alive(name) == pid, f"attempt {i}"
        cluster._check_alive(name)  # what `up` calls while it waits; must not raise
        cluster._stop_all(quiet=True, only=[name])
        assert cluster.alive(name) is None


def test_a_recycled_pid_is_neither_running_nor_stopped(cluster: ModuleType) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # A record naming the bystander's PID with another start time: what a stale file looks like
        # after the PID was handed to an unrelated process.
        (cluster.RUN / "pids" / "kwok.pid").write_text(f"{bystander.pid} 1")
        assert cluster.alive("kwok") is None
        cluster._stop_all(quiet=True)
        assert bystander.poll() is None, "an unrelated process was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_dead_child_is_not_running_even_before_it_is_reaped(cluster: ModuleType) -> None:
    """A child that exited and was not waited for stays in /proc as a zombie (state Z) with its
    start time: it must not count as running (make demo's children are never waited for)."""
    child = subprocess.Popen(["true"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        for _ in range(500):  # until it has exited; nothing reaps it meanwhile
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.01)
        else:
            pytest.fail("the child never exited")
        assert cluster._start_time(child.pid) is None
    finally:
        child.wait()


def test_stop_and_start_take_named_components_down_and_up_from_their_one_command_line(
        cluster: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stop`/`start` (the fault tests' apiserver-and-etcd outage) act on the named components only,
    and a restarted one runs the command line `up` gave it; the test-only apiserver options come
    from the environment."""
    started: list[list[str]] = []

    def spawn(name: str, cmd: list[str], *args: object, **kwargs: object) -> int:
        started.append(cmd)
        return 1

    monkeypatch.setattr(cluster, "spawn", spawn)
    monkeypatch.setattr(cluster, "alive", lambda name: None)
    monkeypatch.setattr(cluster, "READY", {})
    cluster.start(["kube-apiserver", "etcd"])
    assert [Path(c[0]).name for c in started] == ["etcd", "kube-apiserver"]  # start order, whatever was asked
    assert started[1][1:] == cluster.command("kube-apiserver")[1:]
    assert not any(a.startswith(("--etcd-compaction-interval", "--watch-cache", "--audit")) for a in started[1])
    monkeypatch.setenv("LAKEJOB_ETCD_COMPACTION_INTERVAL", "10s")
    monkeypatch.setenv("LAKEJOB_WATCH_CACHE", "0")
    monkeypatch.setenv("LAKEJOB_AUDIT_POLICY", "/p.yaml")
    options = cluster.command("kube-apiserver")
    assert {"--etcd-compaction-interval=10s", "--watch-cache=false", "--audit-policy-file=/p.yaml"} <= set(options)
    with pytest.raises(cluster.ClusterError, match="not a control-plane component: kubelet"):
        cluster.stop(["kubelet"])
