"""The package store (render.packages) as a SparkBatch uses it: DLI package names, obs:// and
s3a:// paths become local files a `fetch` init container puts into the driver pod; what cannot be
resolved is refused before anything is created, naming the field and the setting; a fetch that
fails is reported naming the package."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakejob.controllers import pods, sparkbatch_decide
from lakejob.controllers.sparkbatch_decide import DriverObs, Meta, Observed, decide
from lakejob.models.spark import ExecutorCounts, resolve_sizing
from lakejob.models.sparkbatch import SparkBatchSpec, SparkBatchStatus
from lakejob.render import packages
from lakejob.render import spark as r
from lakejob.render.common import Owner
from lakejob.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner("lakejob.io/v1alpha1", "SparkBatch", "dli", "team-a", "uid-1")
STORE = Settings(packages_url="s3://dli-packages/team-a/", s3_endpoint="http://10.244.0.1:9000",
                 s3_addressing_style="path", store_secret="store-keys", spark_images={"2.3.2": "lakejob.local/spark:4.0.1"},
                 spark_image_template="", fetcher_image="lakejob.local/operator:0.1.0")
P = packages.PACKAGES_DIR


def dli_example() -> SparkBatchSpec:
    """The DLI "create a batch processing job" example body, as examples/sparkbatch-dli.yaml pastes it."""
    body = yaml.safe_load((ROOT / "examples" / "sparkbatch-dli.yaml").read_text())
    return SparkBatchSpec.model_validate(body["spec"])


def driver(spec: SparkBatchSpec, settings: Settings = STORE) -> dict[str, Any]:
    return r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, settings, "dli-spark")


def test_the_dli_example_gets_every_package_as_a_local_file_fetched_before_the_driver() -> None:
    spec = dli_example()
    pod = driver(spec)
    (fetch,) = pod["spec"]["initContainers"]
    (main,) = pod["spec"]["containers"]
    store = "s3://dli-packages/team-a"
    wanted = {  # the package name → where it lands
        "batchTest/spark-examples_2.11-2.1.0.luxor.jar", "demo-1.0.0.jar", "count.txt", "groupTest/testJar.jar",
        "kafka-clients-0.10.0.0.jar", "groupTestJar/testJar.jar", "groupTestJar/testJar1.jar", "batchTest/luxor.jar"}
    assert fetch["command"] == ["lakejob-oss", "fetch"]
    assert sorted(fetch["args"][1::2]) == sorted(f"{store}/{n}={P}/{n}" for n in wanted)
    assert set(fetch["args"][0::2]) == {"--map"}
    assert main["args"][-1] == f"{P}/batchTest/spark-examples_2.11-2.1.0.luxor.jar"
    assert {"name": packages.VOLUME, "mountPath": P, "readOnly": True} in main["volumeMounts"]
    assert fetch["securityContext"]["readOnlyRootFilesystem"] is True
    assert fetch["image"] == "lakejob.local/operator:0.1.0"
    props = r.properties(spec, OWNER, resolve_sizing(spec), 1, STORE, r.batch_conf(spec, STORE))
    assert props["spark.jars"].split(",") == [f"{P}/{n}" for n in (
        "demo-1.0.0.jar", "groupTest/testJar.jar", "kafka-clients-0.10.0.0.jar", "groupTestJar/testJar.jar",
        "groupTestJar/testJar1.jar", "batchTest/luxor.jar", "batchTest/spark-examples_2.11-2.1.0.luxor.jar")]
    assert props["spark.files"] == f"{P}/count.txt"  # its base name kept: SparkFiles.get("count.txt")
    assert props["spark.kubernetes.container.image"] == "lakejob.local/spark:4.0.1"  # spark_version 2.3.2's


def test_the_store_keys_are_secret_references_and_endpoints_come_from_the_settings() -> None:
    env = {e["name"]: e for e in driver(dli_example())["spec"]["initContainers"][0]["env"]}
    assert env["S3_ENDPOINT"]["value"] == "http://10.244.0.1:9000"
    assert env["S3_ADDRESSING_STYLE"]["value"] == "path"
    for key in ("S3_ACCESS_KEY_ID", "S3_ACCESS_KEY_SECRET", "S3_SESSION_TOKEN"):
        assert env[key]["valueFrom"] == {"secretKeyRef": {"name": "store-keys", "key": key, "optional": True}}
    assert not any(k.startswith("OSS_") for k in env)  # no oss:// path: no OSS variables


def test_a_blob_path_gets_the_blob_endpoint_and_keys_and_no_s3_variables() -> None:
    settings = Settings(blob_endpoint="http://10.244.0.1:10000/{account}", store_secret="store-keys")
    spec = SparkBatchSpec.model_validate({"file": "wasb://jobs@acct.blob.core.windows.net/app.jar", "className": "A"})
    (fetch,) = driver(spec, settings)["spec"]["initContainers"]
    env = {e["name"]: e for e in fetch["env"]}
    assert env["BLOB_ENDPOINT"]["value"] == "http://10.244.0.1:10000/{account}"
    for key in ("BLOB_ACCOUNT_KEY", "BLOB_SAS_TOKEN"):
        assert env[key]["valueFrom"] == {"secretKeyRef": {"name": "store-keys", "key": key, "optional": True}}
    assert set(env) == {"BLOB_ENDPOINT", "BLOB_ACCOUNT_KEY", "BLOB_SAS_TOKEN"}
    assert fetch["args"] == ["--map", f"blob://jobs@acct/app.jar={P}/objects/wasb/jobs@acct.blob.core.windows.net/app.jar"]


@pytest.mark.parametrize(("ref", "remote", "local"), [
    ("obs://bkt/libs/a.jar", "s3://bkt/libs/a.jar", f"{P}/objects/obs/bkt/libs/a.jar"),
    ("s3a://bkt/a.jar", "s3://bkt/a.jar", f"{P}/objects/s3a/bkt/a.jar"),
    ("oss://bkt/x/a.jar", "oss://bkt/x/a.jar", f"{P}/objects/oss/bkt/x/a.jar"),
    ("OBS://bkt/a.jar", "s3://bkt/a.jar", f"{P}/objects/obs/bkt/a.jar"),
    ("wasb://jobs@acct.blob.core.windows.net/lib/a.jar", "blob://jobs@acct/lib/a.jar",
     f"{P}/objects/wasb/jobs@acct.blob.core.windows.net/lib/a.jar"),
    ("abfss://fs@acct.dfs.core.windows.net/a.jar", "blob://fs@acct/a.jar",
     f"{P}/objects/abfss/fs@acct.dfs.core.windows.net/a.jar"),
    ("wasbs://jobs@acct.blob.core.chinacloudapi.cn/a.jar", "blob://jobs@acct/a.jar",
     f"{P}/objects/wasbs/jobs@acct.blob.core.chinacloudapi.cn/a.jar"),
])
def test_object_store_paths_are_fetched_from_their_store(ref: str, remote: str, local: str) -> None:
    assert packages.locate(ref, "jars[0]", STORE) == (local, packages.Fetch("jars[0]", ref, remote, local))


@pytest.mark.parametrize("ref", ["local:///opt/spark/examples/jars/spark-examples.jar", "/opt/app.jar",
                                 "file:///opt/app.jar", "https://example.com/a.jar", "hdfs://nn/a.jar"])
def test_what_the_job_reads_itself_is_left_alone(ref: str) -> None:
    assert packages.locate(ref, "file", STORE) == (ref, None)


@pytest.mark.parametrize(("ref", "words"), [
    ("../etc/passwd", "'..'"), ("group//a.jar", "empty"), ("group/", "folder"), ("obs://bkt/", "folder"),
    ("obs:///a.jar", "no bucket"), ("ftp://h/a.jar", "ftp:// is not one the operator can fetch"),
    ("obs://bkt/a/../../b.jar", "'..'"),
    ("wasb://acct.blob.core.windows.net/a.jar", "no container or account"),
    ("abfs://fs@/a.jar", "no container or account"), ("wasbs://c@acct.blob.core.windows.net/", "folder"),
])
def test_references_that_could_write_anywhere_are_refused_naming_the_field(ref: str, words: str) -> None:
    with pytest.raises(packages.PackageError, match=words) as e:
        packages.locate(ref, "jars[2]", STORE)
    assert str(e.value).startswith(f"jars[2]: {ref!r}")


def decided(spec: SparkBatchSpec, settings: Settings, status: SparkBatchStatus | None = None,
            drv: DriverObs | None = None) -> sparkbatch_decide.Decision:
    meta = Meta(name="dli", namespace="team-a", uid="uid-1", generation=1, created_ms=1000)
    obs = Observed(now_ms=2000, driver=drv, executors=ExecutorCounts())
    return decide(spec, None, meta, status or SparkBatchStatus(), obs, settings)


def test_a_package_name_without_a_package_store_is_refused_before_anything_is_created() -> None:
    d = decided(dli_example(), Settings(spark_images={"2.3": "img"}))
    assert d.status.state == "dead" and d.status.reason == "InvalidPackage"
    assert d.status.message == ("file: 'batchTest/spark-examples_2.11-2.1.0.luxor.jar' is a DLI package name, and the "
                                "operator has no package store: set LAKEJOB_PACKAGES_URL (chart stores.packagesUrl), "
                                "e.g. s3://dli-packages/, or give an obs://, s3a:// or local:// path")
    assert not d.actions
    assert d.events and d.events[0][:2] == ("Warning", "InvalidPackage")


def test_a_spark_version_with_no_image_is_refused_naming_the_version_and_the_setting() -> None:
    spec = SparkBatchSpec.model_validate({"file": "local:///a.jar", "className": "A", "spark_version": "3.1.1"})
    d = decided(spec, STORE)
    assert (d.status.state, d.status.reason) == ("dead", "NoImage")
    assert d.status.message == ("spark_version: 3.1.1 has no image: the operator's LAKEJOB_SPARK_IMAGES (chart "
                                "spark.images) names 2.3.2, and LAKEJOB_SPARK_IMAGE_TEMPLATE (spark.imageTemplate) "
                                "is empty")
    assert not d.actions
    assert decided(spec, Settings()).status.state == "starting"  # a template names every version


def test_the_request_cores_setting_is_the_default_cpu_request_of_driver_and_executors() -> None:
    spec = SparkBatchSpec.model_validate({"file": "local:///a.jar", "className": "A", "sc_type": "A"})
    small = Settings(spark_request_cores="100m")
    pod = r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, small, "sa")
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
    assert r.properties(spec, OWNER, resolve_sizing(spec), 1, small)["spark.kubernetes.executor.request.cores"] == "100m"
    own = spec.model_copy(update={"conf": {"spark.kubernetes.driver.request.cores": "250m"}})
    assert r.driver_pod(own, OWNER, resolve_sizing(own), 1, small, "sa")["spec"]["containers"][0]["resources"][
        "requests"]["cpu"] == "250m"  # the job's own conf wins
    assert r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, Settings(), "sa")["spec"]["containers"][0][
        "resources"]["requests"]["cpu"] == "2"  # sc_type A's driver: 2 cores


def failed_fetch(message: str) -> dict[str, Any]:
    """A driver pod whose `fetch` init container failed, as the apiserver shows it."""
    return {"metadata": {"name": "dli-driver-1", "labels": {"spark-role": "driver"},
                         "creationTimestamp": "2026-12-03T10:00:00Z"},
            "status": {"phase": "Failed",
                       "initContainerStatuses": [{"name": "fetch", "state": {"terminated": {
                           "exitCode": 1, "reason": "Error", "message": message,
                           "finishedAt": "2026-12-03T10:00:02Z"}}}],
                       "containerStatuses": [{"name": "spark-kubernetes-driver",
                                              "state": {"waiting": {"reason": "PodInitializing"}}}]}}


def running_status() -> SparkBatchStatus:
    return SparkBatchStatus(state="starting", attempt=1, driverPod="dli-driver-1", create_time=1000,
                            driverStartTime=1000)


def observed_driver(pod: dict[str, Any]) -> DriverObs:
    summary = pods.summarize_pod(pod)
    return DriverObs(**{k: v for k, v in summary.items() if k in DriverObs.__dataclass_fields__})


def test_a_package_missing_from_the_store_ends_the_job_naming_it_without_a_retry() -> None:
    spec = dli_example().model_copy(update={"auto_recovery": True, "max_retry_times": 3})
    drv = observed_driver(failed_fetch(
        "lakejob-oss: fetch failed: s3://dli-packages/team-a/demo-1.0.0.jar: NoSuchKey (The specified key does "
        "not exist.)\n"))
    d = decided(spec, STORE, running_status(), drv)
    assert (d.status.state, d.status.reason) == ("dead", "FetchFailed")
    assert d.status.message == (
        "driver pod dli-driver-1: its files could not be fetched before the driver started: jars[0] "
        "'demo-1.0.0.jar' (s3://dli-packages/team-a/demo-1.0.0.jar): NoSuchKey (The specified key does not exist.)")
    assert d.events[-1][:2] == ("Warning", "FetchFailed") and "'demo-1.0.0.jar'" in d.events[-1][2]


def test_a_store_that_could_not_be_reached_is_retried_as_auto_recovery_says() -> None:
    spec = dli_example().model_copy(update={"auto_recovery": True, "max_retry_times": 3})
    drv = observed_driver(failed_fetch("lakejob-oss: fetch failed: s3://dli-packages/team-a/count.txt: "
                                       "EndpointConnectionError: Could not connect"))
    d = decided(spec, STORE, running_status(), drv)
    assert (d.status.state, d.status.reason) == ("recovering", "FetchFailed")
    assert "files[0] 'count.txt'" in (d.status.message or "")


def test_a_spec_of_every_kind_of_reference_renders_json() -> None:
    spec = SparkBatchSpec.model_validate({
        "file": "obs://bkt/app.py", "spark_version": "2.3.2", "pyFiles": ["deps.zip"], "archives": ["obs://bkt/env.tar.gz#env"],
        "jars": ["oss://b/x.jar", "local:///opt/y.jar"]})
    pod = driver(spec)
    json.dumps(pod)
    args = pod["spec"]["initContainers"][0]["args"]
    assert f"s3://bkt/env.tar.gz={P}/objects/obs/bkt/env.tar.gz" in args
    assert {e["name"] for e in pod["spec"]["initContainers"][0]["env"]} >= {"S3_ENDPOINT", "OSS_ADDRESSING_STYLE"}
    props = r.properties(spec, OWNER, resolve_sizing(spec), 1, STORE)
    assert props["spark.archives"] == f"{P}/objects/obs/bkt/env.tar.gz#env"
    assert props["spark.submit.pyFiles"] == f"{P}/deps.zip"
    assert pod["spec"]["containers"][0]["args"][-1] == f"{P}/objects/obs/bkt/app.py"


def test_the_store_and_placement_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_PACKAGES_URL", "obs://dli-packages/team-a/")
    monkeypatch.setenv("LAKEJOB_S3_ENDPOINT", "https://obs.cn-north-4.myhuaweicloud.com")
    monkeypatch.setenv("LAKEJOB_STORE_SECRET", "store-keys")
    monkeypatch.setenv("LAKEJOB_WORKLOAD_NODE_SELECTOR", "pool=spark")
    monkeypatch.setenv("LAKEJOB_WORKLOAD_TOLERATIONS", '[{"key": "pool", "operator": "Exists"}]')
    s = Settings.from_env()
    assert (s.packages_url, s.s3_endpoint, s.store_secret) == (
        "obs://dli-packages/team-a/", "https://obs.cn-north-4.myhuaweicloud.com", "store-keys")
    assert packages.locate("a/b.jar", "file", s)[1] == packages.Fetch(
        "file", "a/b.jar", "s3://dli-packages/team-a/a/b.jar", f"{P}/a/b.jar")  # obs:// is the S3 store
    spec = SparkBatchSpec.model_validate({"file": "local:///a.jar", "className": "A",
                                          "driver": {"nodeSelector": {"pool": "gpu"}}})
    pod = r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, s, "sa")
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}  # the spec's own wins
    assert pod["spec"]["tolerations"] == [{"key": "pool", "operator": "Exists"}]
    for name, value in (("LAKEJOB_PACKAGES_URL", "https://x/pkgs"), ("LAKEJOB_PACKAGES_URL", "s3://"),
                        ("LAKEJOB_WORKLOAD_TOLERATIONS", '{"key": "x"}'), ("LAKEJOB_WORKLOAD_TOLERATIONS", "[")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            Settings.from_env()
        monkeypatch.delenv(name)
