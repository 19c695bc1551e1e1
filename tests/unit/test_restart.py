"""The operator starting itself anew when what kopf watches changed under it (docs/queues.md,
"Installing or removing Kueue"): the Kueue probe's change after the start, and kopf ended by a
watch's 404; the process image replaced (`os.execv`), nothing else. The real thing, Kueue installed
and removed under running operators: tests/e2e/test_kueue_restart.py."""
from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from lakejob import cli, logs, operator
from lakejob.controllers import queueing
from lakejob.settings import Settings


class Discovery:
    """Answers GET /apis/kueue.x-k8s.io/v1beta2 as the apiserver does with and without Kueue."""

    def __init__(self, served: bool) -> None:
        self.served, self.asked = served, 0

    async def request(self, method: str, path: str, *a: Any, **kw: Any) -> tuple[int, Any]:
        self.asked += 1
        if not self.served:
            return 404, {"kind": "Status", "code": 404}
        return 200, {"resources": [{"name": "workloads"}, {"name": "workloads/status"}]}


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    yield
    operator.STATE.restart, operator.STATE.restart_reason = None, ""


async def test_the_probe_calls_on_change_when_the_answer_changes_after_the_first() -> None:
    probe, api, changes = queueing.KueueProbe(), Discovery(served=False), []
    probe.on_change = changes.append
    assert not await probe.served(api, Settings())  # type: ignore[arg-type]
    assert changes == []  # the first answer is the start's, no change
    api.served = True
    assert not await probe.served(api, Settings())  # type: ignore[arg-type]
    assert api.asked == 1  # within PROBE_S: the cached answer
    probe.invalidate()
    assert await probe.served(api, Settings())  # type: ignore[arg-type]
    assert changes == [True]
    probe.invalidate()
    assert await probe.served(api, Settings())  # type: ignore[arg-type]
    assert changes == [True]  # the same answer again: no change
    api.served = False
    probe.invalidate()
    assert not await probe.served(api, Settings())  # type: ignore[arg-type]
    assert changes == [True, False]


async def test_the_probe_follows_kueue_without_a_job_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    probe, api, changes = queueing.KueueProbe(), Discovery(served=False), []
    probe.PROBE_S = 0.01
    assert not await probe.served(api, Settings())  # type: ignore[arg-type]
    probe.on_change = changes.append
    api.served = True
    task = asyncio.create_task(probe.follow(api, Settings()))  # type: ignore[arg-type]
    try:
        for _ in range(200):
            if changes:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert changes == [True]


async def test_a_change_of_kueue_sets_the_restart_flag_once_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    flag = asyncio.Event()
    operator.configure(Settings(), ["team-a"], restart=flag)
    with caplog.at_level(logging.WARNING, "lakejob"):
        operator._kueue_changed(True)
        operator._kueue_changed(False)
    assert flag.is_set()
    assert operator.STATE.restart_reason.startswith("Kueue is installed now (kueue.x-k8s.io/v1beta2 is served)")
    assert [r.getMessage() for r in caplog.records] == [f"restarting the operator: {operator.STATE.restart_reason}"]


class Exec:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, path: str, argv: list[str]) -> None:
        self.calls.append((path, list(argv)))


class NotFound(Exception):
    """What kopf raises for a 404 (its APINotFoundError, private to kopf: the CLI reads `status`)."""
    status = 404


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Exec]:
    exec_ = Exec()
    monkeypatch.setattr(cli.os, "execv", exec_)
    monkeypatch.setattr(cli, "RESTART_PAUSE_S", 0.0)
    monkeypatch.setattr(logs, "configure", lambda *a: None)  # leave pytest's log capture alone
    yield exec_


def test_kopf_stopped_by_the_restart_flag_starts_the_same_command_again(monkeypatch: pytest.MonkeyPatch,
                                                                         run: Exec) -> None:
    def kopf_run(**kw: Any) -> None:
        operator.request_restart("Kueue is installed now")
        assert kw["stop_flag"] is operator.STATE.restart
    monkeypatch.setattr(kopf, "run", kopf_run)
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/python", "/venv/bin/lakejob", "run", "-n", "team-a"])
    cli.main(["run", "-n", "team-a"])
    assert run.calls == [(sys.executable, ["/venv/bin/python", "/venv/bin/lakejob", "run", "-n", "team-a"])]


def test_kopf_ended_by_a_watch_answering_404_starts_again(monkeypatch: pytest.MonkeyPatch, run: Exec,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def kopf_run(**_: Any) -> None:
        raise NotFound("workloads.kueue.x-k8s.io: 404 Not Found")
    monkeypatch.setattr(kopf, "run", kopf_run)
    with caplog.at_level(logging.WARNING, "lakejob"):
        cli.main(["run", "-n", "team-a"])
    assert len(run.calls) == 1
    assert "an API it watched is no longer served (workloads.kueue.x-k8s.io: 404 Not Found)" in caplog.text


def test_kopf_stopped_by_a_signal_or_failing_otherwise_does_not_start_again(monkeypatch: pytest.MonkeyPatch,
                                                                           run: Exec) -> None:
    monkeypatch.setattr(kopf, "run", lambda **_: None)
    assert cli.main(["run", "-n", "team-a"]) == 0

    def broken(**_: Any) -> None:
        raise RuntimeError("a bug")
    monkeypatch.setattr(kopf, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["run", "-n", "team-a"])
    assert run.calls == []


async def test_a_workload_create_answered_404_asks_the_probe_again_and_says_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Kueue removed between two probes: the create's 404 is no error but a reason to route afresh."""
    from lakejob.kube import KubeError

    class Gone:
        async def create(self, obj: dict[str, Any]) -> bool:
            raise KubeError(404, "the server could not find the requested resource", "create Workload w")

    probe = queueing.KueueProbe()
    probe._asked = 1e18  # as if just asked
    monkeypatch.setattr(queueing, "PROBE", probe)
    assert await queueing.create_workload(Gone(), {"metadata": {"name": "w"}}) is None  # type: ignore[arg-type]
    assert probe._asked < 0  # invalidated: the next route() asks the apiserver
