"""DagJob end to end on the real control plane: DAG order, retries per index, failure modes,
children and garbage collection, stop/resume, notifications, admission.

The tasks' pods are KWOK's (docs/testing.md): a Job's pod succeeds after `sim.lakejob.io/delay`
unless its `pod:` block labels it `sim.lakejob.io/outcome: fail`. The real Job controller runs
the Indexed Jobs (backoffLimitPerIndex, maxFailedIndexes, suspend) and the real garbage collector
removes what a deleted DagJob owned.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import Kubectl, Operator

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
@pytest.fixture(scope="module", autouse=True)
def _priority_classes(priority_classes: None) -> None:
    """Every DagJob pod names one of the chart's PriorityClasses."""


def command(instances: int = 1, retries: int = 0, outcome: str | None = None, delay: str = "1s",
            **extra: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {"annotations": {"sim.lakejob.io/delay": delay}}
    if outcome:
        pod["labels"] = {"sim.lakejob.io/outcome": outcome}
    return {"InstanceCount": instances, "MaxRetryCount": retries, "Timeout": 600,
            "Parameters": {"Command": {"CommandLine": "python worker.py", "PackagePath": ""},
                           "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"},
            "pod": pod, **extra}


def dagjob(name: str, tasks: dict[str, Any], deps: dict[str, list[str]] | None = None, fail_fast: bool = True,
           **spec: Any) -> dict[str, Any]:
    body = {"Name": name, "Priority": 100, "Type": "DAG", "JobFailOnInstanceFail": fail_fast,
            "DAG": {"Tasks": tasks, **({"Dependencies": deps} if deps else {})}, **spec}
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "DagJob", "metadata": {"name": name}, "spec": body}


def status(kubectl: Kubectl, name: str, ns: str) -> dict[str, Any]:
    return (kubectl.get("dagjob", name, ns) or {}).get("status") or {}


def wait_state(kubectl: Kubectl, name: str, ns: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    return kubectl.wait_for(lambda: (s := status(kubectl, name, ns)).get("State") in states and s,
                            f"DagJob {name} to reach {'/'.join(states)}", timeout=timeout, namespace=ns,
                            show=("dagjob", name))


def jobs(kubectl: Kubectl, ns: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["annotations"]["lakejob.io/task"]: j
            for j in kubectl.list("jobs", ns, "lakejob.io/kind=DagJob")}


def pods_per_index(kubectl: Kubectl, ns: str, job: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in kubectl.list("pods", ns, f"batch.kubernetes.io/job-name={job}"):
        index = p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
        out[index] = out.get(index, 0) + 1
    return out


def test_diamond_runs_in_dependency_order(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    tasks = {"A": command(), "B": command(delay="2s"), "C": command(delay="2s"), "D": command(instances=2)}
    kubectl.apply(dagjob("diamond", tasks, {"A": ["B", "C"], "B": ["D"], "C": ["D"]}), namespace)
    st = wait_state(kubectl, "diamond", namespace, "Finished", timeout=90)
    t = st["Tasks"]
    assert all(t[n]["State"] == "Finished" for n in "ABCD")
    assert t["A"]["EndTime"] <= t["B"]["StartTime"] and t["A"]["EndTime"] <= t["C"]["StartTime"]
    assert max(t["B"]["EndTime"], t["C"]["EndTime"]) <= t["D"]["StartTime"]
    # B and C ran side by side
    assert t["B"]["StartTime"] < t["C"]["EndTime"] and t["C"]["StartTime"] < t["B"]["EndTime"]
    assert t["D"]["InstanceMetrics"]["FinishedCount"] == 2 and t["D"]["FinishedIndexes"] == "0,1"
    assert st["TaskProgress"] == "4/4" and st["TaskMetrics"]["FinishedCount"] == 4
    assert st["InstanceMetrics"]["FinishedCount"] == 5
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True", "Complete": "True", "Failed": "False", "Suspended": "False"}
    uid = kubectl.get("dagjob", "diamond", namespace)["metadata"]["uid"]  # type: ignore[index]
    children = jobs(kubectl, namespace)
    assert sorted(children) == ["A", "B", "C", "D"]
    for job in children.values():
        (ref,) = job["metadata"]["ownerReferences"]
        assert ref["kind"] == "DagJob" and ref["uid"] == uid and ref["controller"] is True
    d = children["D"]["spec"]
    assert (d["completionMode"], d["completions"], d["parallelism"], d["backoffLimitPerIndex"]) == ("Indexed", 2, 2, 0)
    assert d["maxFailedIndexes"] == 0 and d["template"]["spec"]["restartPolicy"] == "Never"
    assert d["template"]["spec"]["activeDeadlineSeconds"] == 600
    assert d["template"]["spec"]["priorityClassName"] == "lakejob-priority-low"
    printed = kubectl.run("get", "dag", "diamond", "-n", namespace)
    assert "Finished" in printed and "4/4" in printed and "TASKS" in printed
    events = [e for e in kubectl.list("events", namespace) if e["involvedObject"]["name"] == "diamond"]
    assert {"JobWaiting", "JobRunning", "TaskRunning", "TaskFinished", "JobFinished"} <= {e["reason"] for e in events}
    # The four tasks' plain "Waiting" of the first pass are one Event (controllers.dagjob_decide.kube_events).
    (waiting,) = [e["message"] for e in events if e["reason"] == "TaskWaiting"]
    assert waiting.startswith("tasks ") and waiting.endswith(" Waiting")
    assert sorted(waiting.removeprefix("tasks ").removesuffix(" Waiting").split(", ")) == ["A", "B", "C", "D"]


def test_retries_per_index_and_failure_skips_only_downstream(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    """JobFailOnInstanceFail false: each failing index gets 1 + MaxRetryCount attempts; the failed
    task's downstream task is skipped while an independent branch runs to its end."""
    tasks = {"flaky": command(instances=2, retries=2, outcome="fail", delay="0s"), "after": command(),
             "other": command(delay="2s"), "other2": command()}
    kubectl.apply(dagjob("retry", tasks, {"flaky": ["after"], "other": ["other2"]}, fail_fast=False), namespace)
    st = wait_state(kubectl, "retry", namespace, "Failed", timeout=150)
    t = st["Tasks"]
    assert t["flaky"]["State"] == "Failed" and t["flaky"]["FailedIndexes"] == "0,1"
    assert t["flaky"]["InstanceMetrics"]["FailedCount"] == 2
    assert t["after"]["State"] == "Stopped" and "skipped: upstream task flaky failed" in t["after"]["Message"]
    assert t["other"]["State"] == "Finished" and t["other2"]["State"] == "Finished"
    assert "flaky: Failed" in st["message"] and "other2: Finished" in st["message"]
    assert "after" not in jobs(kubectl, namespace)
    assert pods_per_index(kubectl, namespace, t["flaky"]["Child"]) == {"0": 3, "1": 3}


def test_fail_fast_stops_running_tasks_and_never_starts_downstream(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    tasks = {"bad": command(outcome="fail", delay="1s"), "slow": command(delay="120s"), "next": command()}
    kubectl.apply(dagjob("fast", tasks, {"bad": ["next"]}, fail_fast=True), namespace)
    st = wait_state(kubectl, "fast", namespace, "Failed", timeout=60)
    t = st["Tasks"]
    assert t["bad"]["State"] == "Failed" and t["slow"]["State"] == "Stopped" and t["next"]["State"] == "Stopped"
    assert st["reason"] == "TaskFailed"
    children = jobs(kubectl, namespace)
    assert "next" not in children and children["slow"]["spec"]["suspend"] is True
    kubectl.wait_for(lambda: not kubectl.list("pods", namespace, "batch.kubernetes.io/job-name=" + t["slow"]["Child"]),
                     "the stopped task's pods to go", namespace=namespace)


def test_the_batchcompute_example_is_accepted_and_runs(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "dagjob-batchcompute.yaml"))
    st = wait_state(kubectl, "testjob", namespace, "Finished", timeout=60)
    assert st["Name"] == "testJob" and st["Priority"] == 1
    job = jobs(kubectl, namespace)["taskA"]
    pod = job["spec"]["template"]["spec"]
    fetch, upload = pod["initContainers"]
    assert fetch["args"] == ["--package", "oss://bucket/tests/worker.tar.gz", "--into", "/lakejob/work",
                             "--map", "oss://bucket/tmp/=/home/mount1/",
                             "--map", "oss://your-bucket/mount-source=/home/admin/mount-dest"]
    assert fetch["image"] == upload["image"] == "ghcr.io/lakejob/operator:0.1.0"
    assert fetch["command"] == ["lakejob-oss", "fetch"] and upload["command"] == ["lakejob-oss", "upload"]
    assert upload["restartPolicy"] == "Always" and "--stdout-to" in upload["args"]
    main = pod["containers"][0]
    assert main["command"][-2:] == ["python", "worker.py"] and main["command"][0] == "/bin/sh"
    assert main["workingDir"] == "/lakejob/work"
    env = {e["name"]: e for e in main["env"]}
    assert env["BATCH_COMPUTE_DAG_TASK_ID"]["value"] == "taskA"
    assert env["BATCH_COMPUTE_DAG_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert job["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 172800
    assert "nodeSelector" not in pod  # ClusterId wins, and no node label is configured for it
    assert kubectl.get("secret", "testjob-oss", namespace) is None  # the example's keys are empty


def test_inline_oss_keys_go_to_an_owned_secret_and_nowhere_else(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    task = command(Mounts={"OSS": {"AccessKeyId": "AKID-SECRETVALUE", "AccessKeySecret": "KEY-SECRETVALUE"}})
    task["Parameters"]["Command"]["PackagePath"] = "oss://bucket/app.tar.gz"
    kubectl.apply(dagjob("keys", {"A": task}), namespace)
    wait_state(kubectl, "keys", namespace, "Finished")
    secret = kubectl.get("secret", "keys-oss", namespace)
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["kind"] == "DagJob"
    job = json.dumps(jobs(kubectl, namespace)["A"])
    assert "SECRETVALUE" not in job and "keys-oss" in job
    assert "SECRETVALUE" not in json.dumps(status(kubectl, "keys", namespace))
    assert "SECRETVALUE" not in kubectl.run("get", "events", "-n", namespace, "-o", "json")
    assert "SECRETVALUE" not in operator.output()


def test_autorelease_deletes_the_finished_job_and_its_children(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(dagjob("gone", {"A": command(), "B": command()}, {"A": ["B"]}, AutoRelease=True), namespace)
    kubectl.wait_for(lambda: len(jobs(kubectl, namespace)) == 2, "both tasks to start", namespace=namespace)
    kubectl.wait_for(lambda: kubectl.get("dagjob", "gone", namespace) is None, "AutoRelease to delete the DagJob",
                     timeout=60, namespace=namespace)
    kubectl.wait_for(lambda: not jobs(kubectl, namespace), "the garbage collector to delete its Jobs",
                     timeout=60, namespace=namespace)


def test_spark_then_flink_children_are_owned_and_deleting_removes_everything(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    spark = {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
             "className": "org.apache.spark.examples.SparkPi",
             "driver": {"labels": {"sim.lakejob.io/outcome": "succeed"}, "annotations": {"sim.lakejob.io/delay": "1s"}}}
    flink = {"name": "stream", "entrypoint": "local:///opt/flink/examples/streaming/WordCount.jar",
             "main_class": "org.apache.flink.streaming.examples.wordcount.WordCount",
             "jobManager": {"labels": {"sim.lakejob.io/outcome": "succeed"}, "annotations": {"sim.lakejob.io/delay": "2s"}}}
    kubectl.apply(dagjob("mixed", {"cmd": command(delay="120s"), "spark": {"sparkBatch": spark},
                                   "flink": {"flinkJarJob": flink}}, {"spark": ["flink"]}), namespace)
    uid = kubectl.wait_for(lambda: (kubectl.get("dagjob", "mixed", namespace) or {}).get("metadata", {}).get("uid"),
                           "the DagJob", namespace=namespace)
    sb = kubectl.wait_for(lambda: kubectl.list("sparkbatches", namespace, "lakejob.io/kind=DagJob"),
                          "the child SparkBatch", namespace=namespace)[0]
    assert sb["metadata"]["ownerReferences"][0]["uid"] == uid and sb["metadata"]["ownerReferences"][0]["controller"]
    assert sb["spec"]["driver"]["priorityClassName"] == "lakejob-priority-low"
    fj = kubectl.wait_for(lambda: kubectl.list("flinkjarjobs", namespace, "lakejob.io/kind=DagJob"),
                          "the child FlinkJarJob after the SparkBatch succeeded", timeout=90, namespace=namespace)[0]
    (ref,) = fj["metadata"]["ownerReferences"]
    assert ref["kind"] == "DagJob" and ref["uid"] == uid and ref["controller"] is True
    st = status(kubectl, "mixed", namespace)
    assert st["Tasks"]["spark"]["State"] == "Finished" and st["Tasks"]["flink"]["Type"] == "flinkJarJob"
    assert st["Tasks"]["spark"]["EndTime"] <= st["Tasks"]["flink"]["StartTime"]
    # The FlinkJarJob runs to job_finish under its own controller, and the DagJob follows it.
    st = kubectl.wait_for(lambda: (s := status(kubectl, "mixed", namespace))["Tasks"]["flink"]["State"] == "Finished"
                          and s, "the flink task to finish", timeout=90, namespace=namespace, show=("dagjob", "mixed"))
    assert (kubectl.get("flinkjarjob", fj["metadata"]["name"], namespace) or {})["status"]["status_name"] == "job_finish"
    assert st["State"] == "Running" and st["Tasks"]["cmd"]["State"] == "Running"  # deleted mid-run below
    kubectl.run("delete", "dagjob", "mixed", "-n", namespace, "--wait=false")
    kubectl.wait_for(lambda: not (kubectl.list("sparkbatches", namespace) or kubectl.list("flinkjarjobs", namespace)
                                  or jobs(kubectl, namespace) or kubectl.list("pods", namespace)),
                     "every child (Jobs, SparkBatch, FlinkJarJob, pods) to be garbage collected", timeout=90,
                     namespace=namespace)


def test_stop_then_resume_continues_where_it_was(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(dagjob("pause", {"A": command(), "B": command(instances=2, delay="8s"), "C": command()},
                         {"A": ["B"], "B": ["C"]}), namespace)
    kubectl.wait_for(lambda: status(kubectl, "pause", namespace).get("Tasks", {}).get("B", {}).get("State")
                     == "Running", "task B to run", namespace=namespace, show=("dagjob", "pause"))
    job_b = status(kubectl, "pause", namespace)["Tasks"]["B"]["Child"]
    kubectl.wait_for(lambda: kubectl.list("pods", namespace, f"batch.kubernetes.io/job-name={job_b}"),
                     "B's pods", namespace=namespace)
    kubectl.run("patch", "dag", "pause", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    st = wait_state(kubectl, "pause", namespace, "Stopped")
    assert st["Tasks"]["A"]["State"] == "Finished" and st["Tasks"]["B"]["State"] == "Stopped"
    assert st["Tasks"]["C"]["State"] == "Waiting"
    kubectl.wait_for(lambda: not [p for p in kubectl.list("pods", namespace, f"batch.kubernetes.io/job-name={job_b}")
                                  if p["status"].get("phase") in ("Pending", "Running")],
                     "B's running pods to be stopped", namespace=namespace)
    assert jobs(kubectl, namespace)["B"]["spec"]["suspend"] is True
    kubectl.run("patch", "dag", "pause", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    st = wait_state(kubectl, "pause", namespace, "Finished", timeout=90)
    # Not from scratch: A ran once, B is the same Job (continued), nothing was created twice.
    a_pods = kubectl.list("pods", namespace, f"batch.kubernetes.io/job-name={st['Tasks']['A']['Child']}")
    assert len(a_pods) == 1 and st["Tasks"]["A"]["Run"] == 1 and st["Tasks"]["B"]["Run"] == 1
    assert st["Tasks"]["B"]["Child"] == job_b and sorted(jobs(kubectl, namespace)) == ["A", "B", "C"]
    reasons = [e["reason"] for e in kubectl.list("events", namespace) if e["involvedObject"]["name"] == "pause"]
    assert "JobStopped" in reasons and "TaskStopped" in reasons


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"content_type": self.headers["Content-Type"], **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    server.shutdown()


def test_listed_events_reach_the_endpoint_in_order(kubectl: Kubectl, namespace: str, operator: Operator,
                                                   hook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = hook
    topic = {"Name": "t", "Endpoint": url, "Events": ["OnJobRunning", "OnTaskRunning", "OnTaskFinished",
                                                      "OnJobFinished", "OnInstanceFinished"]}
    kubectl.apply(dagjob("told", {"A": command(), "B": command()}, {"A": ["B"]},
                         Notification={"Topic": topic}), namespace)
    wait_state(kubectl, "told", namespace, "Finished")
    kubectl.wait_for(lambda: len(received) >= 8, "8 notifications", namespace=namespace)
    seen = [(e["data"]["Event"], e["data"]["TaskName"]) for e in received]
    assert seen == [("OnJobRunning", None), ("OnTaskRunning", "A"), ("OnInstanceFinished", "A"),
                    ("OnTaskFinished", "A"), ("OnTaskRunning", "B"), ("OnInstanceFinished", "B"),
                    ("OnTaskFinished", "B"), ("OnJobFinished", None)]
    first = received[0]
    assert first["content_type"] == "application/cloudevents+json" and first["specversion"] == "1.0"
    assert first["type"] == "io.lakejob.dagjob.OnJobRunning" and first["source"] == f"/namespaces/{namespace}/dagjobs/told"
    kubectl.wait_for(lambda: status(kubectl, "told", namespace).get("notifications") == {"delivered": 8, "failed": 0},
                     "the delivery count in status", namespace=namespace, show=("dagjob", "told"))
    # Instance-level Events only for the listed kinds; job/task-level ones always.
    reasons = [e["reason"] for e in kubectl.list("events", namespace) if e["involvedObject"]["name"] == "told"]
    assert "InstanceFinished" in reasons and "InstanceWaiting" not in reasons and "TaskWaiting" in reasons



def test_a_priority_change_is_an_event_and_a_notification(kubectl: Kubectl, namespace: str, operator: Operator,
                                                          hook: tuple[str, list[dict[str, Any]]]) -> None:
    """Priority is the one field besides suspend that may change (BatchCompute's OnPriorityChange)."""
    url, received = hook
    topic = {"Name": "t", "Endpoint": url, "Events": ["OnPriorityChange"]}
    kubectl.apply(dagjob("bump", {"A": command(delay="60s")}, Notification={"Topic": topic}), namespace)
    wait_state(kubectl, "bump", namespace, "Running")
    kubectl.run("patch", "dag", "bump", "-n", namespace, "--type=merge", "-p", '{"spec":{"Priority":900}}')
    kubectl.wait_for(lambda: received, "the OnPriorityChange notification", namespace=namespace,
                     show=("dagjob", "bump"))
    (event,) = received
    assert event["data"]["Event"] == "OnPriorityChange" and event["data"]["Message"] == "Priority 100 -> 900"
    assert status(kubectl, "bump", namespace)["Priority"] == 900
    kubectl.wait_for(lambda: "PriorityChange" in [e["reason"] for e in kubectl.list("events", namespace)
                                                  if e["involvedObject"]["name"] == "bump"],
                     "the PriorityChange Event", namespace=namespace)

BAD = [
    ({"Name": "1job"}, "spec.Name", "InvalidName"),
    ({"Priority": 1001}, "spec.Priority", "1000"),
    ({"Type": "Batch"}, "spec.Type", "Unsupported value"),
    ({"Description": "x" * 1025}, "spec.Description", "Too long"),
    ({"DAG": {"Tasks": {}}}, "spec.DAG.Tasks", "should have at least 1"),
    ({"DAG": {"Tasks": {f"t{i}": command() for i in range(17)}}}, "spec.DAG.Tasks", "must have at most 16"),
    ({"DAG": {"Tasks": {"9lives": command()}}}, "spec.DAG.Tasks", "InvalidTasks.{key}"),
    ({"DAG": {"Tasks": {"A": command()}, "Dependencies": {"A": ["Z"]}}}, "spec.DAG.Dependencies",
     "InvalidDependencies"),
    ({"DAG": {"Tasks": {"A": command(InstanceCount=0)}}}, "InstanceCount", "should be greater than or equal to 1"),
    ({"DAG": {"Tasks": {"A": command(InputMapping={"oss://bucket/in/": "relative/dir"})}}},
     "spec.DAG.Tasks[A].InputMapping", "InvalidInputMapping.{key}.value"),
    ({"DAG": {"Tasks": {"A": command(LogMapping={"/var/log/app.log": "oss://bucket/logs"})}}},
     "spec.DAG.Tasks[A].LogMapping", "InvalidLogMapping.{key}.value"),
    ({"DAG": {"Tasks": {"A": command(ClusterId="0cls")}}}, "spec.DAG.Tasks[A].ClusterId", "InvalidClusterId"),
    ({"DAG": {"Tasks": {"A": {**command(), "Parameters": {
        "Command": {"CommandLine": "python x.py", "PackagePath": "oss://bucket/pkg/",
                    "EnvVars": {"K": "v"}},
        "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"}}}}},
     "PackagePath", "InvalidPackagePath"),
    ({"DAG": {"Tasks": {"A": {**command(), "Parameters": {
        "Command": {"CommandLine": "python x.py", "EnvVars": {f"K{i}": "v" for i in range(65)}},
        "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"}}}}},
     "EnvVars", "must have at most 64"),
    ({"DAG": {"Tasks": {"A": {"InstanceCount": 1}}}}, "spec.DAG.Tasks[A].Parameters", "MissingParameters"),
    # every CEL rule once more, evaluated by the apiserver itself
    ({"DAG": {"Tasks": {"t" * 65: command()}}}, "spec.DAG.Tasks", "Its length must be in [1, 64]"),
    ({"DAG": {"Tasks": {"A": {**command(), "InstanceCount": None}}}}, "spec.DAG.Tasks[A].InstanceCount",
     "MissingInstanceCount"),
    ({"DAG": {"Tasks": {"A": {**command(), "Timeout": None}}}}, "spec.DAG.Tasks[A].Timeout", "MissingTimeout"),
    ({"DAG": {"Tasks": {"A": command(sparkBatch={"file": "local:///a.py"})}}}, "spec.DAG.Tasks[A]",
     "a task is exactly one of"),
    ({"DAG": {"Tasks": {"A": {"sparkBatch": {"file": "local:///a.py"}, "Timeout": 5}}}}, "spec.DAG.Tasks[A]",
     "takes only its embedded spec"),
    ({"DAG": {"Tasks": {"A": {"sparkBatch": {"file": "local:///a.jar"}}}}}, "spec.DAG.Tasks[A].sparkBatch.className",
     "className is required"),
    ({"DAG": {"Tasks": {"A": command(InputMapping={"s3://bucket/in/": "/in/"})}}},
     "spec.DAG.Tasks[A].InputMapping", "InvalidInputMapping.{key}:"),
    ({"DAG": {"Tasks": {"A": command(OutputMapping={"out/": "oss://bucket/out/"})}}},
     "spec.DAG.Tasks[A].OutputMapping", "InvalidOutputMapping.{key}:"),
    ({"DAG": {"Tasks": {"A": command(OutputMapping={"/out/": "oss:/bucket/out/"})}}},
     "spec.DAG.Tasks[A].OutputMapping", "InvalidOutputMapping.{key}.value"),
    ({"DAG": {"Tasks": {"A": command(LogMapping={"log": "oss://bucket/logs/"})}}},
     "spec.DAG.Tasks[A].LogMapping", "InvalidLogMapping.{key}:"),
    ({"DAG": {"Tasks": {"A": command(Mounts={"Entries": [{"Source": "nas://x/", "Destination": "rel"}]})}}},
     "spec.DAG.Tasks[A].Mounts.Entries[0].Source", "InvalidSource"),
    ({"DAG": {"Tasks": {"A": command(Mounts={"Entries": [{"Source": "oss://bucket/m/", "Destination": "rel"}]})}}},
     "spec.DAG.Tasks[A].Mounts.Entries[0].Destination", "InvalidDestination"),
    ({"DAG": {"Tasks": {"A": command(Mounts={"OSS": {"AccessKeyId": "id", "secretName": "s"}})}}},
     "spec.DAG.Tasks[A].Mounts.OSS.secretName", "either inline or as secretName"),
    ({"DAG": {"Tasks": {"A": command(AutoCluster={"InstanceType": "t", "ImageId": "i", "ECSImageId": "e"})}}},
     "spec.DAG.Tasks[A].AutoCluster.ImageId", "only one of ECSImageId and ImageId"),
    ({"DAG": {"Tasks": {"A": {**command(), "Parameters": {
        "Command": {"CommandLine": "python x.py", "EnvVars": {"K" * 129: "v"}},
        "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"}}}}},
     "spec.DAG.Tasks[A].Parameters.Command.EnvVars", "InvalidEnvVars.{key}"),
    ({"DAG": {"Tasks": {"A": {**command(), "Parameters": {
        "Command": {"CommandLine": "python x.py"},
        "StdoutRedirectPath": "oss://bucket/out.log", "StderrRedirectPath": "oss://bucket/logs/"}}}}},
     "spec.DAG.Tasks[A].Parameters.StdoutRedirectPath", "InvalidStdoutRedirectPath"),
]


@pytest.mark.parametrize(("patch", "field", "message"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_manifests_are_rejected_naming_the_field(kubectl: Kubectl, namespace: str, patch: dict[str, Any],
                                                     field: str, message: str) -> None:
    manifest = dagjob("bad", {"A": command()})
    manifest["spec"].update(patch)
    for task in manifest["spec"]["DAG"]["Tasks"].values():  # None: leave the field out
        for k in [k for k, v in task.items() if v is None]:
            del task[k]
    r = kubectl.result("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    assert r.returncode != 0, f"accepted: {patch}"
    assert field in r.stderr and message in r.stderr, r.stderr


def test_a_cycle_fails_the_job_with_the_cycle_printed(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(dagjob("loop", {"A": command(), "B": command(), "C": command()},
                         {"A": ["B"], "B": ["C"], "C": ["A"]}), namespace)
    st = wait_state(kubectl, "loop", namespace, "Failed")
    assert st["reason"] == "InvalidSpec" and "Dependencies form a cycle: A -> B -> C -> A" in st["message"]
    time.sleep(1)
    assert not jobs(kubectl, namespace)


def test_a_free_slot_goes_to_the_highest_priority_waiting_job(kubectl: Kubectl, kubeconfig: str, tmp_path: Path,
                                                              crds_installed: None) -> None:
    """An operator of its own with one Running slot: the queue is ordered by Priority, not age."""
    ns = kubectl.fresh_namespace("solo-dagq")
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={"LAKEJOB_DAG_MAX_RUNNING": "1"})
    try:
        op.start()
        kubectl.apply(dagjob("first", {"A": command(delay="5s")}, Priority=0), ns)
        wait_state(kubectl, "first", ns, "Running")
        kubectl.apply(dagjob("low", {"A": command()}, Priority=1), ns)
        kubectl.apply(dagjob("high", {"A": command()}, Priority=900), ns)
        assert wait_state(kubectl, "low", ns, "Waiting")["reason"] == "Queued"
        for name in ("first", "low", "high"):
            wait_state(kubectl, name, ns, "Finished", timeout=60)
        first, low, high = (status(kubectl, n, ns) for n in ("first", "low", "high"))
        assert first["EndTime"] <= high["StartTime"] and high["EndTime"] <= low["StartTime"]
        assert high["Tasks"]["A"]["StartTime"] < low["Tasks"]["A"]["StartTime"]
        classes = {j["metadata"]["ownerReferences"][0]["name"]: j["spec"]["template"]["spec"]["priorityClassName"]
                   for j in kubectl.list("jobs", ns, "lakejob.io/kind=DagJob")}
        assert classes == {"first": "lakejob-priority-low", "low": "lakejob-priority-low",
                           "high": "lakejob-priority-urgent"}
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


def test_notifications_pending_when_the_operator_dies_are_delivered_by_the_next_one(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path, crds_installed: None) -> None:
    """The outbox (docs/reliability.md): queued in status before sending, so a kill -9 loses none;
    a redelivery carries the same CloudEvent id, so the receiver sees each event once by id."""
    ns = kubectl.fresh_namespace("solo-outbox")
    with socket.socket() as s:  # a port nothing listens on yet: every POST is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/events"
    env = {"LAKEJOB_NOTIFY_RETRIES": "8"}  # the first operator is still retrying when it is killed
    first = Operator(kubeconfig, ["--namespace", ns], tmp_path / "first.log", env=env)
    second = Operator(kubeconfig, ["--namespace", ns], tmp_path / "second.log", env=env)
    server = None
    try:
        first.start()
        topic = {"Name": "t", "Endpoint": url, "Events": ["OnJobRunning", "OnJobFinished"]}
        kubectl.apply(dagjob("told", {"A": command(delay="3s")}, Notification={"Topic": topic}), ns)
        pending = kubectl.wait_for(lambda: status(kubectl, "told", ns).get("outbox"), "a notification in the outbox",
                                   namespace=ns, show=("dagjob", "told"))
        first.kill()
        ids = [json.loads(e["event"])["id"] for e in pending]
        received: list[dict[str, Any]] = []
        server = HTTPServer(("127.0.0.1", port), type("Hook", (_Hook,), {"received": received}))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        second.start()
        wait_state(kubectl, "told", ns, "Finished")
        kubectl.wait_for(lambda: not status(kubectl, "told", ns).get("outbox") and len({e["id"] for e in received}) >= 2,
                         "the outbox to drain", namespace=ns, show=("dagjob", "told"))
        by_id = {e["id"]: e["data"]["Event"] for e in received}
        assert set(ids) <= set(by_id) and sorted(by_id.values()) == ["OnJobFinished", "OnJobRunning"], received
    finally:
        second.stop()
        first.stop()
        if server is not None:
            server.shutdown()
        kubectl.ok("delete", "namespace", ns, "--wait=false")
