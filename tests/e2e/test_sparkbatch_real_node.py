"""SparkBatch, really: the operator installed by Helm from its image runs on the real node and
makes driver pods from the local Spark image; Spark's driver makes real executors through the
ServiceAccount the operator gave it, reaching the driver at its pod IP (no Service). Small CPU requests (spark.kubernetes.*.request.cores): the
machine has two cores. The tests run one job at a time (memory: each JVM is ~1 GiB)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.kubectl import Kubectl
from tests.e2e.real import REAL_NODE, SELECTOR, TOLERATION
from tests.e2e.test_sparkbatch import drivers, status, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")]

ON_REAL_NODE = {"nodeSelector": SELECTOR, "tolerations": [TOLERATION]}
SMALL = {"driverMemory": "512M", "driverCores": 1, "executorMemory": "512M", "executorCores": 1,
         "conf": {"spark.kubernetes.driver.request.cores": "100m", "spark.kubernetes.executor.request.cores": "100m"}}
SPARK_PI = {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
            "className": "org.apache.spark.examples.SparkPi"}
JOB_TIMEOUT = 300  # a JVM start on a loaded 2-core machine can take half a minute
OPERATOR_PODS = "app.kubernetes.io/name=lakejob"  # not the gateway's, beside them in the release namespace

PYSPARK_JOB = """
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0
def work(x):
    time.sleep(seconds)
    return x * x
total = spark.sparkContext.parallelize(range(1, 101), 4).map(work).sum()
print(f"sum of squares is {total}")
spark.stop()
"""
FAILING_JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.parallelize(range(4), 2).count()
raise ValueError("boom 42: the input had no rows")
"""
GREEDY_JOB = """
chunks = []
while True:  # the Python process grows past the driver container's limit: the kernel kills it
    chunks.append(bytearray(64 * 1024 * 1024))
"""


def sparkbatch(name: str, executors: int = 2, volumes: list[Any] | None = None, **spec: Any) -> dict[str, Any]:
    driver: dict[str, Any] = dict(ON_REAL_NODE)
    executor: dict[str, Any] = dict(ON_REAL_NODE)
    if volumes:
        driver["volumes"] = volumes
        driver["volumeMounts"] = [{"name": v["name"], "mountPath": "/opt/app"} for v in volumes]
    body = {**SMALL, "numExecutors": executors, "driver": driver, "executor": executor, **spec}
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": name}, "spec": body}


def app_configmap(kubectl: Kubectl, ns: str, name: str, files: dict[str, str]) -> list[dict[str, Any]]:
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": files}, ns)
    return [{"name": "app", "configMap": {"name": name}}]


def executor_pods(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    return kubectl.list("pods", ns, f"lakejob.io/name={name},lakejob.io/role=executor")


def events(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in kubectl.list("events", ns) if e["involvedObject"].get("name") == name]


def test_spark_pi_with_two_real_executors_succeeds_and_reports_pi(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str]) -> None:
    ns = real_namespace
    kubectl.apply(sparkbatch("pi", **SPARK_PI, args=["4"]), ns)
    seen: dict[str, dict[str, Any]] = {}

    def done() -> dict[str, Any] | None:
        for p in executor_pods(kubectl, ns, "pi"):
            seen[p["metadata"]["name"]] = p
        st = status(kubectl, "pi", ns)
        return st if st.get("state") in ("success", "dead") else None

    st = kubectl.wait_for(done, "SparkPi to finish", timeout=JOB_TIMEOUT, namespace=ns, show=("sparkbatch", "pi"))
    assert st["state"] == "success", st
    assert any(line.startswith("Pi is roughly 3.1") for line in st["log"]), st["log"]
    # Two real executors, made by the driver through the account the operator gave it, owned by the driver.
    assert len(seen) == 2, sorted(seen)
    driver = kubectl.get("pod", "pi-driver-1", ns)
    assert driver is not None and driver["spec"]["nodeName"] == "lakejob-real"
    assert driver["spec"]["serviceAccountName"] == "lakejob-spark-driver"  # the namespace's, the operator's
    # The executors found the driver at its pod IP: no Service was made for the batch.
    ip = driver["status"]["podIP"]
    assert not kubectl.list("services", ns, "lakejob.io/name=pi")
    for pod in seen.values():
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"]) == ("Pod", driver["metadata"]["uid"])
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["SPARK_DRIVER_URL"] == f"spark://CoarseGrainedScheduler@{ip}:7078", env
    kubectl.wait_for(lambda: not executor_pods(kubectl, ns, "pi"), "the executors to be gone", timeout=60)


def test_a_pyspark_file_from_a_configmap_runs_on_executors(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str]) -> None:
    ns = real_namespace
    volumes = app_configmap(kubectl, ns, "squares-app", {"squares.py": PYSPARK_JOB})
    kubectl.apply(sparkbatch("squares", volumes=volumes, file="local:///opt/app/squares.py", args=["0.1"]), ns)
    counted: set[str] = set()

    def done() -> dict[str, Any] | None:
        counted.update(p["metadata"]["name"] for p in executor_pods(kubectl, ns, "squares"))
        st = status(kubectl, "squares", ns)
        return st if st.get("state") in ("success", "dead") else None

    st = kubectl.wait_for(done, "the PySpark job to finish", timeout=JOB_TIMEOUT, namespace=ns,
                          show=("sparkbatch", "squares"))
    assert st["state"] == "success", st
    assert "sum of squares is 338350" in st["log"], st["log"]
    assert len(counted) == 2


def test_a_failing_main_is_dead_with_its_exception_and_retried_once(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str]) -> None:
    ns = real_namespace
    volumes = app_configmap(kubectl, ns, "fail-app", {"fail.py": FAILING_JOB})
    kubectl.apply(sparkbatch("fails", executors=1, volumes=volumes, file="local:///opt/app/fail.py",
                             auto_recovery=True, max_retry_times=1), ns)
    st = wait_state(kubectl, "fails", ns, "dead", timeout=2 * JOB_TIMEOUT)
    assert drivers(kubectl, ns, "fails") == ["fails-driver-1", "fails-driver-2"]  # exactly one retry
    assert st["attempt"] == 2
    assert any("ValueError: boom 42: the input had no rows" in line for line in st["log"]), st["log"]
    warnings = [e["message"] for e in events(kubectl, ns, "fails") if e["type"] == "Warning"]
    assert any(m.endswith("ValueError: boom 42: the input had no rows after 1 retries") for m in warnings), warnings


def test_a_driver_that_outgrows_its_memory_is_dead_with_oomkilled(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str]) -> None:
    ns = real_namespace
    volumes = app_configmap(kubectl, ns, "greedy-app", {"greedy.py": GREEDY_JOB})
    kubectl.apply(sparkbatch("greedy", executors=1, volumes=volumes, file="local:///opt/app/greedy.py"), ns)
    st = wait_state(kubectl, "greedy", ns, "dead", timeout=JOB_TIMEOUT)
    assert st["reason"] == "OOMKilled", st
    assert any("reason OOMKilled" in line for line in st["log"]), st["log"]


def test_deleting_a_running_sparkbatch_removes_driver_executors_and_all_it_made(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str]) -> None:
    ns = real_namespace
    volumes = app_configmap(kubectl, ns, "slow-app", {"slow.py": PYSPARK_JOB})
    kubectl.apply(sparkbatch("slow", volumes=volumes, file="local:///opt/app/slow.py", args=["600"]), ns)
    kubectl.wait_for(lambda: sum(p["status"].get("phase") == "Running" for p in executor_pods(kubectl, ns, "slow"))
                     == 2, "two running executors", timeout=JOB_TIMEOUT, namespace=ns, show=("sparkbatch", "slow"))
    kubectl.run("delete", "sparkbatch", "slow", "-n", ns, "--wait=false")

    def leftovers() -> list[str]:
        out = []
        for kind in ("pods", "services", "configmaps", "serviceaccounts", "roles", "rolebindings"):
            out += [f"{kind}/{o['metadata']['name']}" for o in kubectl.list(kind, ns, "lakejob.io/name=slow")]
        return out

    kubectl.wait_for(lambda: not leftovers(), "every object of the deleted job to be gone", timeout=120,
                     namespace=ns)


def test_the_operator_pod_deleted_mid_job_is_replaced_and_finishes_it_with_one_driver(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str]) -> None:
    ns = real_namespace
    release, op_ns = incluster_operator
    volumes = app_configmap(kubectl, ns, "steady-app", {"steady.py": PYSPARK_JOB})
    kubectl.apply(sparkbatch("steady", executors=1, volumes=volumes, file="local:///opt/app/steady.py",
                             args=["0.4"]), ns)  # 4 tasks x 25 x 0.4 s on one executor core: ~40 s
    wait_state(kubectl, "steady", ns, "running", timeout=JOB_TIMEOUT)
    (old,) = kubectl.list("pods", op_ns, OPERATOR_PODS)
    kubectl.run("delete", "pod", old["metadata"]["name"], "-n", op_ns, "--wait=false")
    st = wait_state(kubectl, "steady", ns, "success", "dead", timeout=JOB_TIMEOUT)
    assert st["state"] == "success", st
    assert drivers(kubectl, ns, "steady") == ["steady-driver-1"] and st["attempt"] == 1
    new = kubectl.list("pods", op_ns, OPERATOR_PODS)
    assert [p["metadata"]["name"] for p in new] != [old["metadata"]["name"]]  # a new operator finished it
