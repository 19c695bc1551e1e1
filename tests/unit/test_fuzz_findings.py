"""What tests/unit/test_fuzz.py found, each pinned by a plain test of its own.

- a Spark REST jobs list with a time Spark never writes raised out of rest_activity, which stops
  the REST poller of every SparkSession (the issue's example of a pass that does not end known);
- a DagJob CommandLine with an open quote or a trailing backslash passed admission and made
  render.dag's shlex.split raise on every pass: now refused by the model (InvalidCommandLine);
- a DagJob whose spec's tasks changed after it started (admission bypassed) made decide raise a
  KeyError for the task the spec no longer has: now the job fails with InvalidSpec;
- a SparkBatch or SparkSession whose conf the operator cannot size (memoryOverhead, …Factor)
  was refused only when it was new: after a change that got past admission its next attempt
  reached render, which raised. The model now refuses it, so parse names the key every time.
Unbounded status text found by it (a heartbeat annotation of any size) is in test_bounds.py.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from lakejob.controllers import dagjob, sparkbatch, sparksession
from lakejob.controllers import dagjob_decide as dag
from lakejob.controllers import sparkbatch_decide as batch
from lakejob.controllers import sparksession_decide as session
from lakejob.controllers.decide_common import Meta
from lakejob.models.dagjob import DagJobStatus
from lakejob.models.spark import ExecutorCounts
from lakejob.models.sparkbatch import SparkBatchStatus
from lakejob.settings import Settings

T0 = 1_700_000_000_000
META = Meta(name="j", namespace="ns", uid="uid-1", generation=1, created_ms=T0)
SETTINGS = Settings()
COMMAND = {"InstanceCount": 1, "Timeout": 60, "Parameters": {
    "Command": {"CommandLine": "python w.py"}, "StdoutRedirectPath": "oss://bucket/o/",
    "StderrRedirectPath": "oss://bucket/o/"}}


def dag_spec(tasks: dict[str, Any]) -> dict[str, Any]:
    return {"Name": "j", "Priority": 1, "Type": "DAG", "JobFailOnInstanceFail": True, "DAG": {"Tasks": tasks}}


def test_rest_jobs_with_times_spark_never_writes_are_read_without_them() -> None:
    payload = [{"status": "RUNNING", "submissionTime": ""},
               {"status": "SUCCEEDED", "submissionTime": "yesterday", "completionTime": "1970-01-01T00:00:02.000GMT"}]
    assert session.rest_activity(payload) == session.RestActivity(running_jobs=1, last_activity_ms=2000)
    assert session.spark_time_ms("2026-13-01T00:00:00.000GMT") is None


@pytest.mark.parametrize("line", ["python 'my worker.py", 'python "x', "python w.py \\", "'"])
def test_a_command_line_that_does_not_split_into_words_is_refused_naming_it(line: str) -> None:
    body = dag_spec({"A": copy.deepcopy(COMMAND)})
    body["DAG"]["Tasks"]["A"]["Parameters"]["Command"]["CommandLine"] = line
    spec, error = dagjob.parse_spec({"spec": body})
    assert spec is None and error == ("spec.DAG.Tasks.A.Parameters.Command: InvalidCommandLine: Specified parameter "
                                      "CommandLine is not valid. It is split into words as a POSIX shell would: every "
                                      "quote must be closed, and a backslash must not end it.")


@pytest.mark.parametrize("line", ["python 'my worker.py' --n 3", 'sh -c "echo \\"hi\\""', "a\\ b", "''"])
def test_a_command_line_that_splits_is_accepted(line: str) -> None:
    body = dag_spec({"A": copy.deepcopy(COMMAND)})
    body["DAG"]["Tasks"]["A"]["Parameters"]["Command"]["CommandLine"] = line
    assert dagjob.parse_spec({"spec": body})[1] is None


@pytest.mark.parametrize("tasks", [
    {"B": COMMAND},  # another name
    {"A": {"sparkBatch": {"file": "local:///a.py"}}},  # the same name, another kind
    {"A": COMMAND, "B": COMMAND},  # one more
])
def test_a_dagjob_whose_tasks_changed_after_it_started_fails_and_stops_what_runs(tasks: dict[str, Any]) -> None:
    first, _ = dagjob.parse_spec({"spec": dag_spec({"A": COMMAND})})
    d = dag.decide(first, None, META, DagJobStatus(), dag.Observed(T0), SETTINGS)
    assert d.status.State == "Running" and d.status.Tasks is not None and d.status.Tasks["A"].State == "Running"
    child = d.status.Tasks["A"].Child or ""
    changed, _ = dagjob.parse_spec({"spec": dag_spec(tasks)})
    jobs = {child: dag.JobObs(name=child, completions=1, active=1)}
    d = dag.decide(changed, None, META, d.status, dag.Observed(T0 + 1000, jobs=jobs), SETTINGS)
    assert (d.status.State, d.status.reason) == ("Failed", "InvalidSpec")
    assert d.status.message is not None and d.status.message.startswith(
        "spec.DAG.Tasks changed after the job was created, which it cannot: it had A (command), it has ")
    assert [(a.verb, a.name, a.value) for a in d.actions] == [("suspend_job", child, True)]


@pytest.mark.parametrize(("parse", "body"), [
    (sparkbatch.parse_spec, {"file": "local:///a.py"}),
    (sparksession.parse_spec, {"kind": "pyspark", "cluster_name": "c"}),
])
@pytest.mark.parametrize("conf", [{"spark.driver.memoryOverheadFactor": "x"}, {"spark.executor.memoryOverhead": "lots"},
                                  {"spark.kubernetes.memoryOverheadFactor": "-1"}])
def test_a_conf_the_operator_cannot_size_is_refused_by_parse_naming_the_key(
        parse: Any, body: dict[str, Any], conf: dict[str, str]) -> None:
    spec, error = parse({"spec": {**body, "conf": conf}})
    assert spec is None and error is not None and error.startswith(f"spec: {next(iter(conf))}: ")


def test_a_retry_after_the_conf_changed_to_one_that_cannot_be_sized_fails_instead_of_rendering() -> None:
    spec, _ = sparkbatch.parse_spec({"spec": {"file": "local:///a.py", "auto_recovery": True}})
    d = batch.decide(spec, None, META, SparkBatchStatus(), batch.Observed(T0, None, ExecutorCounts()), SETTINGS)
    failed = batch.DriverObs(name=d.status.driverPod or "", phase="Failed", created_ms=T0, exit_code=1)
    d = batch.decide(spec, None, META, d.status, batch.Observed(T0 + 1000, failed, ExecutorCounts()), SETTINGS)
    assert d.status.state == "recovering"
    changed, error = sparkbatch.parse_spec({"spec": {"file": "local:///a.py", "auto_recovery": True,
                                                     "conf": {"spark.driver.memoryOverheadFactor": "x"}}})
    d = batch.decide(changed, error, META, d.status, batch.Observed(T0 + 3_600_000, None, ExecutorCounts()), SETTINGS)
    assert (d.status.state, d.status.reason, d.actions) == ("dead", "InvalidSpec", [])


@pytest.mark.parametrize("payload", [
    {"root-exception": "   "}, {"exceptionHistory": {"entries": ["not a dict"]}}, {"exceptionHistory": []},
    {"exceptionHistory": {"entries": [{"stacktrace": None}]}}, ["a list"], None])
def test_a_flink_exceptions_answer_of_any_shape_is_no_crash(payload: object) -> None:
    from lakejob.controllers.flinkjarjob import _exception_text

    assert _exception_text(payload) is None


async def test_a_pod_log_tail_holds_at_most_its_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import web

    from lakejob import kube as kubemod

    async def log(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(40):  # 40 lines of 100 KiB: 4 MB
            await resp.write(b"x" * 100 * 1024 + b"\n")
        await resp.write(b"the last line\n")
        return resp

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods/p/log", log)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setattr(kubemod, "LOG_TAIL_BYTES", 256 * 1024)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        kube = kubemod.Kube(server=f"http://127.0.0.1:{port}", session=session)
        lines = await kube.pod_log_tail("ns", "p", 400, 10)
    await runner.cleanup()
    assert lines is not None and lines[-1] == "the last line" and sum(len(x) + 1 for x in lines) <= 256 * 1024
