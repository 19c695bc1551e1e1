"""lakejob.logs and the lines the operator writes: text or JSON, one info line per state change,
kopf's per-event lines at debug only, kopf's object records with the object's fields."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from lakejob import cli, logs
from lakejob.controllers.base import Key, Reconciler
from lakejob.settings import Settings
from tests.unit.fakes import StatusKube


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() replaces the root logger's handlers (pytest's own among them): put them back."""
    root, objects = logging.getLogger(), logging.getLogger("kopf.objects")
    handlers, level, filters = root.handlers[:], root.level, objects.filters[:]
    yield
    root.handlers[:], objects.filters[:] = handlers, filters
    root.setLevel(level)


class Job(Reconciler):
    kind = "SparkBatch"
    plural = "sparkbatches"
    terminal_states = frozenset({"success", "dead"})

    def __init__(self) -> None:
        super().__init__(Settings(), StatusKube(), lambda: 0, None, None)  # type: ignore[arg-type]

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        raise AssertionError("not called here")


BODY = {"metadata": {"name": "pi", "namespace": "team-a", "uid": "u1", "resourceVersion": "1"}}
OBJECT = kopf.Body({"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch",
                    "metadata": {"name": "pi", "namespace": "team-a", "uid": "u1"}})


def configured(log_format: str, level: str = "info") -> io.StringIO:
    out = io.StringIO()
    logs.configure(log_format, level, out)
    return out


async def test_a_state_change_is_one_json_line_with_its_fields() -> None:
    out = configured("json")
    r = Job()
    await r.write_status(BODY, {"state": "starting", "reason": "Submitted"})
    await r.write_status(BODY, {"state": "starting", "reason": "Submitted", "appId": "a-1"})  # no change
    await r.write_status(BODY, {"state": "dead", "reason": "Error"})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [{k: v for k, v in line.items() if k != "time"} for line in lines] == [
        {"level": "info", "logger": "lakejob", "message": "SparkBatch team-a/pi: none → starting (Submitted)",
         "kind": "SparkBatch", "namespace": "team-a", "name": "pi", "from": None, "to": "starting",
         "reason": "Submitted"},
        {"level": "info", "logger": "lakejob", "message": "SparkBatch team-a/pi: starting → dead (Error)",
         "kind": "SparkBatch", "namespace": "team-a", "name": "pi", "from": "starting", "to": "dead",
         "reason": "Error"}]
    assert lines[0]["time"].endswith("+00:00")


async def test_a_state_change_in_text() -> None:
    out = configured("text")
    await Job().write_status(BODY, {"state": "running", "reason": "DriverRunning"})
    assert out.getvalue().rstrip().endswith(" INFO lakejob: SparkBatch team-a/pi: none → running (DriverRunning)")


def test_kopf_per_event_lines_are_debug_and_its_object_records_carry_the_object() -> None:
    out = configured("json")
    kopf_log = kopf.LocalObjectLogger(body=OBJECT, settings=kopf.OperatorSettings())
    kopf_log.info("Handler 'sparkbatch_event' succeeded.")  # every handler call of every event
    kopf_log.warning("Patching failed with inconsistencies")
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert (line["level"], line["logger"], line["message"]) == ("warning", "kopf.objects",
                                                                "Patching failed with inconsistencies")
    assert (line["kind"], line["namespace"], line["name"]) == ("SparkBatch", "team-a", "pi")

    out = configured("text", "debug")
    kopf_log.info("Handler 'sparkbatch_event' succeeded.")
    assert out.getvalue().rstrip().endswith(" DEBUG kopf.objects: [SparkBatch team-a/pi] Handler "
                                            "'sparkbatch_event' succeeded.")


def test_an_exception_is_part_of_its_json_line() -> None:
    out = configured("json")
    try:
        raise TypeError("boom")
    except TypeError:
        logging.getLogger("lakejob").exception("reconcile raised")
    line = json.loads(out.getvalue())
    assert line["message"] == "reconcile raised" and "TypeError: boom" in line["exception"]


def test_the_level_is_the_roots_and_a_logger_set_lower_still_logs() -> None:
    out = configured("text", "warning")
    logging.getLogger("lakejob").info("not shown")
    watching = logging.getLogger("kopf._cogs.clients.watching")
    watching.setLevel(logging.DEBUG)  # as the fault tests turn on kopf's watch log
    try:
        watching.debug("Restarting the watch-stream for sparkbatches")
    finally:
        watching.setLevel(logging.NOTSET)
    assert "not shown" not in out.getvalue() and "Restarting the watch-stream" in out.getvalue()


def test_lakejob_run_takes_format_and_level_from_flags_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lakejob import operator

    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "run", lambda **kw: ran.append(kw))
    monkeypatch.setattr(operator, "configure", lambda *a, **kw: None)
    monkeypatch.setenv("LAKEJOB_LOG_FORMAT", "text")
    monkeypatch.setenv("LAKEJOB_LOG_LEVEL", "WARNING")
    assert cli.main(["run", "-n", "team-a", "--log-format", "json"]) == 0
    root = logging.getLogger()
    assert isinstance(root.handlers[0].formatter, logs.JsonFormatter) and root.level == logging.WARNING
    assert ran and ran[0]["namespaces"] == ["team-a"]


def test_lakejob_run_refuses_a_bad_log_setting(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAKEJOB_LOG_FORMAT", "xml")
    assert cli.main(["run", "-n", "team-a"]) == 2
    assert "LAKEJOB_LOG_FORMAT: must be one of 'text' or 'json', got xml" in capsys.readouterr().err
