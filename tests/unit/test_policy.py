"""Security of what a spec may ask for: the operator's pod policy (lakejob.policy, settings.PodPolicy),
the Spark and Flink configuration keys no spec may set (models.spark / models.flinkjarjob rules),
and the read-only root file systems of the workload pods (render.*).

Each refusal is checked on the path the operator takes (parse → policy → decide: InvalidSpec, as a
spec that fails validation) and names the field and what would allow it.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from lakejob import crds, policy
from lakejob.controllers import dagjob as dag_controller
from lakejob.controllers import flinkjarjob as flink_controller
from lakejob.controllers import sparkbatch as batch_controller
from lakejob.controllers import sparksession as session_controller
from lakejob.controllers.sparkbatch_decide import Meta, Observed, decide
from lakejob.models.common import PodCustomization
from lakejob.models.dagjob import DagJobSpec
from lakejob.models.flinkjarjob import OWNED_KEYS, FlinkJarJobSpec
from lakejob.models.spark import REFUSED_CONF_KEYS, REFUSED_CONF_PREFIXES, resolve_sizing
from lakejob.models.sparkbatch import ExecutorCounts, SparkBatchSpec, SparkBatchStatus
from lakejob.models.sparksession import SparkSessionSpec
from lakejob.render import common
from lakejob.render import dag as render_dag
from lakejob.render import flink as render_flink
from lakejob.render import spark as render_spark
from lakejob.render.common import Owner
from lakejob.settings import POD_POLICY_FEATURES, PodPolicy, Settings
from tests.unit.chart import KUBE_VERSION

NS = "team-a"
SETTINGS = Settings()
PY = {"file": "local:///opt/app/job.py"}

# One pod customisation block asking for each governed thing: (feature, block, the field named).
ASKS: list[tuple[str, dict[str, Any], str]] = [
    ("serviceAccountName", {"serviceAccountName": "admin-sa"}, "serviceAccountName"),
    ("hostPath", {"volumes": [{"name": "c", "configMap": {"name": "c"}}, {"name": "h", "hostPath": {"path": "/"}}]},
     "volumes.1.hostPath"),
    ("hostNetwork", {"hostNetwork": True}, "hostNetwork"),
    ("hostPID", {"hostPID": True}, "hostPID"),
    ("hostIPC", {"hostIPC": True}, "hostIPC"),
    ("privileged", {"securityContext": {"privileged": True}}, "securityContext.privileged"),
    ("capabilities", {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, "securityContext.capabilities.add"),
]


def command_task(**extra: Any) -> dict[str, Any]:
    return {"InstanceCount": 1, "Timeout": 60,
            "Parameters": {"Command": {"CommandLine": "python w.py"}, "StdoutRedirectPath": "oss://bucket/o/",
                           "StderrRedirectPath": "oss://bucket/o/"}, **extra}


def dagjob(task: dict[str, Any]) -> dict[str, Any]:
    return {"Name": "d", "Priority": 1, "Type": "DAG", "JobFailOnInstanceFail": True, "DAG": {"Tasks": {"A": task}}}


# Every place a pod customisation block sits: (model, spec with the block, its path).
PLACES: list[tuple[type[BaseModel], Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    (SparkBatchSpec, lambda b: {**PY, "driver": b}, "spec.driver"),
    (SparkBatchSpec, lambda b: {**PY, "executor": b}, "spec.executor"),
    (SparkSessionSpec, lambda b: {"kind": "pyspark", "queue": "q", "driver": b}, "spec.driver"),
    (FlinkJarJobSpec, lambda b: {"name": "f", "jobManager": b}, "spec.jobManager"),
    (FlinkJarJobSpec, lambda b: {"name": "f", "taskManager": b}, "spec.taskManager"),
    (DagJobSpec, lambda b: dagjob(command_task(pod=b)), "spec.DAG.Tasks.A.pod"),
    (DagJobSpec, lambda b: dagjob({"sparkBatch": {**PY, "executor": b}}), "spec.DAG.Tasks.A.sparkBatch.executor"),
    (DagJobSpec, lambda b: dagjob({"flinkJarJob": {"name": "f", "taskManager": b}}),
     "spec.DAG.Tasks.A.flinkJarJob.taskManager"),
]


def allow(text: str) -> Settings:
    return Settings(pod_policy=PodPolicy.parse(text))


# ----------------------------------------------------------------------------- the setting


def test_the_default_policy_allows_nothing() -> None:
    assert not any(SETTINGS.pod_policy.allows(f, NS) for f in POD_POLICY_FEATURES)


def test_policy_parses_features_everywhere_and_per_namespace() -> None:
    p = PodPolicy.parse(" serviceAccountName, team-a/hostPath,team-a/hostNetwork ,team-b/hostPath,")
    assert p.allows("serviceAccountName", "anywhere")
    assert p.allows("hostPath", "team-a") and p.allows("hostPath", "team-b") and not p.allows("hostPath", "team-c")
    assert p.allows("hostNetwork", "team-a") and not p.allows("hostNetwork", "team-b")
    assert not p.allows("privileged", "team-a")


@pytest.mark.parametrize(("text", "fragment"), [
    ("hostpath", "'hostpath' is not one of serviceAccountName, hostPath"),
    ("team-a/root", "'root' is not one of"),
    ("Team_A/hostPath", "'Team_A' is not a namespace name"),
])
def test_policy_refuses_what_it_does_not_know(text: str, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_POD_POLICY_ALLOW", text)
    with pytest.raises(ValueError, match="^LAKEJOB_POD_POLICY_ALLOW: ") as info:
        Settings.from_env()
    assert fragment in str(info.value)


def test_settings_read_the_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_POD_POLICY_ALLOW", "privileged,ops/hostPID")
    s = Settings.from_env()
    assert s.pod_policy.allows("privileged", NS) and s.pod_policy.allows("hostPID", "ops")
    assert not s.pod_policy.allows("hostPID", NS)


# ----------------------------------------------------------------------------- the pod policy


@pytest.mark.parametrize(("model", "build", "where"), PLACES, ids=lambda x: x if isinstance(x, str) else "")
@pytest.mark.parametrize(("feature", "block", "field"), ASKS, ids=[a[0] for a in ASKS])
def test_every_governed_field_is_refused_naming_field_and_setting(
        model: type[BaseModel], build: Callable[[dict[str, Any]], dict[str, Any]], where: str,
        feature: str, block: dict[str, Any], field: str) -> None:
    spec = model.model_validate(build(block))  # a valid spec: admission cannot know the operator's policy
    assert policy.errors(spec, SETTINGS, NS) == [
        f"{where}.{field}: refused by operator policy (allow with LAKEJOB_POD_POLICY_ALLOW={feature}, "
        f"or {NS}/{feature} for namespace {NS} only)"]
    assert policy.errors(spec, allow(feature), NS) == []
    assert policy.errors(spec, allow(f"{NS}/{feature}"), NS) == []
    assert policy.errors(spec, allow(f"other/{feature}"), NS) != []
    others = ",".join(f for f in POD_POLICY_FEATURES if f != feature)
    assert policy.errors(spec, allow(others), NS) != []


def test_what_is_not_asked_for_is_never_refused() -> None:
    harmless = {"labels": {"team": "a"}, "hostNetwork": False, "serviceAccountName": "",
                "securityContext": {"privileged": False, "capabilities": {"add": []}},
                "volumes": [{"name": "d", "emptyDir": {}}, {"name": "p", "persistentVolumeClaim": {"claimName": "c"}}]}
    for model, build, _ in PLACES:
        assert policy.errors(model.model_validate(build(harmless)), SETTINGS, NS) == []


def test_every_refusal_is_reported_at_once() -> None:
    spec = SparkBatchSpec.model_validate({**PY, "driver": {"hostPID": True}, "executor": {"hostIPC": True}})
    assert [e.split(":")[0] for e in policy.errors(spec, SETTINGS, NS)] == ["spec.driver.hostPID", "spec.executor.hostIPC"]


def test_sparks_own_hostpath_volume_keys_are_governed_too() -> None:
    conf = {"spark.kubernetes.executor.volumes.hostPath.data.mount.path": "/data",
            "spark.kubernetes.executor.volumes.hostPath.data.options.path": "/mnt/data",
            "spark.kubernetes.driver.volumes.hostPath.logs.mount.path": "/logs",
            "spark.kubernetes.executor.volumes.persistentVolumeClaim.p.mount.path": "/p"}
    for body in ({**PY, "conf": conf}, dagjob({"sparkBatch": {**PY, "conf": conf}})):
        model = DagJobSpec if "DAG" in body else SparkBatchSpec
        errors = policy.errors(model.model_validate(body), SETTINGS, NS)
        prefix = "spec.DAG.Tasks.A.sparkBatch" if model is DagJobSpec else "spec"
        assert [e.split(": ")[0] for e in errors] == [
            f"{prefix}.conf.spark.kubernetes.driver.volumes.hostPath.logs.*",
            f"{prefix}.conf.spark.kubernetes.executor.volumes.hostPath.data.*"]
        assert all("LAKEJOB_POD_POLICY_ALLOW=hostPath" in e for e in errors)
        assert policy.errors(model.model_validate(body), allow("hostPath"), NS) == []


def test_a_refused_spec_fails_at_once_as_invalid_spec() -> None:
    """checked() turns the refusal into parse_spec's (None, error): decide fails the job with reason
    InvalidSpec and creates nothing, exactly as for a spec that fails validation."""
    body = {"metadata": {"name": "pi", "namespace": NS}, "spec": {**PY, "driver": {"serviceAccountName": "admin"}}}
    parsed = batch_controller.parse_spec(body)
    assert parsed[1] is None
    spec, error = policy.checked(parsed, SETTINGS, NS)
    assert spec is None and error is not None and error.startswith("spec.driver.serviceAccountName: refused")
    d = decide(spec, error, Meta(name="pi", namespace=NS, uid="u", generation=1, created_ms=0), SparkBatchStatus(),
               Observed(now_ms=1, driver=None, executors=ExecutorCounts(), log_tail=None), SETTINGS)
    assert (d.status.state, d.status.reason, d.status.message) == ("dead", "InvalidSpec", error)
    assert d.actions == []
    assert policy.checked(parsed, allow("serviceAccountName"), NS) == parsed
    invalid: tuple[SparkBatchSpec | None, str | None] = (None, "spec.file: Field required")
    assert policy.checked(invalid, SETTINGS, NS) == invalid


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("module", "spec"), [
    (batch_controller, {**PY, "driver": {"hostNetwork": True}}),
    (session_controller, {"kind": "spark", "queue": "q", "driver": {"hostNetwork": True}}),
    (flink_controller, {"name": "f", "jobManager": {"hostNetwork": True}}),
    (dag_controller, dagjob(command_task(pod={"hostNetwork": True}))),
], ids=["SparkBatch", "SparkSession", "FlinkJarJob", "DagJob"])
def test_each_kind_applies_the_policy_where_it_parses_its_spec(
        module: Any, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, str | None]] = []

    def fake_decide(spec: Any, error: str | None, *_: Any) -> Any:
        seen.append((spec, error))
        raise _Stop

    monkeypatch.setattr(module, "decide", fake_decide)
    (cls,) = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__
              and getattr(v, "kind", None) and hasattr(v, "reconcile_one") and not getattr(v, "__abstractmethods__", ())]
    body = {"metadata": {"name": "j", "namespace": NS, "uid": "u-1", "resourceVersion": "1", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec}
    for settings, refused in ((SETTINGS, True), (allow("hostNetwork"), False)):
        seen.clear()
        # No API here: a session always names a queue, which would ask whether Kueue is installed.
        settings = settings.model_copy(update={"queueing": "off"})
        r = cls(settings, None, lambda: 1_000, None, None)
        r.bodies[(NS, "j")] = body
        with pytest.raises(_Stop):
            asyncio.run(r.reconcile_one((NS, "j"), body))
        ((parsed, error),) = seen
        if refused:
            assert parsed is None and error is not None and ".hostNetwork: refused by operator policy" in error
        else:
            assert parsed is not None and error is None


# ----------------------------------------------------------------------------- conf keys no spec may set


SPARK_REFUSED = [*REFUSED_CONF_KEYS, *(p + "x" for p in REFUSED_CONF_PREFIXES),
                 "spark.kubernetes.authenticate.driver.serviceAccountName", "spark.kubernetes.authenticate.oauthToken"]


@pytest.mark.parametrize("key", SPARK_REFUSED)
def test_spark_conf_cannot_set_what_wires_or_secures_the_job(key: str) -> None:
    for body in ({**PY, "conf": {"spark.sql.shuffle.partitions": "4", key: "v"}},
                 {"kind": "spark", "queue": "q", "conf": {key: "v"}}):
        model: type[BaseModel] = SparkBatchSpec if "file" in body else SparkSessionSpec
        with pytest.raises(ValidationError, match=f"conf\\[{key.replace('.', '[.]')}\\]: set by lakejob"):
            model.model_validate(body)
    _, error = batch_controller.parse_spec({"spec": {**PY, "conf": {key: "v"}}})
    assert error is not None and error.startswith(f"spec: conf[{key}]: set by lakejob")
    _, error = dag_controller.parse_spec({"spec": dagjob({"sparkBatch": {**PY, "conf": {key: "v"}}})})
    assert error is not None and f"conf[{key}]" in error


def test_every_refused_key_is_named_and_the_others_stay() -> None:
    conf = {"spark.master": "local[*]", "spark.kubernetes.namespace": "kube-system", "spark.sql.x": "1"}
    _, error = batch_controller.parse_spec({"spec": {**PY, "conf": conf}})
    assert error is not None and error.startswith("spec: conf[spark.kubernetes.namespace], conf[spark.master]: ")


@pytest.mark.parametrize("conf", [
    {"spark.sql.shuffle.partitions": "8", "spark.kubernetes.executor.request.cores": "250m"},
    # sizing keys are not refused: the typed fields win over them (render.spark.OWNED_CONF_KEYS), as on DLI
    {"spark.executor.memory": "8g", "spark.driver.cores": "4", "spark.executor.instances": "3"},
    {"spark.kubernetes.driver.label.team": "a", "spark.kubernetes.executor.annotation.x": "y",
     "spark.kubernetes.executor.volumes.persistentVolumeClaim.d.mount.path": "/d"},
    {"spark.kubernetes.authenticate": "no dot after it", "spark.masterx": "1"},
])
def test_other_spark_conf_is_accepted(conf: dict[str, str]) -> None:
    assert SparkBatchSpec.model_validate({**PY, "conf": conf}).conf == conf


def test_every_wiring_key_the_renderer_owns_is_refused_or_sizing() -> None:
    sizing = {k for k in render_spark.OWNED_CONF_KEYS if k.startswith(("spark.driver.", "spark.executor."))
              and k.rsplit(".", 1)[-1] in ("cores", "memory", "memoryOverhead", "instances")}
    assert render_spark.OWNED_CONF_KEYS - sizing <= set(REFUSED_CONF_KEYS)


def test_the_spark_conf_rule_is_in_the_crds_and_names_the_key() -> None:
    for plural in ("sparkbatches", "sparksessions"):
        crd = yaml.safe_load(crds.render_all()[f"lakejob.io_{plural}.yaml"])
        rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
        (rule,) = [r for r in rules if "spark.kubernetes.authenticate." in r["rule"]]
        assert rule["fieldPath"] == ".conf" and "'conf[' + self.conf.filter(k" in rule["messageExpression"]
        assert all(f"'{k}'" in rule["rule"] for k in REFUSED_CONF_KEYS)


@pytest.mark.parametrize("key", sorted(OWNED_KEYS))
def test_flink_runtime_config_refusal_names_the_key(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        FlinkJarJobSpec.model_validate({"name": "f", "runtime_config": f"state.backend.type: rocksdb\n {key}: x\n"})
    text = str(info.value)
    assert f"runtime_config cannot set {key} " in text
    assert not any(f" {other} " in text for other in OWNED_KEYS if other != key)  # that key, not the list


@pytest.mark.parametrize("key", ["rest.address", "rest.bind-address", "jobmanager.bind-host", "taskmanager.bind-host",
                                 "taskmanager.host", "taskmanager.rpc.port"])
def test_flink_runtime_config_cannot_rewire_the_pods(key: str) -> None:
    with pytest.raises(ValidationError, match="set by lakejob"):
        FlinkJarJobSpec.model_validate({"name": "f", "runtime_config": f"{key}: 127.0.0.1"})
    assert FlinkJarJobSpec.model_validate({"name": "f", "runtime_config": f"my.{key}: 1\n{key}x: 2"})


# ----------------------------------------------------------------------------- rendering what is allowed


def test_allowed_fields_are_rendered_on_the_pod_and_its_main_container() -> None:
    block = PodCustomization.model_validate({
        "hostNetwork": True, "hostPID": True, "hostIPC": True, "serviceAccountName": "sa",
        "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_PTRACE"]}}})
    pod_sc, container_sc = common.security_context(185)
    pod: dict[str, Any] = {"metadata": {}, "spec": {"securityContext": pod_sc}}
    main: dict[str, Any] = {"securityContext": container_sc}
    side: dict[str, Any] = {"securityContext": container_sc}  # shares the dict, as the renderers do
    common.customize(pod, main, block)
    assert pod["spec"] | {"securityContext": None} == {
        "securityContext": None, "hostNetwork": True, "hostPID": True, "hostIPC": True, "serviceAccountName": "sa",
        "dnsPolicy": "ClusterFirstWithHostNet"}  # the Services still resolve
    assert main["securityContext"] == {"allowPrivilegeEscalation": True, "privileged": True,
                                       "capabilities": {"drop": ["ALL"], "add": ["SYS_PTRACE"]}}
    assert side["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# ----------------------------------------------------------------------------- read-only root file systems

OWNER = Owner(api_version="lakejob.io/v1alpha1", kind="SparkBatch", name="pi", namespace=NS, uid="uid-1")
FLINK_OWNER = Owner(api_version="lakejob.io/v1alpha1", kind="FlinkJarJob", name="wc", namespace=NS, uid="uid-1")


def mounts(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def empty_dirs(pod: dict[str, Any]) -> set[str]:
    return {v["name"] for v in pod["spec"].get("volumes", []) if "emptyDir" in v}


def spark_pods(**fields: Any) -> list[dict[str, Any]]:
    spec = SparkBatchSpec.model_validate({**PY, **fields})
    sz = resolve_sizing(spec)
    return [render_spark.driver_pod(spec, OWNER, sz, 1, SETTINGS, "pi-spark"),
            render_spark.executor_template(spec, OWNER, SETTINGS)]


def test_spark_pods_of_the_operators_image_are_read_only_with_their_writable_dirs() -> None:
    for pod in spark_pods():
        (c,) = pod["spec"]["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"/tmp", "/opt/spark/work-dir"} <= set(mounts(c))
        assert {mounts(c)["/tmp"], mounts(c)["/opt/spark/work-dir"]} <= empty_dirs(pod)
        assert c["workingDir"] == "/opt/spark/work-dir"
    driver = spark_pods()[0]["spec"]["containers"][0]
    assert mounts(driver)["/var/data/spark-local"] == "spark-local-dir"  # Spark's local dir, as before


def test_a_custom_spark_image_keeps_a_writable_root() -> None:
    """It may keep its application in the working directory, which an emptyDir would hide."""
    for pod in spark_pods(feature="custom", image="org/spark:mine"):
        (c,) = pod["spec"]["containers"]
        assert "readOnlyRootFilesystem" not in c["securityContext"] and "/tmp" not in mounts(c)


def test_a_users_volume_at_a_writable_dir_is_kept() -> None:
    block = {"volumes": [{"name": "scratch", "persistentVolumeClaim": {"claimName": "big"}}],
             "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]}
    for pod in spark_pods(driver=block, executor=block):
        (c,) = pod["spec"]["containers"]
        assert mounts(c)["/tmp"] == "scratch" and mounts(c)["/opt/spark/work-dir"] == "lakejob-work-dir"
        assert "lakejob-tmp" not in {v["name"] for v in pod["spec"]["volumes"]}
        assert c["securityContext"]["readOnlyRootFilesystem"] is True


def flink_pods(**fields: Any) -> list[dict[str, Any]]:
    spec = FlinkJarJobSpec.model_validate({"name": "wc", "entrypoint": "local:///a.jar", **fields})
    sz = render_flink.resolve_sizing(spec, SETTINGS)
    return [render_flink.jobmanager_pod(spec, FLINK_OWNER, sz, 1, None, SETTINGS),
            render_flink.taskmanager_replicaset(spec, FLINK_OWNER, sz, SETTINGS)["spec"]["template"]]


def test_flink_pods_are_read_only_with_tmp_and_log_dirs() -> None:
    for pod in flink_pods(dependency_files=["local:///data/x.csv"]):
        for c in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert {mounts(c)["/tmp"], mounts(c)["/opt/flink/log"]} <= empty_dirs(pod)
        assert mounts(pod["spec"]["containers"][0])["/opt/flink/conf"] == "flink-config"


@pytest.mark.parametrize("fields", [
    {"image": "org/flink:mine"},
    # the official entrypoint links these into $FLINK_HOME/plugins at start
    {"jobManager": {"env": [{"name": "ENABLE_BUILT_IN_PLUGINS", "value": "flink-s3-fs-hadoop-2.3.0.jar"}]},
     "taskManager": {"env": [{"name": "ENABLE_BUILT_IN_PLUGINS", "value": "flink-s3-fs-hadoop-2.3.0.jar"}]}},
])
def test_flink_pods_that_write_elsewhere_keep_a_writable_root(fields: dict[str, Any]) -> None:
    for pod in flink_pods(**fields):
        assert "readOnlyRootFilesystem" not in pod["spec"]["containers"][0]["securityContext"]


def test_dag_fetch_and_upload_are_read_only_and_the_command_is_not() -> None:
    spec = DagJobSpec.model_validate(dagjob(command_task(InputMapping={"oss://bucket/in/": "/data/in/"})))
    owner = Owner(api_version="lakejob.io/v1alpha1", kind="DagJob", name="d", namespace=NS, uid="uid-9")
    pod = render_dag.task_job(spec, "A", owner, SETTINGS, 1)["spec"]["template"]["spec"]
    names = {c["name"]: c for c in [*pod["containers"], *pod["initContainers"]]}
    assert names["fetch"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert names["upload"]["securityContext"]["readOnlyRootFilesystem"] is True
    # the command runs any program in any image (ImageId): it may write anywhere
    assert "readOnlyRootFilesystem" not in names["task"]["securityContext"]


# ----------------------------------------------------------------------------- the chart's policy values

CHART = Path(__file__).resolve().parents[2] / "charts" / "lakejob"
HELM = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob")) / "bin" / "helm"


def test_chart_values_schema_takes_the_policy_and_refuses_unknown_features() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["policy"] == {"allow": [], "allowInNamespaces": {}}
    validator = jsonschema.Draft7Validator(schema)
    ok = {**values, "policy": {"allow": ["serviceAccountName"], "allowInNamespaces": {"ops": ["hostNetwork"]}}}
    assert list(validator.iter_errors(ok)) == []
    assert set(schema["definitions"]["podPolicyFeature"]["enum"]) == set(POD_POLICY_FEATURES)
    bad: dict[str, Any]
    for bad in ({"allow": ["root"]}, {"allowInNamespaces": {"Bad_NS": ["hostPID"]}},
                {"allowInNamespaces": {"ops": ["everything"]}}, {"deny": []}):
        assert list(validator.iter_errors({**values, "policy": bad})), bad


@pytest.mark.skipif(not HELM.exists(), reason=f"no helm at {HELM} (make tools builds it)")
def test_chart_passes_the_policy_as_the_operators_setting() -> None:
    out = subprocess.run([str(HELM), "template", "x", str(CHART), "--show-only", "templates/deployment.yaml",
                          "--kube-version", KUBE_VERSION,
                          "--set", "policy.allow={serviceAccountName,capabilities}",
                          "--set", "policy.allowInNamespaces.ops={hostNetwork,hostPID}"],
                         check=True, capture_output=True, text=True).stdout
    env = {e["name"]: e.get("value") for e in yaml.safe_load(out)["spec"]["template"]["spec"]["containers"][0]["env"]}
    value = env["LAKEJOB_POD_POLICY_ALLOW"]
    assert value == "serviceAccountName,capabilities,ops/hostNetwork,ops/hostPID"
    p = PodPolicy.parse(value)
    assert p.allows("capabilities", NS) and p.allows("hostPID", "ops") and not p.allows("hostPID", NS)


# ------------------------------------------------------------------ notification endpoints


def dag_with_endpoint(endpoint: str) -> Any:
    from lakejob.models.dagjob import DagJobSpec

    return DagJobSpec.model_validate({
        "Name": "d", "Type": "DAG", "Priority": 0, "JobFailOnInstanceFail": True,
        "Notification": {"Topic": {"Name": "t", "Endpoint": endpoint, "Events": ["OnJobFinished"]}},
        "DAG": {"Tasks": {"A": {"InstanceCount": 1, "MaxRetryCount": 0, "Timeout": 600, "Parameters": {
            "Command": {"CommandLine": "python w.py", "PackagePath": ""}, "StdoutRedirectPath": "oss://bucket/logs/",
            "StderrRedirectPath": "oss://bucket/logs/"}}}}})


@pytest.mark.parametrize("endpoint, allowed, refused", [
    ("http://hooks.example.com/x", (), True),  # nothing is allowed by default
    ("https://hooks.example.com/x", ("hooks.example.com",), False),
    ("https://a.hooks.example.com:8443/x", ("*.hooks.example.com",), False),
    ("http://169.254.169.254/latest/meta-data", ("*.example.com",), True),
    ("http://kubernetes.default.svc/api", ("*.example.com",), True),
    ("http://[UserId].mns.[Region].aliyuncs.com/", (), False),  # the seed's template: no URL, never POSTed
])
def test_a_dagjobs_own_endpoint_must_name_an_allowed_host(endpoint: str, allowed: tuple[str, ...],
                                                          refused: bool) -> None:
    found = policy.errors(dag_with_endpoint(endpoint), Settings(notify_allowed_hosts=allowed), "team-a")
    assert bool(found) is refused
    if refused:
        assert found[0].startswith("spec.Notification.Topic.Endpoint: host ") and "LAKEJOB_NOTIFY_ALLOWED_HOSTS=" in found[0]


def test_settings_read_the_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_NOTIFY_ALLOWED_HOSTS", "Hooks.example.com, *.corp.example")
    assert Settings.from_env().notify_allowed_hosts == ("hooks.example.com", "*.corp.example")
