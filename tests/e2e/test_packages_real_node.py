"""The package store, really (issue 12): DLI package names and obs:// paths become files a `fetch`
init container puts into the driver pod, from the object store (moto's S3 server, tests/e2e/
objectstore.py), on the real node, with the operator installed by Helm (its settings point
`stores.packagesUrl` and the S3 endpoint at the store, the keys in a Secret).

- The DLI "create a batch processing job" example body, pasted unchanged (examples/sparkbatch-
  dli.yaml: sc_type A, spark_version 2.3.2, resources and groups), runs SparkPi from
  `batchTest/spark-examples_2.11-2.1.0.luxor.jar` → `success`, "Pi is roughly" in status.log.
- A PySpark job from an obs:// path whose pyFiles, files and resources come from the store: the
  executors import the module and read the files (Spark's working directory, SparkFiles).
- A package missing from the store: `dead` before any driver JVM starts, the status and the
  Event naming the package; the store's keys never show in a status, an Event or a log.
- HDInsight's Livy example body (examples/sparkbatch-livy.yaml) with only its `<…>` placeholders
  filled: sample.jar, helper.jar and config.xml are wasb:// blobs in Azurite (the Azure Blob
  emulator); Job1 runs with its args, calls Helper from `jars` and reads `files` on the executors.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import Kubectl
from tests.e2e.objectstore import BUCKET, KEY_ID, KEY_SECRET, ObjectStore
from tests.e2e.real import REAL_NODE
from tests.e2e.test_sparkbatch import status, wait_state

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import store  # noqa: E402  (hack/store.py: the packages the DLI example names)
from azurite import ACCOUNT, ACCOUNT_KEY  # noqa: E402  (hack/azurite.py: the Blob emulator's account)

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node"),
              pytest.mark.skipif(shutil.which("javac") is None, reason="compiling SparkPi needs javac")]
JOB_TIMEOUT = 420  # sc_type A: Spark waits up to 30 s for executors that do not all fit on 2 cores

PYSPARK_JOB = """
from pyspark import SparkFiles
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
def work(x):
    import mathlib  # from pyFiles: on the executors' Python path
    with open(SparkFiles.get("weights.txt")) as f:  # from resources (type file): in their working directory
        weight = int(f.read())
    return mathlib.square(x) * weight
total = spark.sparkContext.parallelize(range(1, 11), 2).map(work).sum()
with open(SparkFiles.get("count.txt")) as f:  # from files, on the driver
    label = f.read().strip()
print(f"{label}: {total}")
spark.stop()
"""


@pytest.fixture(scope="module")
def spark_examples_jar() -> bytes:
    return store.spark_examples_jar()


def dli_example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "sparkbatch-dli.yaml").read_text())


def driver_pods(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    return kubectl.list("pods", ns, f"lakejob.io/name={name},lakejob.io/role=driver")


def no_keys_in(*texts: str) -> None:
    for text in texts:
        assert KEY_ID not in text and KEY_SECRET not in text


def test_the_dli_example_pasted_unchanged_runs_sparkpi_from_the_package_store(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, object_store: ObjectStore,
        spark_examples_jar: bytes) -> None:
    ns = real_namespace
    body = dli_example()
    spec = body["spec"]
    for package, content in store.dli_batch_packages(spec, spark_examples_jar):
        object_store.put_package(package, content)
    kubectl.apply(body, ns)
    name = body["metadata"]["name"]
    try:
        st = wait_state(kubectl, name, ns, "success", "dead", timeout=JOB_TIMEOUT)
        assert st["state"] == "success", json.dumps(st, indent=1)
        assert any("Pi is roughly 3.1" in line for line in st.get("log", [])), st.get("log")
        (pod,) = driver_pods(kubectl, ns, name)
        (fetch,) = pod["spec"]["initContainers"]
        assert fetch["name"] == "fetch" and len(fetch["args"]) == 2 * 8  # the file, 6 jars, 1 file
        assert pod["spec"]["nodeSelector"] == {"lakejob.io/real": "true"}  # the operator's placement
        assert st["sc_type"] == "A" and st["queue"] == "test"
    finally:
        kubectl.run("delete", "sparkbatch", name, "-n", ns, "--wait=false")


def test_pyfiles_files_and_resources_from_the_store_reach_the_executors(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str,
        object_store: ObjectStore) -> None:
    ns = real_namespace
    client = object_store.client()
    client.put_object(Bucket=BUCKET, Key="apps/squares.py", Body=PYSPARK_JOB.encode())
    object_store.put_package("libs/mathlib.py", b"def square(x):\n    return x * x\n")
    object_store.put_package("count.txt", b"sum of weighted squares\n")
    object_store.put_package("weights/weights.txt", b"3\n")
    body = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": "store-py"},
            "spec": {"file": f"obs://{BUCKET}/apps/squares.py", "pyFiles": ["libs/mathlib.py"],
                     "files": ["count.txt"], "resources": [{"name": "weights/weights.txt", "type": "file"}],
                     "spark_version": "2.3.2", "driverMemory": "512M", "executorMemory": "512M",
                     "driverCores": 1, "executorCores": 1, "numExecutors": 1}}
    kubectl.apply(body, ns)
    try:
        st = wait_state(kubectl, "store-py", ns, "success", "dead", timeout=JOB_TIMEOUT)
        assert st["state"] == "success", json.dumps(st, indent=1)
        assert "sum of weighted squares: 1155" in st.get("log", []), st.get("log")  # 3 * (1² + … + 10²)
    finally:
        kubectl.run("delete", "sparkbatch", "store-py", "-n", ns, "--wait=false")


def test_the_livy_example_with_its_placeholders_filled_runs_from_azure_blob(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str,
        object_store: ObjectStore) -> None:
    ns = real_namespace
    text = (ROOT / "examples" / "sparkbatch-livy.yaml").read_text()
    body = yaml.safe_load(text.replace("<BlobStorageContainerName>", "livy").replace("<StorageAccountName>", ACCOUNT))
    sample, helper = store.livy_example_jars()
    container = object_store.container("livy")
    for name, content in (("sample.jar", sample), ("helper.jar", helper),
                          ("config.xml", b"<configuration><factor>7</factor></configuration>\n")):
        container.upload_blob(name, content, overwrite=True)
    assert body["spec"]["file"] == object_store.wasb("livy", "sample.jar")
    name = body["metadata"]["name"]
    kubectl.apply(body, ns)
    try:
        st = wait_state(kubectl, name, ns, "success", "dead", timeout=JOB_TIMEOUT)
        assert st["state"] == "success", json.dumps(st, indent=1)
        assert "Job1 arg0 arg1: 385" in st.get("log", []), st.get("log")  # 7 * (1 + … + 10), on the executors
        (pod,) = driver_pods(kubectl, ns, name)
        (fetch,) = pod["spec"]["initContainers"]
        assert sorted(fetch["args"][1::2]) == sorted(
            f"blob://livy@{ACCOUNT}/{n}=/opt/lakejob/packages/objects/wasb/livy@{ACCOUNT}.blob.core.windows.net/{n}"
            for n in ("sample.jar", "helper.jar", "config.xml"))
        release, op_ns = incluster_operator
        logs = kubectl.result("logs", "-n", op_ns, "-l", "app.kubernetes.io/name=lakejob", "--tail=-1").stdout
        events = kubectl.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
        for text in (json.dumps(st), json.dumps(pod), logs, events):
            assert ACCOUNT_KEY not in text
    finally:
        kubectl.run("delete", "sparkbatch", name, "-n", ns, "--wait=false")


def test_a_package_missing_from_the_store_fails_the_job_naming_it_before_the_driver_starts(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str) -> None:
    ns = real_namespace
    body = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": "store-missing"},
            "spec": {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                     "className": "org.apache.spark.examples.SparkPi", "jars": ["nowhere/absent-1.0.jar"],
                     "auto_recovery": True, "max_retry_times": 2, "driverMemory": "512M", "numExecutors": 1}}
    kubectl.apply(body, ns)
    try:
        st = wait_state(kubectl, "store-missing", ns, "success", "dead", timeout=180)
        assert (st["state"], st["reason"]) == ("dead", "FetchFailed"), json.dumps(st, indent=1)
        assert "jars[0] 'nowhere/absent-1.0.jar'" in st["message"] and "NoSuchKey" in st["message"]
        assert st["attempt"] == 1  # not retried: a retry would find it missing too
        (pod,) = driver_pods(kubectl, ns, "store-missing")
        (main,) = pod["status"]["containerStatuses"]
        assert "running" not in main["state"] and not main.get("lastState"), main  # the JVM never started
        events = kubectl.run("get", "events", "-n", ns, "--field-selector", "involvedObject.name=store-missing")
        assert "nowhere/absent-1.0.jar" in events and "FetchFailed" in events
        release, op_ns = incluster_operator
        logs = kubectl.result("logs", "-n", op_ns, "-l", "app.kubernetes.io/name=lakejob", "--tail=-1").stdout
        no_keys_in(json.dumps(status(kubectl, "store-missing", ns)), events, logs, json.dumps(pod))
    finally:
        kubectl.run("delete", "sparkbatch", "store-missing", "-n", ns, "--wait=false")
