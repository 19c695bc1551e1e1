"""`lakejob get dag` (lakejob.dagview): a DagJob's header and its tasks' tree, line for line, for
chains, fan-out, fan-in, a failed task with retries, waiting tasks, SparkBatch and FlinkJarJob
children, a job the operator has not seen, one over a quota and one whose DAG has a cycle; and the
command itself, against a fake API."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from lakejob import cli, dagview, submit

NOW = datetime(2024, 5, 1, 10, 5, 0, tzinfo=timezone.utc)
CREATED = "2024-05-01T10:00:00Z"


def at(seconds: float) -> str:
    """A status timestamp `seconds` after CREATED, as decide writes them (milliseconds, Z)."""
    minutes, s = divmod(seconds, 60)
    return f"2024-05-01T10:{int(minutes):02d}:{s:06.3f}Z"


def command(instances: int = 1, retries: int | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"InstanceCount": instances, "Timeout": 600,
                            "Parameters": {"Command": {"CommandLine": "python worker.py"},
                                           "StdoutRedirectPath": "oss://bucket/logs/",
                                           "StderrRedirectPath": "oss://bucket/logs/"}}
    if retries is not None:
        task["MaxRetryCount"] = retries
    return task


SPARK = {"sparkBatch": {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                        "className": "org.apache.spark.examples.SparkPi"}}
FLINK = {"flinkJarJob": {"name": "stream", "entrypoint": "local:///opt/flink/examples/streaming/WordCount.jar",
                         "main_class": "org.apache.flink.streaming.examples.wordcount.WordCount"}}


def done(start: float, end: float, instances: int = 1, run: int = 1, **extra: Any) -> dict[str, Any]:
    return {"State": "Finished", "Run": run, "StartTime": at(start), "EndTime": at(end),
            "InstanceMetrics": {"FinishedCount": instances}, **extra}


def waiting(instances: int = 1, **extra: Any) -> dict[str, Any]:
    return {"State": "Waiting", "InstanceMetrics": {"WaitingCount": instances}, **extra}


def dagjob(tasks: dict[str, Any], deps: dict[str, list[str]] | None = None,
           status: dict[str, Any] | None = None, fail_fast: bool = True) -> dict[str, Any]:
    spec = {"Name": "etl", "Priority": 100, "Type": "DAG", "JobFailOnInstanceFail": fail_fast,
            "DAG": {"Tasks": tasks, **({"Dependencies": deps} if deps else {})}}
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "DagJob",
            "metadata": {"name": "etl", "namespace": "team-a", "creationTimestamp": CREATED},
            "spec": spec, **({"status": status} if status is not None else {})}


def table(obj: dict[str, Any], wide: bool = False) -> list[str]:
    """The lines after the header's blank line."""
    out = dagview.lines(obj, NOW, wide)
    return out[out.index("") + 1:]


def test_a_finished_chain_under_argos_header() -> None:
    status = {"State": "Finished", "reason": "AllTasksFinished", "message": "3 tasks finished", "Priority": 100,
              "CreationTime": at(0), "StartTime": at(1), "EndTime": at(170.5), "TaskProgress": "3/3",
              "InstanceMetrics": {"FinishedCount": 4},
              "Tasks": {"a": done(1, 31, instances=2), "b": done(31.1, 91.1), "c": done(91.2, 170.5)}}
    obj = dagjob({"a": command(2, retries=2), "b": command(), "c": command()}, {"a": ["b"], "b": ["c"]}, status)
    assert dagview.lines(obj, NOW) == [
        "Name:      etl",
        "Namespace: team-a",
        "Status:    Finished (AllTasksFinished)",
        "Message:   3 tasks finished",
        "Priority:  100",
        "Created:   2024-05-01 10:00:00 UTC (5 minutes ago)",
        "Started:   2024-05-01 10:00:01 UTC (4 minutes 59 seconds ago)",
        "Finished:  2024-05-01 10:02:50 UTC (2 minutes 9 seconds ago)",
        "Duration:  2 minutes 49 seconds",
        "Progress:  3/3",
        "",
        "TASK        KIND     INSTANCES  RUNS  RETRIES  DURATION  MESSAGE",
        " ✔ etl      DagJob   4/4                       2m49s",
        " └─✔ a      command  2/2        1     max 2    30s",
        "   └─✔ b    command  1/1        1     max 0    1m",
        "     └─✔ c  command  1/1        1     max 0    1m19s",
    ]


def test_fan_out_finished_running_and_waiting_side_by_side() -> None:
    status = {"State": "Running", "reason": "Admitted", "StartTime": at(1), "TaskProgress": "2/4",
              "Tasks": {"split": done(1, 11), "left": done(11.1, 20),
                        "middle": {"State": "Running", "Run": 1, "StartTime": at(11.1), "Child": "etl-middle-1",
                                   "Message": "run 1: etl-middle-1",
                                   "InstanceMetrics": {"FinishedCount": 1, "RunningCount": 2, "WaitingCount": 1}},
                        "right": waiting()}}
    obj = dagjob({"split": command(), "left": command(), "middle": command(4), "right": command()},
                 {"split": ["right", "left", "middle"]}, status)
    assert table(obj) == [
        "TASK           KIND     INSTANCES        RUNS  RETRIES  DURATION  MESSAGE",
        " ● etl         DagJob   3/7 (2 running)                 4m59s",
        " └─✔ split     command  1/1              1     max 0    10s",
        "   ├─✔ left    command  1/1              1     max 0    8s",
        "   ├─● middle  command  1/4 (2 running)  1     max 0    4m48s     run 1: etl-middle-1",
        "   └─◷ right   command  0/1              0     max 0    -",
    ]


def test_a_task_with_several_upstream_tasks_sits_under_the_deepest_naming_the_others() -> None:
    """Diamond A → B, C → D, and E after D with a shortcut from A: D under B (as deep as C, first by
    name), E under D (its longest chain), each naming the upstream tasks it is not under."""
    status = {"State": "Running", "StartTime": at(1),
              "Tasks": {"A": done(1, 5), "B": done(5, 9), "D": waiting(), "E": waiting(),
                        "C": {"State": "Running", "Run": 1, "StartTime": at(5), "InstanceMetrics": {"RunningCount": 1}}}}
    obj = dagjob({n: command() for n in "ABCDE"}, {"A": ["B", "C", "E"], "B": ["D"], "C": ["D"], "D": ["E"]}, status)
    assert table(obj) == [
        "TASK                         KIND     INSTANCES        RUNS  RETRIES  DURATION  MESSAGE",
        " ● etl                       DagJob   2/5 (1 running)                 4m59s",
        " └─✔ A                       command  1/1              1     max 0    4s",
        "   ├─✔ B                     command  1/1              1     max 0    4s",
        "   │ └─◷ D (also after C)    command  0/1              0     max 0    -",
        "   │   └─◷ E (also after A)  command  0/1              0     max 0    -",
        "   └─● C                     command  0/1 (1 running)  1     max 0    4m55s",
    ]


def test_a_failed_task_with_retries_and_the_downstream_task_it_skipped() -> None:
    """JobFailOnInstanceFail false: the failed task's instances and retry limit, its message on one
    line, the skipped task Stopped saying why, the independent branch Finished."""
    status = {"State": "Failed", "reason": "TaskFailed",
              "message": "after: Stopped (skipped: upstream task flaky failed); flaky: Failed (instance(s) 0,1 "
                         "failed after 2 retries); other: Finished",
              "StartTime": at(1), "EndTime": at(40), "TaskProgress": "1/3",
              "Tasks": {"flaky": {"State": "Failed", "Run": 1, "Child": "etl-flaky-1", "StartTime": at(1),
                                  "EndTime": at(40), "FailedIndexes": "0,1", "InstanceMetrics": {"FailedCount": 2},
                                  "Message": "instance(s) 0,1 failed after 2 retries\n(BackoffLimitExceeded)"},
                        "after": {"State": "Stopped", "InstanceMetrics": {"WaitingCount": 1},
                                  "Message": "skipped: upstream task flaky failed"},
                        "other": done(1, 10)}}
    obj = dagjob({"flaky": command(2, retries=2), "after": command(), "other": command()}, {"flaky": ["after"]},
                 status, fail_fast=False)
    assert dagview.lines(obj, NOW) == [
        "Name:      etl",
        "Namespace: team-a",
        "Status:    Failed (TaskFailed)",
        "Message:   after: Stopped (skipped: upstream task flaky failed); flaky: Failed (instance(s) 0,1 failed "
        "after 2 retries); other: Finished",
        "Created:   2024-05-01 10:00:00 UTC (5 minutes ago)",
        "Started:   2024-05-01 10:00:01 UTC (4 minutes 59 seconds ago)",
        "Finished:  2024-05-01 10:00:40 UTC (4 minutes 20 seconds ago)",
        "Duration:  39 seconds",
        "Progress:  1/3",
        "",
        "TASK          KIND     INSTANCES       RUNS  RETRIES  DURATION  MESSAGE",
        " ✖ etl        DagJob   1/4 (2 failed)                 39s",
        " ├─✖ flaky    command  0/2 (2 failed)  1     max 2    39s       instance(s) 0,1 failed after 2 retries "
        "(BackoffLimitExceeded)",
        " │ └─○ after  command  0/1             0     max 0    -         skipped: upstream task flaky failed",
        " └─✔ other    command  1/1             1     max 0    9s",
    ]


def test_sparkbatch_and_flinkjarjob_tasks_name_their_kind_and_wide_their_child() -> None:
    """A child kind's task: its kind, one instance, no command retries; a SparkBatch stopped and
    resumed ran twice. Wide adds the child resource (or Job) and the task's times."""
    status = {"State": "Running", "StartTime": at(1),
              "Tasks": {"spark": done(1, 61, Type="sparkBatch", Child="etl-spark-2", run=2),
                        "flink": {"State": "Running", "Type": "flinkJarJob", "Run": 1, "Child": "etl-flink-1",
                                  "StartTime": at(61.5), "InstanceMetrics": {"RunningCount": 1},
                                  "Message": "run 1: etl-flink-1"},
                        "cmd": {"State": "Running", "Run": 1, "Child": "etl-cmd-1", "StartTime": at(1),
                                "InstanceMetrics": {"RunningCount": 1}}}}
    obj = dagjob({"cmd": command(), "spark": SPARK, "flink": FLINK}, {"spark": ["flink"]}, status)
    assert table(obj, wide=True) == [
        "TASK          KIND         INSTANCES        RUNS  RETRIES  DURATION  CHILD        STARTED               "
        "FINISHED              MESSAGE",
        " ● etl        DagJob       1/3 (2 running)                 4m59s",
        " ├─● cmd      command      0/1 (1 running)  1     max 0    4m59s     etl-cmd-1    2024-05-01T10:00:01Z  -",
        " └─✔ spark    SparkBatch   1/1              2     -        1m        etl-spark-2  2024-05-01T10:00:01Z  "
        "2024-05-01T10:01:01Z",
        "   └─● flink  FlinkJarJob  0/1 (1 running)  1     -        3m58s     etl-flink-1  2024-05-01T10:01:01Z  -"
        "                     run 1: etl-flink-1",
    ]
    assert table(obj)[0] == "TASK          KIND         INSTANCES        RUNS  RETRIES  DURATION  MESSAGE"


def test_a_job_the_operator_has_not_seen_lists_its_tasks_waiting() -> None:
    assert dagview.lines(dagjob({"a": command(3), "b": SPARK}, {"a": ["b"]}), NOW) == [
        "Name:      etl",
        "Namespace: team-a",
        "Status:    not seen by the operator yet",
        "Created:   2024-05-01 10:00:00 UTC (5 minutes ago)",
        "",
        "TASK      KIND        INSTANCES  RUNS  RETRIES  DURATION  MESSAGE",
        " ◷ etl    DagJob      0/4",
        " └─◷ a    command     0/3        0     max 0    -",
        "   └─◷ b  SparkBatch  0/1        0     -        -",
    ]


def test_a_job_failed_over_a_quota_never_started_its_tasks() -> None:
    status = {"State": "Failed", "reason": "QuotaExhausted.MaxTaskInstanceCount", "CreationTime": at(0),
              "EndTime": at(0.2),
              "message": "The MaxTaskInstanceCount (100) quota is exhausted: InstanceCount of task a is 500."}
    assert table(dagjob({"a": command(500), "b": command()}, {"a": ["b"]}, status)) == [
        "TASK      KIND     INSTANCES  RUNS  RETRIES  DURATION  MESSAGE",
        " ✖ etl    DagJob   0/501",
        " └─○ a    command  0/500      0     max 0    -         not started",
        "   └─○ b  command  0/1        0     max 0    -         not started",
    ]


def test_a_cycle_shows_the_header_saying_so_and_no_tree() -> None:
    status = {"State": "Failed", "reason": "InvalidSpec", "CreationTime": at(0), "EndTime": at(0.2),
              "message": "InvalidDependencies: Dependencies form a cycle: A -> B -> A"}
    out = dagview.lines(dagjob({"A": command(), "B": command()}, {"A": ["B"], "B": ["A"]}, status), NOW)
    assert "Status:    Failed (InvalidSpec)" in out
    assert "Message:   InvalidDependencies: Dependencies form a cycle: A -> B -> A" in out
    assert out[out.index("") + 1:] == ["TASK    KIND    INSTANCES  RUNS  RETRIES  DURATION  MESSAGE",
                                       " ✖ etl  DagJob  0/0"]


def test_without_a_valid_spec_the_status_tasks_are_listed_flat() -> None:
    """Only reachable past admission (the job is failed InvalidSpec): what the status has, by name."""
    status = {"State": "Failed", "reason": "InvalidSpec", "StartTime": at(1), "EndTime": at(30),
              "Tasks": {"b": done(1, 20), "a": {"State": "Stopped", "Run": 1, "StartTime": at(1),
                                                  "InstanceMetrics": {"StoppedCount": 2},
                                                  "Message": "the spec is invalid"}}}
    obj = dagjob({"a": command(), "b": command()}, None, status)
    obj["spec"]["DAG"]["Tasks"]["a"]["InstanceCount"] = 0
    assert table(obj) == [
        "TASK    KIND     INSTANCES  RUNS  RETRIES  DURATION  MESSAGE",
        " ✖ etl  DagJob   1/3                       29s",
        " ├─○ a  command  0/2        1     -        -         the spec is invalid",
        " └─✔ b  command  1/1        1     -        19s",
    ]


@pytest.mark.parametrize(("seconds", "long", "short"), [
    (0, "0 seconds", "0s"), (1, "1 second", "1s"), (59.9, "59 seconds", "59s"), (60, "1 minute", "1m"),
    (61, "1 minute 1 second", "1m1s"), (3600, "1 hour", "1h"), (3661, "1 hour 1 minute", "1h1m"),
    (90061, "1 day 1 hour", "1d1h"), (-5, "0 seconds", "0s"),
])
def test_durations_as_argo_says_them(seconds: float, long: str, short: str) -> None:
    assert (dagview._long(seconds), dagview._short(seconds)) == (long, short)


class _Kube:
    """The API as `lakejob get dag` uses it: connect, one GET, close."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    closed = False

    @classmethod
    async def connect(cls) -> _Kube:
        return cls()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    async def close(self) -> None:
        _Kube.closed = True


def test_the_command_prints_the_tree_of_the_dagjob_it_reads(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    status = {"State": "Running", "StartTime": at(1), "Tasks": {"a": done(1, 5, Child="etl-a-1"), "b": waiting()}}
    monkeypatch.setattr(_Kube, "objects", {("DagJob", "team-a", "etl"): dagjob({"a": command(), "b": command()},
                                                                               {"a": ["b"]}, status)})
    monkeypatch.setattr(_Kube, "closed", False)
    monkeypatch.setattr(submit, "Kube", _Kube)
    assert cli.main(["get", "dag", "etl", "-n", "team-a", "-o", "wide"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["Name:      etl", "Namespace: team-a", "Status:    Running"]
    assert " └─✔ a    command  1/1        1     max 0    4s        etl-a-1  2024-05-01T10:00:01Z  " \
           "2024-05-01T10:00:05Z" in out
    assert _Kube.closed
    assert cli.main(["get", "dagjob", "nope", "-n", "team-a"]) == 2
    assert capsys.readouterr().err == "lakejob: no DagJob named nope in namespace team-a\n"

