"""lakejob.render.spark: names, the driver pod, spark.properties, the executor template, the rest.

Exact values, not snapshots: every assertion is a field the driver, the apiserver or Spark reads.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from lakejob import sizing
from lakejob.controllers.sparkbatch_decide import resolve_sizing
from lakejob.models.sparkbatch import SparkBatchSpec
from lakejob.render import spark as r
from lakejob.render.common import Owner, short_name
from lakejob.render.spark import Names, app_id
from lakejob.settings import Settings

UID = "0b6f2f9c-6d1e-4a55-9a4f-3f1d2c9e7a10"
NS = "team-a"
OWNER = Owner(api_version="lakejob.io/v1alpha1", kind="SparkBatch", name="pi", namespace=NS, uid=UID)
SETTINGS = Settings()
JAR = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi"}
PY = {"file": "local:///opt/spark/examples/src/main/python/pi.py"}

OWNER_REF = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "name": "pi", "uid": UID,
             "controller": True, "blockOwnerDeletion": True}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # Service names


def spec_of(**fields: Any) -> SparkBatchSpec:
    return SparkBatchSpec.model_validate({**JAR, **fields})


def py_spec(**fields: Any) -> SparkBatchSpec:
    return SparkBatchSpec.model_validate({**PY, **fields})


def own_annotations(pod: dict[str, Any]) -> dict[str, str]:
    """A driver pod's annotations but its conf files."""
    return {k: v for k, v in pod["metadata"]["annotations"].items() if not k.startswith(r.CONF_ANNOTATION_PREFIX)}


def driver(spec: SparkBatchSpec, attempt: int = 1, settings: Settings = SETTINGS,
           owner: Owner = OWNER, sa: str = "pi-spark") -> dict[str, Any]:
    return r.driver_pod(spec, owner, resolve_sizing(spec), attempt, settings, sa)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod["spec"]["containers"]
    out: dict[str, Any] = c
    return out


def props(spec: SparkBatchSpec, attempt: int = 1, settings: Settings = SETTINGS) -> dict[str, str]:
    return r.properties(spec, OWNER, resolve_sizing(spec), attempt, settings)


# ----------------------------------------------------------------------------- a java.util.Properties reader

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_WS = " \t\f"


def _logical_lines(text: str) -> list[str]:
    """java.util.Properties.LineReader: skip blanks and comments, join continuation lines."""
    out: list[str] = []
    physical = re.split(r"\r\n|\r|\n", text)
    i = 0
    while i < len(physical):
        line = physical[i].lstrip(_WS)
        i += 1
        if not line or line[0] in "#!":
            continue
        while True:
            trailing = len(line) - len(line.rstrip("\\"))
            if trailing % 2 == 0 or i >= len(physical):
                break
            line = line[:-1] + physical[i].lstrip(_WS)
            i += 1
        out.append(line)
    return out


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u":
                out.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def load_properties(text: str) -> dict[str, str]:
    """Parse `text` as java.util.Properties.load(Reader) does (what Spark's --properties-file uses)."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        i, key_end = 0, len(line)
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=:" or ch in _WS:
                key_end = i
                break
            i += 1
        j = key_end
        while j < len(line) and line[j] in _WS:
            j += 1
        if j < len(line) and line[j] in "=:":  # one separator, then the value's leading blanks
            j += 1
        while j < len(line) and line[j] in _WS:
            j += 1
        result[_unescape(line[:key_end])] = _unescape(line[j:])
    return result


@pytest.mark.parametrize(("text", "expected"), [
    ("a=b\n", {"a": "b"}),
    ("a = b\n", {"a": "b"}),
    ("a:b\n", {"a": "b"}),
    ("a b\n", {"a": "b"}),
    ("# comment\n! other\n\n  a=b\n", {"a": "b"}),
    ("a=one \\\n    two\n", {"a": "one two"}),
    ("a\\=b=c\\\\d\n", {"a=b": "c\\d"}),
    ("k=\\u00e9\\n\n", {"k": "é\n"}),
    ("k=\\ x\n", {"k": " x"}),
])
def test_properties_reader_itself(text: str, expected: dict[str, str]) -> None:
    assert load_properties(text) == expected


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["pi", "pyspark-pi", "a" * 40, "etl-2024-01-01"])
def test_short_names_unchanged(name: str) -> None:
    assert short_name(name) == name
    assert Names.of(name).base == name


@pytest.mark.parametrize("length", [41, 63, 100, 253])
def test_long_names_hashed(length: int) -> None:
    name = ("job-" * 100)[:length - 1] + "x"
    base = short_name(name)
    assert len(base) <= 40
    assert re.fullmatch(r".+-[0-9a-f]{8}", base)
    assert name.startswith(base[:-9].rstrip("-."))
    assert short_name(name) == base  # stable
    assert DNS_LABEL.match(base)


def test_long_name_prefix_does_not_end_with_dash() -> None:
    name = "a" * 30 + "-" + "b" * 69  # the 31-char cut ends on the dash
    base = short_name(name)
    assert not base[:-10].endswith("-") and "--" not in base[:-10]
    assert base[-10:-8] == "--"  # the hash's mark: no name kept as it is contains one


def test_long_names_differing_only_at_the_end_differ() -> None:
    a, b = "x" * 99 + "a", "x" * 99 + "b"
    assert short_name(a) != short_name(b)
    assert short_name(a)[:31] == short_name(b)[:31]


@pytest.mark.parametrize("name", ["pi", "n" * 40, "long-" * 50 + "z"])
@pytest.mark.parametrize("attempt", [1, 2, 101])
def test_child_names_fit(name: str, attempt: int) -> None:
    names = Names.of(name)
    children = [names.driver_pod(attempt), names.service, names.rbac, names.executor_prefix(attempt)]
    for child in children:
        assert len(child) <= 63, child
        assert DNS_LABEL.match(child), child
    # Spark refuses an executor podNamePrefix longer than 63 - len("-exec-2147483647") = 47.
    assert len(names.executor_prefix(attempt)) <= 47


def test_child_names_for_pi() -> None:
    names = Names.of("pi")
    assert names.driver_pod(1) == "pi-driver-1"
    assert names.driver_pod(3) == "pi-driver-3"
    assert names.service == "pi-driver-svc"
    assert names.rbac == "pi-spark"
    assert names.executor_prefix(2) == "pi-a2"


@pytest.mark.parametrize("name", ["etl.daily", "team.a.report"])
def test_dotted_cr_name_gives_valid_child_names(name: str) -> None:
    names = Names.of(name)
    assert DNS_1035.match(names.service), names.service
    assert DNS_LABEL.match(names.executor_prefix(1)), names.executor_prefix(1)


def test_app_id_shape_and_stability() -> None:
    a1 = app_id(UID, 1)
    assert re.fullmatch(r"spark-[0-9a-f]{32}", a1)
    assert app_id(UID, 1) == a1
    assert app_id(UID, 2) != a1
    assert app_id("other-uid", 1) != a1


# ----------------------------------------------------------------------------- driver pod


def test_driver_pod_basics() -> None:
    pod = driver(spec_of())
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "pi-driver-1"
    assert meta["namespace"] == NS
    assert meta["ownerReferences"] == [OWNER_REF]
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == "pi-spark"
    assert [v["name"] for v in spec["volumes"][:1]] == ["spark-conf"]  # its files: the test of conf annotations
    assert spec["volumes"][1:] == [{"name": "spark-local-dir", "emptyDir": {}},
                               {"name": "lakejob-tmp", "emptyDir": {}}, {"name": "lakejob-work-dir", "emptyDir": {}}]
    c = container(pod)
    assert c["name"] == "spark-kubernetes-driver"
    assert c["image"] == "apache/spark:3.5.7"
    assert c["volumeMounts"] == [{"name": "spark-conf", "mountPath": "/opt/spark/conf"},
                                 {"name": "spark-local-dir", "mountPath": "/var/data/spark-local"},
                                 {"name": "lakejob-tmp", "mountPath": "/tmp"},
                                 {"name": "lakejob-work-dir", "mountPath": "/opt/spark/work-dir"}]
    assert c["workingDir"] == "/opt/spark/work-dir"
    assert [p["containerPort"] for p in c["ports"]] == [7078, 7079, 4040]


@pytest.mark.parametrize("attempt", [1, 2, 7])
def test_driver_labels(attempt: int) -> None:
    pod = driver(spec_of(), attempt)
    assert pod["metadata"]["name"] == f"pi-driver-{attempt}"
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "lakejob",
        "lakejob.io/kind": "SparkBatch",
        "lakejob.io/name": "pi",
        "lakejob.io/role": "driver",
        "lakejob.io/attempt": str(attempt),
        "spark-app-selector": app_id(UID, attempt),
        "spark-role": "driver",
    }
    assert own_annotations(pod) == {"lakejob.io/attempt": str(attempt)}
    env = {e["name"]: e.get("value") for e in container(pod)["env"]}
    assert env["SPARK_APPLICATION_ID"] == app_id(UID, attempt)


@pytest.mark.parametrize(("queue_field", "value", "label"), [
    ("queue", " test", "test"), ("cluster_name", "gold", "gold"), ("queue", "my queue/1", "my-queue-1"),
])
def test_queue_label(queue_field: str, value: str, label: str) -> None:
    pod = driver(spec_of(**{queue_field: value}))
    assert pod["metadata"]["labels"]["lakejob.io/queue"] == label


def test_no_queue_label_without_queue() -> None:
    assert "lakejob.io/queue" not in driver(spec_of())["metadata"]["labels"]


# Executors reach the driver by its pod IP, expanded by the kubelet from the env var the pod sets.
HOST = ["--conf", "spark.driver.host=$(SPARK_DRIVER_BIND_ADDRESS)"]


@pytest.mark.parametrize(("fields", "expected_args"), [
    ({}, ["driver", "--properties-file", "/opt/spark/conf/spark.properties", *HOST,
          "--class", JAR["className"], JAR["file"]]),
    ({"args": ["100", "--flag", "a b"]}, ["driver", "--properties-file", "/opt/spark/conf/spark.properties", *HOST,
                                          "--class", JAR["className"], JAR["file"], "100", "--flag", "a b"]),
])
def test_driver_args_jvm(fields: dict[str, Any], expected_args: list[str]) -> None:
    assert container(driver(spec_of(**fields)))["args"] == expected_args


@pytest.mark.parametrize("fields", [{}, {"className": "ignored.For.Python"}])
def test_driver_args_python(fields: dict[str, Any]) -> None:
    spec = py_spec(args=["10"], **fields)
    assert container(driver(spec))["args"] == [
        "driver", "--properties-file", "/opt/spark/conf/spark.properties", *HOST, PY["file"], "10"]


@pytest.mark.parametrize(("fields", "python", "cpu", "memory"), [
    ({"sc_type": "A"}, False, "2", "7884Mi"),  # 7168 + max(716, 384)
    ({"sc_type": "B"}, False, "2", "7884Mi"),
    ({"sc_type": "C"}, False, "4", "16896Mi"),  # 15360 + 1536
    ({}, True, "2", "10035Mi"),  # python: 7168 + int(0.4 * 7168)
    ({"driverCores": 3, "driverMemory": "1G"}, False, "3", "1408Mi"),  # 1024 + 384 floor
    ({"driverMemory": "2G", "conf": {"spark.driver.memoryOverhead": "1000"}}, False, "2", "3048Mi"),
])
def test_driver_resources(fields: dict[str, Any], python: bool, cpu: str, memory: str) -> None:
    spec = py_spec(**fields) if python else spec_of(**fields)
    assert container(driver(spec))["resources"] == {"requests": {"cpu": cpu, "memory": memory},
                                                    "limits": {"memory": memory}}


def test_driver_security_context() -> None:
    pod = driver(spec_of(), settings=Settings(spark_uid=1001))
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1001, "runAsGroup": 1001,
                                              "fsGroup": 1001, "seccompProfile": {"type": "RuntimeDefault"}}
    assert container(pod)["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                 "readOnlyRootFilesystem": True}


@pytest.mark.parametrize(("fields", "settings", "image"), [
    ({}, Settings(), "apache/spark:3.5.7"),
    ({"spark_version": "3.4.1"}, Settings(), "apache/spark:3.4.1"),
    ({"feature": "custom", "image": "org/spark:custom"}, Settings(), "org/spark:custom"),
    ({"spark_version": "3.5.1"}, Settings(spark_images={"3.5": "reg/spark:3.5-lake"}), "reg/spark:3.5-lake"),
    ({}, Settings(default_spark_version="3.4.4", spark_image_template="reg/s:{version}"), "reg/s:3.4.4"),
])
def test_driver_image(fields: dict[str, Any], settings: Settings, image: str) -> None:
    spec = spec_of(**fields)
    assert container(driver(spec, settings=settings))["image"] == image
    assert props(spec, settings=settings)["spark.kubernetes.container.image"] == image


def test_driver_annotations_modules_and_agency() -> None:
    pod = driver(spec_of(modules=["sys.datasource.rds", "sys.datasource.css"], execution_agency_urn="agency1"))
    assert own_annotations(pod) == {"lakejob.io/attempt": "1",
                                    "lakejob.io/modules": "sys.datasource.rds,sys.datasource.css",
                                    "lakejob.io/execution-agency-urn": "agency1"}


def test_driver_spark_user() -> None:
    env = {e["name"]: e.get("value") for e in container(driver(spec_of(proxyUser="alice")))["env"]}
    assert env["SPARK_USER"] == "alice"
    env = {e["name"]: e.get("value") for e in container(driver(spec_of()))["env"]}
    assert env["SPARK_USER"] == "spark"


CUSTOM = {
    "labels": {"team": "analytics", "cost-center": "42"},
    "annotations": {"prometheus.io/scrape": "true"},
    "nodeSelector": {"pool": "spark"},
    "tolerations": [{"key": "spark", "operator": "Exists", "effect": "NoSchedule"}],
    "env": [{"name": "LOG_LEVEL", "value": "INFO"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc-1"}}],
    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    "serviceAccountName": "custom-sa",
    "priorityClassName": "high",
}


def test_driver_customisation() -> None:
    pod = driver(spec_of(driver=CUSTOM))
    meta, spec, c = pod["metadata"], pod["spec"], container(pod)
    assert meta["labels"]["team"] == "analytics"
    assert meta["labels"]["cost-center"] == "42"
    assert meta["labels"]["lakejob.io/role"] == "driver"
    assert own_annotations(pod) == {"lakejob.io/attempt": "1", "prometheus.io/scrape": "true"}
    assert spec["nodeSelector"] == {"pool": "spark"}
    assert spec["tolerations"] == [{"key": "spark", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["serviceAccountName"] == "custom-sa"
    assert spec["priorityClassName"] == "high"
    assert spec["volumes"][2] == {"name": "data", "persistentVolumeClaim": {"claimName": "pvc-1"}}
    assert [v["name"] for v in spec["volumes"]] == ["spark-conf", "spark-local-dir", "data", "lakejob-tmp",
                                                    "lakejob-work-dir"]
    assert c["volumeMounts"][2] == {"name": "data", "mountPath": "/data", "readOnly": True}
    assert [m["name"] for m in c["volumeMounts"]] == ["spark-conf", "spark-local-dir", "data", "lakejob-tmp",
                                                      "lakejob-work-dir"]
    names = [e["name"] for e in c["env"]]
    assert names == ["SPARK_USER", "SPARK_APPLICATION_ID", "SPARK_DRIVER_BIND_ADDRESS", "SPARK_LOCAL_DIRS",
                     "SPARK_CONF_DIR", "LOG_LEVEL", "TOKEN"]
    assert c["env"][-1] == {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}


def test_driver_customisation_does_not_touch_executor_template() -> None:
    tpl = r.executor_template(spec_of(driver=CUSTOM), OWNER, SETTINGS)
    assert "team" not in tpl["metadata"]["labels"]
    assert "nodeSelector" not in tpl["spec"]
    assert "env" not in container(tpl)


def test_user_labels_cannot_override_lakejob_labels() -> None:
    """Reserved keys are rejected by the model; the others never displace ours."""
    pod = driver(spec_of(driver={"labels": {"app.kubernetes.io/managed-by": "me", "team": "a"}}))
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "lakejob"
    assert labels["team"] == "a"
    assert labels["lakejob.io/role"] == "driver" and labels["spark-role"] == "driver"


@pytest.mark.parametrize("role", ["driver", "executor"])
def test_reserved_label_prefixes_are_not_accepted(role: str) -> None:
    raw = {**JAR, role: {"labels": {"lakejob.io/queue": "gold", "spark-exec-id": "1"}}}
    try:
        spec = SparkBatchSpec.model_validate(raw)
    except ValueError:
        return  # rejecting them is a fix too
    pod = driver(spec) if role == "driver" else r.executor_template(spec, OWNER, SETTINGS)
    assert "lakejob.io/queue" not in pod["metadata"]["labels"]
    assert "spark-exec-id" not in pod["metadata"]["labels"]


# ----------------------------------------------------------------------------- properties


def test_properties_owned_values() -> None:
    p = props(spec_of(), attempt=2)
    assert p["spark.master"] == "k8s://https://kubernetes.default.svc:443"
    assert p["spark.submit.deployMode"] == "cluster"
    assert p["spark.kubernetes.namespace"] == NS
    assert p["spark.kubernetes.driver.pod.name"] == "pi-driver-2"
    assert p["spark.app.id"] == app_id(UID, 2)
    assert "spark.driver.host" not in p  # the driver's argument: its pod IP (HOST)
    assert p["spark.driver.port"] == "7078"
    assert p["spark.driver.blockManager.port"] == "7079"
    assert p["spark.kubernetes.submitInDriver"] == "true"
    assert p["spark.kubernetes.executor.podTemplateFile"] == "/opt/spark/conf/executor-pod-template.yaml"
    assert p["spark.kubernetes.executor.podTemplateContainerName"] == "spark-kubernetes-executor"
    assert p["spark.kubernetes.executor.podNamePrefix"] == "pi-a2"
    assert p["spark.app.name"] == "pi"
    assert p["spark.dynamicAllocation.enabled"] == "false"
    assert p["spark.ui.port"] == "4040"
    assert p["spark.local.dir"] == "/var/data/spark-local"
    assert list(p) == sorted(p)


def test_properties_names_for_long_name() -> None:
    long = Owner("lakejob.io/v1alpha1", "SparkBatch", "l" * 100, NS, UID)
    spec = spec_of()
    p = r.properties(spec, long, resolve_sizing(spec), 1, SETTINGS)
    base = short_name("l" * 100)
    assert p["spark.kubernetes.driver.pod.name"] == f"{base}-driver-1"
    assert p["spark.app.name"] == "l" * 100


@pytest.mark.parametrize(("fields", "python", "expected"), [
    ({"sc_type": "A"}, False, {"instances": "6", "cores": "1", "memory": "4096m", "memoryOverhead": "409m"}),
    ({"sc_type": "B"}, False, {"instances": "7", "cores": "2", "memory": "8192m", "memoryOverhead": "819m"}),
    ({"sc_type": "C"}, False, {"instances": "14", "cores": "2", "memory": "8192m", "memoryOverhead": "819m"}),
    ({"sc_type": "B"}, True, {"instances": "7", "cores": "2", "memory": "8192m", "memoryOverhead": "3276m"}),
    ({"executorMemory": "1G", "executorCores": 10, "numExecutors": 10}, False,
     {"instances": "10", "cores": "10", "memory": "1024m", "memoryOverhead": "384m"}),
])
def test_properties_executor_sizing(fields: dict[str, Any], python: bool, expected: dict[str, str]) -> None:
    spec = py_spec(**fields) if python else spec_of(**fields)
    p = props(spec)
    assert {k: p[f"spark.executor.{k}"] for k in expected} == expected
    assert p["spark.kubernetes.executor.request.cores"] == expected["cores"]
    sz = resolve_sizing(spec)
    assert p["spark.driver.cores"] == str(sz.driver_cores)
    assert p["spark.driver.memory"] == f"{sz.driver_memory_mib}m"
    assert p["spark.driver.memoryOverhead"] == f"{sz.driver_overhead_mib}m"


def test_properties_user_conf_wins_for_ordinary_keys() -> None:
    p = props(spec_of(name="nightly", conf={"spark.sql.shuffle.partitions": "8", "spark.ui.port": "4041",
                                            "spark.dynamicAllocation.enabled": "true", "spark.app.name": "mine"}))
    assert p["spark.sql.shuffle.partitions"] == "8"
    assert p["spark.ui.port"] == "4041"
    assert p["spark.dynamicAllocation.enabled"] == "true"
    assert p["spark.app.name"] == "mine"


def test_spec_name_is_app_name() -> None:
    assert props(spec_of(name="nightly"))["spark.app.name"] == "nightly"


OWNED = sorted(r.OWNED_CONF_KEYS)


# The memoryOverhead keys are owned too, but conf sets them on purpose: sizing reads them (tested there).
@pytest.mark.parametrize("key", [k for k in OWNED if not k.endswith(".memoryOverhead")])
def test_properties_user_conf_cannot_move_owned_keys(key: str) -> None:
    ours = props(spec_of(), attempt=3)
    # model_copy skips validation, which refuses the wiring keys (models.spark.REFUSED_CONF_KEYS):
    # even a spec that got past it cannot move them.
    theirs = props(spec_of().model_copy(update={"conf": {key: "user-value"}}), attempt=3)
    if key == "spark.driver.host":  # the driver's own argument (its pod IP): never in the file
        assert key not in theirs and key not in ours
        return
    assert theirs[key] == ours[key]
    assert theirs[key] != "user-value"


def test_owned_keys_list() -> None:
    assert {"spark.master", "spark.kubernetes.driver.pod.name", "spark.kubernetes.namespace", "spark.driver.host",
            "spark.app.id", "spark.kubernetes.executor.podNamePrefix",
            "spark.kubernetes.executor.podTemplateFile"} <= r.OWNED_CONF_KEYS


@pytest.mark.parametrize("conf", [{"spark.driver.memory": "16g"}, {"spark.driver.cores": "8"}])
def test_driver_pod_size_matches_properties(conf: dict[str, str]) -> None:
    spec = spec_of(conf=conf)
    p = props(spec)
    c = container(driver(spec))
    heap = sizing.parse_memory_mib(p["spark.driver.memory"])
    overhead = sizing.parse_spark_mib(p["spark.driver.memoryOverhead"], "spark.driver.memoryOverhead")
    assert c["resources"]["limits"]["memory"] == f"{heap + overhead}Mi"
    assert c["resources"]["requests"]["cpu"] == p["spark.driver.cores"]


def test_properties_lists_comma_joined() -> None:
    p = props(spec_of(jars=["local:///a.jar", "hdfs://nn/c.jar"], files=["/opt/x.txt"],
                      pyFiles=["local:///u.py", "file:///v.zip"], archives=["local:///env.tar.gz#env"]))
    assert p["spark.jars"] == "local:///a.jar,hdfs://nn/c.jar"
    assert p["spark.files"] == "/opt/x.txt"
    assert p["spark.submit.pyFiles"] == "local:///u.py,file:///v.zip"
    assert p["spark.archives"] == "local:///env.tar.gz#env"


def test_properties_without_optional_inputs() -> None:
    p = props(spec_of())
    for key in ("spark.jars", "spark.files", "spark.submit.pyFiles", "spark.archives", "spark.eventLog.enabled",
                "spark.eventLog.dir", "spark.kubernetes.driverEnv.HADOOP_USER_NAME", "lakejob.catalog"):
        assert key not in p


def test_properties_obs_bucket_event_log() -> None:
    p = props(spec_of(obs_bucket="my-bucket"))
    assert p["spark.eventLog.enabled"] == "true"
    assert p["spark.eventLog.dir"] == "s3a://my-bucket/spark-events"


def test_properties_proxy_user_and_catalog() -> None:
    p = props(spec_of(proxyUser="alice", catalog_name="dli"))
    assert p["spark.kubernetes.driverEnv.HADOOP_USER_NAME"] == "alice"
    assert p["spark.executorEnv.HADOOP_USER_NAME"] == "alice"
    assert p["lakejob.catalog"] == "dli"


# ----------------------------------------------------------------------------- properties_text


@pytest.mark.parametrize(("key", "value", "line"), [
    ("spark.a", "b", "spark.a=b\n"),
    ("a=b", "v", "a\\=b=v\n"),
    ("a:b", "v", "a\\:b=v\n"),
    ("a b", "v", "a\\ b=v\n"),
    ("k", "C:\\path\\to", "k=C:\\\\path\\\\to\n"),
    ("k", "line1\nline2", "k=line1\\nline2\n"),
    ("k", "cr\rhere", "k=cr\\rhere\n"),
    ("k", "tab\there", "k=tab\\there\n"),
    ("k", " leading", "k=\\ leading\n"),
    ("k", "a=b:c d", "k=a=b:c d\n"),
    ("k", "", "k=\n"),
])
def test_properties_text_escaping(key: str, value: str, line: str) -> None:
    text = r.properties_text({key: value})
    assert text == line
    assert load_properties(text) == {key: value}


def test_properties_text_round_trip_tricky() -> None:
    tricky = {
        "a=b": "1", "c:d": "2", "e f": "3", "spark.driver.extraJavaOptions": "-Dx=y -Dz=\"q r\"",
        "path": "C:\\temp\\", "multi": "one\ntwo\r\nthree", "lead": "  two spaces", "unicode": "héllo ✓",
        "trail": "x\\", "eq": "=start", "colon": ":start",
    }
    assert load_properties(r.properties_text(tricky)) == tricky


def test_properties_text_round_trip_full_properties() -> None:
    spec = spec_of(conf={"spark.sql.shuffle.partitions": "8", "spark.executor.extraJavaOptions": "-Da=b -Dc=d",
                         "spark.hadoop.fs.s3a.endpoint": "http://minio:9000"}, jars=["local:///a.jar", "/b.jar"])
    p = props(spec)
    assert load_properties(r.properties_text(p)) == p


@pytest.mark.parametrize("key", ["#spark.x", "!spark.y"])
def test_properties_text_key_starting_with_comment_char(key: str) -> None:
    assert load_properties(r.properties_text({key: "v"})) == {key: "v"}


# ----------------------------------------------------------------------------- executor template


def test_executor_template() -> None:
    tpl = r.executor_template(spec_of(queue="gold"), OWNER, Settings(spark_uid=185))
    assert tpl["apiVersion"] == "v1" and tpl["kind"] == "Pod"
    assert tpl["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "lakejob", "lakejob.io/kind": "SparkBatch",
                                         "lakejob.io/name": "pi", "lakejob.io/role": "executor",
                                         "lakejob.io/queue": "gold"}
    assert tpl["spec"]["enableServiceLinks"] is False
    assert tpl["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 185, "runAsGroup": 185,
                                              "fsGroup": 185, "seccompProfile": {"type": "RuntimeDefault"}}
    c = container(tpl)
    assert c["name"] == "spark-kubernetes-executor" == props(spec_of())[
        "spark.kubernetes.executor.podTemplateContainerName"]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True}


def test_executor_customisation() -> None:
    tpl = r.executor_template(spec_of(executor=CUSTOM), OWNER, SETTINGS)
    meta, spec, c = tpl["metadata"], tpl["spec"], container(tpl)
    assert meta["labels"]["team"] == "analytics"
    assert meta["labels"]["lakejob.io/role"] == "executor"
    assert meta["annotations"] == {"prometheus.io/scrape": "true"}
    assert spec["nodeSelector"] == {"pool": "spark"}
    assert spec["tolerations"] == [{"key": "spark", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc-1"}},
                               {"name": "lakejob-tmp", "emptyDir": {}}, {"name": "lakejob-work-dir", "emptyDir": {}}]
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True},
                                 {"name": "lakejob-tmp", "mountPath": "/tmp"},
                                 {"name": "lakejob-work-dir", "mountPath": "/opt/spark/work-dir"}]
    assert c["env"] == [{"name": "LOG_LEVEL", "value": "INFO"},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    assert spec["serviceAccountName"] == "custom-sa"
    assert spec["priorityClassName"] == "high"
    # the driver pod is not affected by the executor block
    d = driver(spec_of(executor=CUSTOM))
    assert "team" not in d["metadata"]["labels"]
    assert d["spec"]["serviceAccountName"] == "pi-spark"


# ----------------------------------------------------------------------------- the rest


def test_the_driver_pod_carries_its_conf_files_as_annotations_projected_into_the_conf_dir() -> None:
    spec = spec_of(conf={"spark.sql.shuffle.partitions": "8"}, executor={"labels": {"team": "a"}})
    sz = resolve_sizing(spec)
    pod = r.driver_pod(spec, OWNER, sz, 2, SETTINGS, "sa")
    files = {k.removeprefix(r.CONF_ANNOTATION_PREFIX): v for k, v in pod["metadata"]["annotations"].items()
             if k.startswith(r.CONF_ANNOTATION_PREFIX)}
    assert files == r.conf_files(spec, OWNER, sz, 2, SETTINGS, r.batch_conf(spec, SETTINGS))
    assert set(files) == {"spark.properties", "executor-pod-template.yaml"}
    assert load_properties(files["spark.properties"]) == r.properties(spec, OWNER, sz, 2, SETTINGS,
                                                                       r.batch_conf(spec, SETTINGS))
    assert load_properties(files["spark.properties"])["spark.kubernetes.driver.pod.name"] == "pi-driver-2"
    assert yaml.safe_load(files["executor-pod-template.yaml"]) == r.executor_template(spec, OWNER, SETTINGS)
    # each annotation is a file of the conf volume, mounted at CONF_DIR
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "spark-conf"]
    assert volume == {"name": "spark-conf", "downwardAPI": {"items": [
        {"path": "spark.properties", "fieldRef": {"fieldPath": "metadata.annotations['conf.lakejob.io/spark.properties']"}},
        {"path": "executor-pod-template.yaml",
         "fieldRef": {"fieldPath": "metadata.annotations['conf.lakejob.io/executor-pod-template.yaml']"}}]}}
    (driver,) = pod["spec"]["containers"]
    assert {"name": "spark-conf", "mountPath": r.CONF_DIR} in driver["volumeMounts"]
    # the mount and the file names Spark is told about agree
    p = r.properties(spec, OWNER, sz, 2, SETTINGS)
    assert p["spark.kubernetes.executor.podTemplateFile"] == f"{r.CONF_DIR}/executor-pod-template.yaml"
    assert r.PROPERTIES_FILE == f"{r.CONF_DIR}/spark.properties"


def test_driver_service() -> None:
    svc = r.driver_service(spec_of(), OWNER)
    assert svc["apiVersion"] == "v1" and svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "pi-driver-svc"
    assert svc["metadata"]["namespace"] == NS
    assert svc["metadata"]["ownerReferences"] == [OWNER_REF]
    assert svc["spec"]["clusterIP"] == "None"
    assert "selector" not in svc["spec"]  # the operator writes its Endpoints (render.endpoints)
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("driver-rpc-port", 7078, 7078), ("blockmanager", 7079, 7079), ("spark-ui", 4040, 4040)]


def test_driver_rbac() -> None:
    sa, role, binding = r.driver_rbac(spec_of(), OWNER)
    assert [o["kind"] for o in (sa, role, binding)] == ["ServiceAccount", "Role", "RoleBinding"]
    assert sa["apiVersion"] == "v1"
    assert role["apiVersion"] == binding["apiVersion"] == "rbac.authorization.k8s.io/v1"
    for obj in (sa, role, binding):
        assert obj["metadata"]["name"] == "pi-spark"
        assert obj["metadata"]["namespace"] == NS
        assert obj["metadata"]["ownerReferences"] == [OWNER_REF]
        assert obj["metadata"]["labels"]["lakejob.io/name"] == "pi"
    pods = [rule for rule in role["rules"] if "pods" in rule["resources"]]
    assert len(pods) == 1 and pods[0]["apiGroups"] == [""]
    assert {"create", "delete", "list", "watch", "get"} <= set(pods[0]["verbs"])
    cms = [rule for rule in role["rules"] if "configmaps" in rule["resources"]]
    assert {"create", "delete"} <= set(cms[0]["verbs"])
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pi-spark"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pi-spark", "namespace": NS}]
    # the driver pod runs as this ServiceAccount by default
    assert driver(spec_of(), sa=sa["metadata"]["name"])["spec"]["serviceAccountName"] == "pi-spark"


def test_shared_driver_rbac_is_namespace_wide_and_unowned() -> None:
    sa, role, binding = r.shared_driver_rbac("team-a")
    assert [o["kind"] for o in (sa, role, binding)] == ["ServiceAccount", "Role", "RoleBinding"]
    assert all(o["metadata"]["name"] == r.SHARED_DRIVER_ACCOUNT and o["metadata"]["namespace"] == "team-a"
               and "ownerReferences" not in o["metadata"] for o in (sa, role, binding))
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": r.SHARED_DRIVER_ACCOUNT, "namespace": "team-a"}]
    assert role["rules"] == r.DRIVER_RULES


# ----------------------------------------------------------------------------- CPU requests below a core


def test_request_cores_from_conf_set_the_pods_cpu_request_not_sparks_cores() -> None:
    spec = spec_of(driverCores=1, executorCores=1, conf={"spark.kubernetes.driver.request.cores": "250m",
                                                         "spark.kubernetes.executor.request.cores": "0.1"})
    assert container(driver(spec))["resources"]["requests"]["cpu"] == "250m"
    p = props(spec)
    assert p["spark.kubernetes.executor.request.cores"] == "0.1"  # Spark's own key: the executors' request
    assert p["spark.driver.cores"] == "1" and p["spark.executor.cores"] == "1"  # Spark still plans whole cores


def test_without_request_cores_the_request_is_the_whole_cores() -> None:
    spec = spec_of(driverCores=2, executorCores=3)
    assert container(driver(spec))["resources"]["requests"]["cpu"] == "2"
    assert props(spec)["spark.kubernetes.executor.request.cores"] == "3"


@pytest.mark.parametrize("side", ["driver", "executor"])
@pytest.mark.parametrize("value", ["0", "0m", "0.0", "-1", "1 core", "", "100Mi", "1e3"])
def test_bad_request_cores_are_refused_naming_the_key_and_value(side: str, value: str) -> None:
    key = f"spark.kubernetes.{side}.request.cores"
    with pytest.raises(ValueError, match=re.escape(f"conf[{key}]: {value} is not a Kubernetes CPU quantity")):
        spec_of(conf={key: value})


@pytest.mark.parametrize("value", ["100m", "0.25", "1", "2.5", ".5"])
def test_good_request_cores_are_accepted(value: str) -> None:
    assert sizing.is_cpu_quantity(value)
    spec_of(conf={"spark.kubernetes.driver.request.cores": value})


def test_a_jvm_batch_puts_its_primary_jar_in_spark_jars_for_the_executors() -> None:
    spec = spec_of(jars=["local:///opt/lib/dep.jar"], conf={"spark.jars": "local:///opt/lib/conf.jar"})
    text = r.conf_files(spec, OWNER, resolve_sizing(spec), 1, SETTINGS, r.batch_conf(spec, SETTINGS))["spark.properties"]
    assert ("spark.jars=local\\:///opt/lib/conf.jar,local\\:///opt/lib/dep.jar,"
            "local\\:///opt/spark/examples/jars/spark-examples.jar") in text or \
        "spark.jars=local:///opt/lib/conf.jar,local:///opt/lib/dep.jar,local:///opt/spark/examples/jars/spark-examples.jar" \
        in text
    assert r.batch_conf(py_spec(), SETTINGS) == {}  # PySpark's file goes through PythonRunner, not spark.jars
