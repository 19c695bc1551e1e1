"""hack/cluster/cluster.py's process records: a just-started process counts as running, a recycled PID never does.

The first test is the regression behind a red CI run: right after fork+exec the new process's
/proc/PID/cmdline is briefly empty, and a check that read it took a healthy kube-apiserver for dead.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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
    pid = cluster.spawn("spark-rest", [sys.executable, "-c", "pass"])
    # The child becomes a zombie of this process (nobody waits for it): it must read as gone.
    deadline = 200
    while cluster.alive("spark-rest") is not None and deadline:
        deadline -= 1
        os.sched_yield()
        subprocess.run(["true"])
    assert cluster.alive("spark-rest") is None, f"pid {pid} still counted as running"
