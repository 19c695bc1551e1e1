"""DagJob, really (issue 12): command tasks whose commands run on the real node, in the local task
image (images/task: Debian's Python and /bin/sh; the chart's `dag.defaultImage` and `dag.images`
point at it, hack/incluster.py), with the operator installed by Helm and moto's S3 server as the
OSS store (tests/e2e/objectstore.py: `stores.oss.endpoint`, path-style addressing).

- A diamond a → {b, c} → d: every task's package (a .tar.gz) is fetched from the store and
  unpacked, its InputMapping files are there (b, c and d read what a, b and c uploaded through
  their OutputMapping), stdout and stderr land under BatchCompute's names; c has InstanceCount 3
  and each instance writes an object named after BATCH_COMPUTE_DAG_INSTANCE_ID. Every object is
  read back through the S3 API. OSS keys as BatchCompute users give them (inline Mounts.OSS), and
  one task with none, which gets the operator's store Secret.
- A task that exits non-zero with MaxRetryCount 1 runs twice; with JobFailOnInstanceFail the DAG
  then fails, a task running beside it is stopped (its command ends on SIGTERM, its output is
  uploaded) and the one after it never starts.
- A sparkBatch task runs SparkPi as a child SparkBatch, then its downstream command task.
- A flinkJarJob task runs a bounded Flink job (data/FlinkSumJob.java, its jar a DLI package in the
  store) as a child FlinkJarJob to job_finish, then its downstream command task.
"""
from __future__ import annotations

import io
import json
import tarfile
import uuid
from typing import Any

import pytest

from lakejob.render.common import short_name
from tests.e2e.kubectl import Kubectl
from tests.e2e.objectstore import KEY_ID, KEY_SECRET, ObjectStore
from tests.e2e.real import REAL_NODE
from tests.e2e.test_dagjob import dagjob, jobs, status, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")]
BUCKET = "lakejob-dag"
DAG_TIMEOUT = 600  # three waves of pods, each starting Python three times, on a shared 2-core machine

# The package's program: one script, its role the first argument, as BatchCompute's `python worker.py`.
WORKER = b"""\
import os, sys, time
role, index = sys.argv[1], os.environ["BATCH_COMPUTE_DAG_INSTANCE_ID"]
def read(path):
    with open(path) as f:
        return f.read().strip()
factor = int(read("lib/factor.txt"))  # another member of the package, unpacked beside worker.py
if role == "a":
    value = sum(int(n) for n in read("/data/in/numbers.txt").split())
elif role == "b":
    value = factor * int(read("/data/in/a.txt"))
elif role == "c":
    value = int(read("/data/in/a.txt")) + int(index)
elif role == "d":
    value = int(read("/data/b/b.txt")) + sum(int(read("/data/c/" + n)) for n in sorted(os.listdir("/data/c")))
elif role == "fail":
    print("failing on purpose, instance", index, file=sys.stderr)
    sys.exit(3)
elif role == "sleep":
    print("sleeping", index, flush=True)
    time.sleep(600)  # no SIGTERM handler: the default action must end it
name = f"c-{index}.txt" if role == "c" else f"{role}.txt"
with open(os.path.join("/data/out", name), "w") as f:
    f.write(f"{value}\\n")
print(f"{role}[{index}] of {os.environ['BATCH_COMPUTE_DAG_JOB_NAME']}: {value} {os.environ.get('GREETING', '')}")
print(f"{role}[{index}] on stderr", file=sys.stderr)
"""
INLINE_KEYS = {"OSS": {"AccessKeyId": KEY_ID, "AccessKeySecret": KEY_SECRET, "AccessSecurityToken": ""}}


def package() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in (("worker.py", WORKER), ("lib/factor.txt", b"2\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def task(role: str, prefix: str, inputs: dict[str, str] | None = None, instances: int = 1, retries: int = 0,
         keys: bool = True, outputs: bool = True) -> dict[str, Any]:
    """A command task running `python worker.py <role>` from the package under `prefix`."""
    body: dict[str, Any] = {
        "InstanceCount": instances, "MaxRetryCount": retries, "Timeout": 600,
        "Parameters": {"Command": {"CommandLine": f"python worker.py {role}",
                                   "PackagePath": f"oss://{BUCKET}/{prefix}/pkg/worker.tar.gz",
                                   "EnvVars": {"GREETING": f"hello-{role}"}},
                       "StdoutRedirectPath": f"oss://{BUCKET}/{prefix}/logs/",
                       "StderrRedirectPath": f"oss://{BUCKET}/{prefix}/logs/"},
        # BatchCompute's image name: hack/incluster.py maps it to the local task image.
        "AutoCluster": {"ImageId": "img-ubuntu", "InstanceType": "bcs.a2.large"},
        "InputMapping": inputs or {},
    }
    if outputs:
        body["OutputMapping"] = {"/data/out": f"oss://{BUCKET}/{prefix}/run/{role}/"}
    if keys:
        body["Mounts"] = INLINE_KEYS
    return body


def read(store: ObjectStore, key: str) -> str:
    body: bytes = store.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body.decode()


def keys_under(store: ObjectStore, prefix: str) -> set[str]:
    pages = store.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def prefix(object_store: ObjectStore) -> str:
    """A fresh prefix in the DAG bucket, holding the package."""
    client = object_store.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    p = f"t-{uuid.uuid4().hex[:8]}"
    client.put_object(Bucket=BUCKET, Key=f"{p}/pkg/worker.tar.gz", Body=package())
    return p


def no_keys_in(*texts: str) -> None:
    for text in texts:
        assert KEY_ID not in text and KEY_SECRET not in text


def test_a_diamond_of_commands_fetches_runs_and_uploads_under_batchcompute_names(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, object_store: ObjectStore,
        priority_classes: None, prefix: str) -> None:
    ns = real_namespace
    client = object_store.client()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/in/numbers.txt", Body=b"1 2 3 4\n")
    run = f"oss://{BUCKET}/{prefix}/run"
    tasks = {
        "a": task("a", prefix, {f"oss://{BUCKET}/{prefix}/in/": "/data/in/"}),
        "b": task("b", prefix, {f"{run}/a/a.txt": "/data/in/a.txt"}),
        # No keys of its own: the operator's store Secret (stores.secretName) signs its requests.
        "c": task("c", prefix, {f"{run}/a/a.txt": "/data/in/a.txt"}, instances=3, keys=False),
        "d": task("d", prefix, {f"{run}/b/b.txt": "/data/b/b.txt", f"{run}/c/": "/data/c/"}),
    }
    body = dagjob("diamond", tasks, {"a": ["b", "c"], "b": ["d"], "c": ["d"]})
    kubectl.apply(body, ns)
    try:
        st = wait_state(kubectl, "diamond", ns, "Finished", "Failed", timeout=DAG_TIMEOUT)
        assert st["State"] == "Finished", json.dumps(st, indent=1)
        t = st["Tasks"]
        assert t["a"]["EndTime"] <= min(t["b"]["StartTime"], t["c"]["StartTime"])
        assert max(t["b"]["EndTime"], t["c"]["EndTime"]) <= t["d"]["StartTime"]
        assert t["c"]["InstanceMetrics"]["FinishedCount"] == 3
        uid = kubectl.get("dagjob", "diamond", ns)["metadata"]["uid"]  # type: ignore[index]
        # OutputMapping: a = 1+2+3+4; b = a × the package's factor; c[i] = a + i; d = b + Σ c.
        assert read(object_store, f"{prefix}/run/a/a.txt") == "10\n"
        assert read(object_store, f"{prefix}/run/b/b.txt") == "20\n"
        assert {k: read(object_store, k) for k in keys_under(object_store, f"{prefix}/run/c/")} == {
            f"{prefix}/run/c/c-{i}.txt": f"{10 + i}\n" for i in range(3)}
        assert read(object_store, f"{prefix}/run/d/d.txt") == "53\n"
        # stdout and stderr: `{stdout|stderr}.{JobId}.{TaskId}.{InstanceId}` in the redirect folders.
        values = {"a": {"0": 10}, "b": {"0": 20}, "c": {str(i): 10 + i for i in range(3)}, "d": {"0": 53}}
        expected = {f"{prefix}/logs/{stream}.{uid}.{name}.{index}"
                    for stream in ("stdout", "stderr") for name, per in values.items() for index in per}
        assert keys_under(object_store, f"{prefix}/logs/") == expected
        for name, per in values.items():
            for index, value in per.items():
                assert read(object_store, f"{prefix}/logs/stdout.{uid}.{name}.{index}") == \
                    f"{name}[{index}] of diamond: {value} hello-{name}\n"
                assert read(object_store, f"{prefix}/logs/stderr.{uid}.{name}.{index}") == \
                    f"{name}[{index}] on stderr\n"
        # Each instance ran once, on the real node, in the task image.
        pods = kubectl.list("pods", ns, "lakejob.io/kind=DagJob,lakejob.io/name=diamond")
        assert len(pods) == 6 and all(p["status"]["phase"] == "Succeeded" for p in pods)
        assert {p["spec"]["nodeName"] for p in pods} == {"lakejob-real"}
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"lakejob.local/task:bookworm"}
        release, op_ns = incluster_operator
        logs = kubectl.result("logs", "-n", op_ns, "-l", "app.kubernetes.io/name=lakejob", "--tail=-1").stdout
        no_keys_in(json.dumps(status(kubectl, "diamond", ns)), kubectl.events(ns), logs, json.dumps(pods))
    finally:
        kubectl.run("delete", "dagjob", "diamond", "-n", ns, "--wait=false")


def test_a_failing_instance_runs_1_plus_max_retry_count_times_then_fails_the_dag(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, object_store: ObjectStore,
        priority_classes: None, prefix: str) -> None:
    ns = real_namespace
    tasks = {"flaky": task("fail", prefix, retries=1, outputs=False),
             "slow": task("sleep", prefix, outputs=False),
             "after": task("a", prefix)}
    kubectl.apply(dagjob("failing", tasks, {"flaky": ["after"]}, fail_fast=True), ns)
    try:
        st = wait_state(kubectl, "failing", ns, "Finished", "Failed", timeout=DAG_TIMEOUT)
        assert st["State"] == "Failed", json.dumps(st, indent=1)
        t = st["Tasks"]
        assert t["flaky"]["State"] == "Failed" and t["flaky"]["FailedIndexes"] == "0", json.dumps(t, indent=1)
        # JobFailOnInstanceFail: the running task is stopped, the downstream one never starts.
        assert t["slow"]["State"] == "Stopped" and t["after"]["State"] == "Stopped", json.dumps(t, indent=1)
        children = {task: job for task, job in jobs(kubectl, ns).items()
                    if job["metadata"]["labels"]["lakejob.io/name"] == "failing"}
        assert "after" not in children and children["slow"]["spec"]["suspend"] is True
        job = children["flaky"]["metadata"]["name"]
        attempts = kubectl.list("pods", ns, f"batch.kubernetes.io/job-name={job}")
        assert len(attempts) == 2, [p["metadata"]["name"] for p in attempts]  # 1 + MaxRetryCount
        for pod in attempts:
            (main,) = pod["status"]["containerStatuses"]
            assert main["state"]["terminated"]["exitCode"] == 3, main
        uid = kubectl.get("dagjob", "failing", ns)["metadata"]["uid"]  # type: ignore[index]
        assert read(object_store, f"{prefix}/logs/stderr.{uid}.flaky.0") == "failing on purpose, instance 0\n"
        # The stopped command gets SIGTERM and ends (well within the 120 s grace period, which a
        # command ignoring it as the container's PID 1 would use up), and the sidecar uploads what
        # it printed.
        slow = f"batch.kubernetes.io/job-name={children['slow']['metadata']['name']}"
        kubectl.wait_for(lambda: not kubectl.list("pods", ns, slow), "the stopped task's pod to be gone",
                         timeout=60, namespace=ns)
        assert read(object_store, f"{prefix}/logs/stdout.{uid}.slow.0") == "sleeping 0\n"
    finally:
        kubectl.run("delete", "dagjob", "failing", "-n", ns, "--wait=false")


def test_a_sparkbatch_task_runs_sparkpi_as_a_child_then_its_downstream_command(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, object_store: ObjectStore,
        priority_classes: None, prefix: str) -> None:
    ns = real_namespace
    # Small sizes (tests/e2e/test_sparkbatch_real_node.py); the operator's workload placement puts
    # the child's pods on the real node.
    spark = {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
             "className": "org.apache.spark.examples.SparkPi", "args": ["4"], "numExecutors": 1,
             "driverMemory": "512M", "driverCores": 1, "executorMemory": "512M", "executorCores": 1}
    tasks = {"pi": {"sparkBatch": spark},
             "report": task("a", prefix, {f"oss://{BUCKET}/{prefix}/in/": "/data/in/"})}
    object_store.client().put_object(Bucket=BUCKET, Key=f"{prefix}/in/numbers.txt", Body=b"5 6\n")
    kubectl.apply(dagjob("with-spark", tasks, {"pi": ["report"]}), ns)
    try:
        st = wait_state(kubectl, "with-spark", ns, "Finished", "Failed", timeout=DAG_TIMEOUT)
        assert st["State"] == "Finished", json.dumps(st, indent=1)
        t = st["Tasks"]
        assert t["pi"]["Type"] == "sparkBatch" and t["pi"]["EndTime"] <= t["report"]["StartTime"]
        child = kubectl.get("sparkbatch", t["pi"]["Child"], ns)
        assert child is not None and child["metadata"]["ownerReferences"][0]["name"] == "with-spark"
        assert child["status"]["state"] == "success", json.dumps(child["status"], indent=1)
        assert any("Pi is roughly 3.1" in line for line in child["status"].get("log", [])), child["status"]
        driver = kubectl.list("pods", ns, f"lakejob.io/name={short_name(t['pi']['Child'])},lakejob.io/role=driver")
        assert {p["spec"]["nodeName"] for p in driver} == {"lakejob-real"}
        assert read(object_store, f"{prefix}/run/a/a.txt") == "11\n"
    finally:
        kubectl.run("delete", "dagjob", "with-spark", "-n", ns, "--wait=false")


@pytest.fixture(scope="module")
def flink_sum_jar() -> bytes:
    from tests.e2e.test_flinkjarjob_real import DATA, store

    return store.flink_jar([DATA / "FlinkSumJob.java"], "FlinkSumJob")


def test_a_flinkjarjob_task_runs_a_bounded_flink_job_as_a_child_then_its_downstream_command(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, object_store: ObjectStore,
        priority_classes: None, prefix: str, flink_sum_jar: bytes) -> None:
    ns = real_namespace
    package = f"dag-{prefix}/flink-sum.jar"  # a DLI package name: fetched from the package store
    object_store.put_package(package, flink_sum_jar)
    flink = {"name": "sum", "entrypoint": package, "main_class": "FlinkSumJob", "entrypoint_args": "100",
             "parallel_number": 1}
    tasks = {"sum": {"flinkJarJob": flink},
             "report": task("a", prefix, {f"oss://{BUCKET}/{prefix}/in/": "/data/in/"})}
    object_store.client().put_object(Bucket=BUCKET, Key=f"{prefix}/in/numbers.txt", Body=b"7 8\n")
    kubectl.apply(dagjob("with-flink", tasks, {"sum": ["report"]}), ns)
    try:
        st = wait_state(kubectl, "with-flink", ns, "Finished", "Failed", timeout=DAG_TIMEOUT)
        assert st["State"] == "Finished", json.dumps(st, indent=1)
        t = st["Tasks"]
        assert t["sum"]["Type"] == "flinkJarJob" and t["sum"]["EndTime"] <= t["report"]["StartTime"]
        child = kubectl.get("flinkjarjob", t["sum"]["Child"], ns)
        assert child is not None and child["metadata"]["ownerReferences"][0]["name"] == "with-flink"
        assert child["status"]["status_name"] == "job_finish", json.dumps(child["status"], indent=1)
        # main() runs in the JobManager (application mode), which is kept once the job has ended.
        (jm,) = kubectl.list("pods", ns, f"lakejob.io/kind=FlinkJarJob,lakejob.io/name={short_name(t['sum']['Child'])},"
                                         "lakejob.io/role=jobmanager")
        assert jm["spec"]["nodeName"] == "lakejob-real" and jm["status"]["phase"] == "Succeeded"
        assert "flink-sum n=100 sum=5050" in kubectl.result("logs", jm["metadata"]["name"], "-n", ns).stdout
        assert read(object_store, f"{prefix}/run/a/a.txt") == "15\n"
    finally:
        kubectl.run("delete", "dagjob", "with-flink", "-n", ns, "--wait=false")
