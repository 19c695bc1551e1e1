"""Admission rules of SparkBatchSpec, checked on both paths the operator has.

Path 1: `SparkBatchSpec.model_validate` (what every caller of the model sees).
Path 2: `lakejob.controllers.sparkbatch.parse_spec({"spec": ...})`, which returns
(spec, error) and is what the operator reports on the object's status.

Every invalid case asserts the exact message fragment (and the field it names), so a rule that
is dropped, loosened or reworded fails here. The cross-field Rules are also checked against the
generated CRD: same CEL text, same message, so admission and the operator cannot drift apart.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from lakejob import crds
from lakejob.controllers.base import unknown_fields
from lakejob.controllers.sparkbatch import parse_spec
from lakejob.models.rules import SPARK_3_3_OR_LATER, Rule, spark_at_least_3_3
from lakejob.models.sparkbatch import SparkBatchSpec

REPO = Path(__file__).resolve().parents[2]

JAR = {"file": "local:///opt/app/app.jar", "className": "com.example.Main"}

MSG_CLASSNAME = "className is required unless file is a Python file (.py)"
MSG_QUEUE = "queue and cluster_name cannot coexist: set queue (cluster_name is its older name)"
MSG_IMAGE = "image is valid only when feature is custom"
MSG_RESOURCES = ("resources and groups are not supported by spark_version 3.3 or later: "
                 "list the packages in jars, pyFiles and files")
MSG_UNIT = "must include the unit"


def jar(**fields: Any) -> dict[str, Any]:
    return {**JAR, **fields}


def errors_of(spec: dict[str, Any]) -> str:
    """model_validate's error text (the test fails if the spec is accepted)."""
    with pytest.raises(ValidationError) as info:
        SparkBatchSpec.model_validate(spec)
    return str(info.value)


def parse_error(spec: dict[str, Any]) -> str:
    parsed, error = parse_spec({"spec": spec})
    assert parsed is None, f"parse_spec accepted {spec!r}"
    assert error is not None and error.startswith("spec")
    return error


def assert_valid(spec: dict[str, Any]) -> SparkBatchSpec:
    model = SparkBatchSpec.model_validate(spec)
    parsed, error = parse_spec({"spec": spec})
    assert error is None
    assert parsed == model
    return model


# ----------------------------------------------------------------------------- invalid specs

# (id, spec, where the error is reported by parse_spec, message fragment)
INVALID: list[Any] = [
    # file
    pytest.param({"className": "a.B"}, "spec.file", "Field required", id="file-missing"),
    pytest.param({"file": "", "className": "a.B"}, "spec.file", "at least 1 character", id="file-empty"),
    pytest.param({"file": "x" * 4097, "className": "a.B"}, "spec.file", "at most 4096 characters", id="file-too-long"),
    # className (Rule)
    pytest.param({"file": "local:///app.jar"}, "spec", MSG_CLASSNAME, id="className-missing-jar"),
    pytest.param({"file": "local:///app.pyc"}, "spec", MSG_CLASSNAME, id="className-missing-pyc"),
    pytest.param({"file": "local:///app.py.jar"}, "spec", MSG_CLASSNAME, id="className-missing-py-in-middle"),
    pytest.param({"file": "local:///app.jar", "className": ""}, "spec.className", "at least 1 character",
                 id="className-empty"),
    # queue / cluster_name (Rule)
    pytest.param(jar(queue="q1", cluster_name="q1"), "spec", MSG_QUEUE, id="queue-and-cluster_name"),
    pytest.param(jar(queue="", cluster_name=""), "spec", MSG_QUEUE, id="queue-and-cluster_name-empty"),
    # sc_type
    pytest.param(jar(sc_type="D"), "spec.sc_type", "Input should be 'A', 'B' or 'C'", id="sc_type-D"),
    pytest.param(jar(sc_type="a"), "spec.sc_type", "Input should be 'A', 'B' or 'C'", id="sc_type-lowercase"),
    pytest.param(jar(sc_type="CUSTOMIZED"), "spec.sc_type", "Input should be 'A', 'B' or 'C'",
                 id="sc_type-CUSTOMIZED"),
    # max_retry_times
    pytest.param(jar(max_retry_times=101), "spec.max_retry_times", "less than or equal to 100", id="retries-101"),
    pytest.param(jar(max_retry_times=-1), "spec.max_retry_times", "greater than or equal to 0", id="retries-neg"),
    # image (Rule)
    pytest.param(jar(image="org/spark:1"), "spec", MSG_IMAGE, id="image-without-feature"),
    pytest.param(jar(image="org/spark:1", feature="basic"), "spec", MSG_IMAGE, id="image-feature-basic"),
    pytest.param(jar(image="org/spark:1", feature="ai"), "spec", MSG_IMAGE, id="image-feature-ai"),
    pytest.param(jar(feature="gpu"), "spec.feature", "Input should be 'basic', 'custom' or 'ai'", id="feature-gpu"),
    # memory strings
    pytest.param(jar(driverMemory="2GiB"), "spec.driverMemory", "is not a memory size", id="mem-GiB"),
    pytest.param(jar(executorMemory="2 G B"), "spec.executorMemory", "is not a memory size", id="mem-G-B"),
    pytest.param(jar(driverMemory="G"), "spec.driverMemory", "is not a memory size", id="mem-unit-only"),
    pytest.param(jar(executorMemory="-1G"), "spec.executorMemory", "is not a memory size", id="mem-negative"),
    pytest.param(jar(driverMemory="1.5G"), "spec.driverMemory", "is not a memory size", id="mem-fraction"),
    # cores / executors
    pytest.param(jar(driverCores=0), "spec.driverCores", "greater than or equal to 1", id="driverCores-0"),
    pytest.param(jar(driverCores=-2), "spec.driverCores", "greater than or equal to 1", id="driverCores-neg"),
    pytest.param(jar(executorCores=0), "spec.executorCores", "greater than or equal to 1", id="executorCores-0"),
    pytest.param(jar(executorCores=257), "spec.executorCores", "less than or equal to 256", id="executorCores-257"),
    pytest.param(jar(numExecutors=0), "spec.numExecutors", "greater than or equal to 1", id="numExecutors-0"),
    # name
    pytest.param(jar(name="n" * 129), "spec.name", "at most 128 characters", id="name-129"),
    # schedulingTimeout
    pytest.param(jar(schedulingTimeout="3 hours"), "spec.schedulingTimeout", "String should match pattern",
                 id="timeout-3-hours"),
    pytest.param(jar(schedulingTimeout=""), "spec.schedulingTimeout", "at least 2 characters", id="timeout-empty"),
    pytest.param(jar(schedulingTimeout="1d"), "spec.schedulingTimeout", "String should match pattern",
                 id="timeout-days"),
    pytest.param(jar(schedulingTimeout="30m1h"), "spec.schedulingTimeout", "String should match pattern",
                 id="timeout-wrong-order"),
    pytest.param(jar(schedulingTimeout="600"), "spec.schedulingTimeout", "String should match pattern",
                 id="timeout-no-unit"),
    # spark_version
    pytest.param(jar(spark_version="3"), "spec.spark_version", "String should match pattern", id="version-major"),
    pytest.param(jar(spark_version="v3.5.0"), "spec.spark_version", "String should match pattern", id="version-v"),
    # types
    pytest.param(jar(conf={"spark.executor.instances": 4}), "spec.conf.spark.executor.instances",
                 "Input should be a valid string", id="conf-int-value"),
    pytest.param(jar(args="a b"), "spec.args", "Input should be a valid list", id="args-string"),
    pytest.param(jar(driver={"tolerations": [{"operator": "In"}]}), "spec.driver.tolerations.0.operator",
                 "Input should be 'Exists' or 'Equal'", id="toleration-operator"),
]


@pytest.mark.parametrize(("spec", "where", "fragment"), INVALID)
def test_invalid_spec_model_validate(spec: dict[str, Any], where: str, fragment: str) -> None:
    text = errors_of(spec)
    assert fragment in text
    if where != "spec":  # field errors: pydantic names the field (dotted path, last part shown)
        assert where.removeprefix("spec.").split(".")[0] in text


@pytest.mark.parametrize(("spec", "where", "fragment"), INVALID)
def test_invalid_spec_parse_spec(spec: dict[str, Any], where: str, fragment: str) -> None:
    error = parse_error(spec)
    assert error.startswith(f"{where}: "), error
    assert fragment in error


def test_enough_invalid_cases() -> None:
    assert len(INVALID) >= 22


# Unknown fields: refused by the model (and at admission, by the CRD's structural schema); the
# operator's parse_spec ignores and names them instead, since a spec with fields admission
# accepted but this version lacks comes from a newer CRD (docs/reliability.md).
UNKNOWN: list[Any] = [
    # hostNetwork is a field (governed by the operator's policy, tests/unit/test_policy.py); hostAliases is not.
    pytest.param(jar(executorMemoryGB="2"), "spec.executorMemoryGB", id="unknown-top-level"),
    pytest.param(jar(driver={"labels": {"a": "b"}, "hostAliases": []}), "spec.driver.hostAliases", id="unknown-in-driver"),
    pytest.param(jar(resources=[{"name": "a.jar", "kind": "jar"}]), "spec.resources.0.kind", id="unknown-in-resource"),
]


@pytest.mark.parametrize(("spec", "where"), UNKNOWN)
def test_unknown_fields_are_refused_by_the_model_and_named_by_the_operator(spec: dict[str, Any], where: str) -> None:
    assert "Extra inputs are not permitted" in errors_of(spec)
    parsed, error = parse_spec({"spec": spec})
    assert parsed is not None and error is None
    assert unknown_fields(SparkBatchSpec, {"spec": spec}) == [where]


# --------------------------------------------------------------- rule messages name their field


@pytest.mark.parametrize(("spec", "field"), [
    ({"file": "a.jar"}, "className"),
    (jar(queue="q", cluster_name="c"), "cluster_name"),
    (jar(image="o/i:1"), "image"),
    (jar(spark_version="3.5.7", resources=[{"name": "a.jar"}]), "resources"),
])
def test_rule_message_names_its_field(spec: dict[str, Any], field: str) -> None:
    assert field in parse_error(spec)
    assert field in errors_of(spec)


def test_every_broken_rule_is_reported_at_once() -> None:
    spec = {"file": "a.jar", "queue": "q", "cluster_name": "c", "image": "o/i:1"}
    error = parse_error(spec)
    assert error == f"spec: {MSG_CLASSNAME}; {MSG_QUEUE}; {MSG_IMAGE}"
    text = errors_of(spec)
    for message in (MSG_CLASSNAME, MSG_QUEUE, MSG_IMAGE):
        assert message in text


def test_missing_or_null_spec_reports_file() -> None:
    bodies: list[dict[str, Any]] = [{}, {"spec": None}, {"spec": {}}]
    for body in bodies:
        spec, error = parse_spec(body)
        assert spec is None
        assert error == "spec.file: Field required"


def test_parse_spec_joins_field_errors() -> None:
    error = parse_error(jar(driverCores=0, max_retry_times=101))
    assert error == ("spec.driverCores: Input should be greater than or equal to 1; "
                     "spec.max_retry_times: Input should be less than or equal to 100")


# ----------------------------------------------------------------------------- valid specs


@pytest.mark.parametrize("file", ["local:///app.py", "s3a://b/APP.PY", "obs://b/job.Py", "main.py"])
def test_python_file_needs_no_class_name(file: str) -> None:
    model = assert_valid({"file": file})
    assert model.className is None
    assert model.is_python is True


def test_jar_with_class_name_is_not_python() -> None:
    assert assert_valid(JAR).is_python is False


@pytest.mark.parametrize("field", ["queue", "cluster_name"])
def test_queue_or_cluster_name_alone(field: str) -> None:
    assert getattr(assert_valid(jar(**{field: "q1"})), field) == "q1"


@pytest.mark.parametrize("sc_type", ["A", "B", "C"])
def test_sc_types(sc_type: str) -> None:
    assert assert_valid(jar(sc_type=sc_type)).sc_type == sc_type


@pytest.mark.parametrize("n", [0, 1, 20, 100])
def test_max_retry_times_bounds(n: int) -> None:
    assert assert_valid(jar(max_retry_times=n)).max_retry_times == n


def test_image_with_feature_custom() -> None:
    model = assert_valid(jar(image="org/spark:3.5-custom", feature="custom"))
    assert model.image == "org/spark:3.5-custom"


@pytest.mark.parametrize("field", ["resources", "groups"])
@pytest.mark.parametrize("version", ["3.3", "3.3.1", "3.5.7", "4.0.0", "10.1", "3.10", "3.4.0"])
def test_resources_and_groups_rejected_from_spark_3_3(field: str, version: str) -> None:
    value = [{"name": "a.jar", "type": "jar"}] if field == "resources" else [{"name": "g"}]
    spec = jar(spark_version=version, **{field: value})
    assert MSG_RESOURCES in errors_of(spec)
    assert parse_error(spec) == f"spec: {MSG_RESOURCES}"


@pytest.mark.parametrize("field", ["resources", "groups"])
@pytest.mark.parametrize("version", ["2.3.2", "3.2.4", "3.1", "3.0.3", "2.4"])
def test_resources_and_groups_accepted_before_spark_3_3(field: str, version: str) -> None:
    value = [{"name": "a.jar", "type": "jar"}] if field == "resources" else [{"name": "g"}]
    model = assert_valid(jar(spark_version=version, **{field: value}))
    assert getattr(model, field) is not None


def test_resources_accepted_without_spark_version() -> None:
    assert assert_valid(jar(resources=[{"name": "a.jar"}])).spark_version is None


def test_spark_version_3_3_without_resources_is_fine() -> None:
    assert assert_valid(jar(spark_version="3.3.1")).spark_version == "3.3.1"


@pytest.mark.parametrize(("version", "later"), [
    ("3.3", True), ("3.3.1", True), ("3.5.7", True), ("4.0.0", True), ("10.1", True), ("3.10", True),
    ("3.2.4", False), ("3.1", False), ("2.3.2", False), ("2.4.8", False), (None, False),
])
def test_spark_at_least_3_3(version: str | None, later: bool) -> None:
    assert spark_at_least_3_3(version) is later


@pytest.mark.parametrize("value", ["2G", "2048M", "2048m", "2 GB", "2048 MB", "512k", "1t", " 4g "])
def test_memory_strings_with_unit(value: str) -> None:
    model = assert_valid(jar(driverMemory=value, executorMemory=value))
    assert model.driverMemory == value
    assert model.executorMemory == value


@pytest.mark.parametrize("field", ["driverMemory", "executorMemory"])
@pytest.mark.parametrize("value", ["2048", 2048, " 2048 "])
def test_bare_memory_number_says_must_include_the_unit(field: str, value: Any) -> None:
    spec = jar(**{field: value})
    error = parse_error(spec)
    assert error.startswith(f"spec.{field}: ")
    assert MSG_UNIT in error
    assert MSG_UNIT in errors_of(spec)


@pytest.mark.parametrize("cores", [1, 2, 256])
def test_driver_cores_bounds(cores: int) -> None:
    assert assert_valid(jar(driverCores=cores)).driverCores == cores


def test_name_128_characters() -> None:
    assert assert_valid(jar(name="n" * 128)).name == "n" * 128


@pytest.mark.parametrize("value", ["3h", "10m", "90s", "1h30m", "1h30m15s", "0s"])
def test_scheduling_timeout_accepted(value: str) -> None:
    assert assert_valid(jar(schedulingTimeout=value)).schedulingTimeout == value


def test_suspend_is_optional_and_boolean() -> None:
    assert assert_valid(jar(suspend=True)).suspend is True
    assert assert_valid(JAR).suspend is None


# ----------------------------------------------------------------------------- vendor examples

# DLI "Creating a Batch Processing Job", Example Request (dli-spark-batch-job-api.txt), unchanged.
DLI_EXAMPLE = {
    "file": "batchTest/spark-examples_2.11-2.1.0.luxor.jar",
    "className": "org.apache.spark.examples.SparkPi",
    "sc_type": "A",
    "jars": ["demo-1.0.0.jar"],
    "files": ["count.txt"],
    "resources": [
        {"name": "groupTest/testJar.jar", "type": "jar"},
        {"name": "kafka-clients-0.10.0.0.jar", "type": "jar"}],
    "groups": [
        {"name": "groupTestJar", "resources": [{"name": "testJar.jar", "type": "jar"},
                                               {"name": "testJar1.jar", "type": "jar"}]},
        {"name": "batchTest", "resources": [{"name": "luxor.jar", "type": "jar"}]}],
    "queue": " test",
    "name": "TestDemo4",
    "feature": "basic",
    "execution_agency_urn": "myAgencyName",
    "spark_version": "2.3.2",
}

# HDInsight Livy "Create a new batch job" example request (hdinsight-livy-batch-api.txt), unchanged.
LIVY_EXAMPLE = {
    "file": "wasb://<BlobStorageContainerName>@<StorageAccountName>.blob.core.windows.net/sample.jar",
    "args": ["arg0", "arg1"],
    "className": "com.sample.Job1",
    "jars": ["wasb://<BlobStorageContainerName>@<StorageAccountName>.blob.core.windows.net/helper.jar"],
    "files": ["wasb://<BlobStorageContainerName>@<StorageAccountName>.blob.core.windows.net/config.xml"],
    "driverMemory": "1G",
    "driverCores": 2,
    "executorMemory": "1G",
    "executorCores": 10,
    "numExecutors": 10,
}


def test_dli_example_validates_unchanged() -> None:
    model = assert_valid(DLI_EXAMPLE)
    assert model.model_dump(exclude_none=True) == DLI_EXAMPLE
    assert model.queue == " test"
    assert model.groups is not None and model.groups[0].resources is not None
    assert [r.name for r in model.groups[0].resources] == ["testJar.jar", "testJar1.jar"]


def test_livy_example_validates_unchanged() -> None:
    model = assert_valid(LIVY_EXAMPLE)
    assert model.model_dump(exclude_none=True) == LIVY_EXAMPLE
    assert model.executorCores == 10
    assert model.numExecutors == 10
    assert model.driverMemory == "1G"


def test_dli_example_with_spark_3_3_is_rejected() -> None:
    assert parse_error({**DLI_EXAMPLE, "spark_version": "3.3.1"}) == f"spec: {MSG_RESOURCES}"


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("**/sparkbatch-*.yaml")), ids=lambda p: p.name)
def test_repository_examples_validate(path: Path) -> None:
    (body,) = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] != "ConfigMap"]
    assert body["kind"] == "SparkBatch"
    spec, error = parse_spec(body)
    assert error is None and spec is not None


def test_seed_examples_are_in_the_repository_examples() -> None:
    by_name = {p.name: yaml.safe_load(p.read_text())["spec"] for p in (REPO / "examples").glob("sparkbatch-*.yaml")}
    assert by_name["sparkbatch-dli.yaml"] == DLI_EXAMPLE
    assert by_name["sparkbatch-livy.yaml"] == LIVY_EXAMPLE


# ----------------------------------------------------------------------------- Rule ↔ CRD


# For every rule (keyed by rule_id: its field, numbered from the second rule on one field): a spec
# that breaks it and one that satisfies it.
RULE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "className": ({"file": "a.jar"}, {"file": "a.PY"}),
    "cluster_name": (jar(queue="q", cluster_name="c"), jar(cluster_name="c")),
    "image": (jar(image="o/i:1", feature="basic"), jar(image="o/i:1", feature="custom")),
    "resources": (jar(spark_version="3.3.0", groups=[{"name": "g"}]), jar(spark_version="3.2.0", groups=[{"name": "g"}])),
    "conf": (jar(conf={"spark.kubernetes.driver.request.cores": "100m", "spark.kubernetes.executor.request.cores": "0"}),
             jar(conf={"spark.kubernetes.driver.request.cores": "100m", "spark.kubernetes.executor.request.cores": "1"})),
    "conf#1": (jar(conf={"spark.master": "local[2]"}), jar(conf={"spark.sql.shuffle.partitions": "4"})),
}

RULES = SparkBatchSpec.__rules__


def rule_id(rule: Rule) -> str:
    same = [r for r in RULES if r.field == rule.field]
    n = same.index(rule)
    return (rule.field or "") + (f"#{n}" if n else "")


def crd_spec_schema() -> dict[str, Any]:
    """The spec schema as the apiserver reads it (through YAML, as `kubectl apply` would send it)."""
    text = crds.render_all()["lakejob.io_sparkbatches.yaml"]
    crd = yaml.safe_load(text)
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_every_rule_has_a_case() -> None:
    assert sorted(rule_id(r) for r in RULES) == sorted(RULE_CASES)


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_rule_python_check(rule: Rule) -> None:
    bad, good = RULE_CASES[rule_id(rule)]
    assert rule.check(SparkBatchSpec.model_construct(**bad)) is False
    assert rule.check(SparkBatchSpec.model_construct(**good)) is True
    text = rule.text(SparkBatchSpec.model_construct(**bad))  # the message, or the one naming the value
    assert text in errors_of(bad)
    assert text in parse_error(bad)
    assert_valid(good)


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_rule_is_in_the_crd_with_the_same_message(rule: Rule) -> None:
    validations = crd_spec_schema()["x-kubernetes-validations"]
    matching = [v for v in validations if v["rule"] == rule.cel]
    assert matching == [{"rule": rule.cel, "message": rule.message, "fieldPath": f".{rule.field}",
                         "reason": "FieldValueInvalid",
                         **({"messageExpression": rule.message_expression} if rule.message_expression else {})}]
    # the field the rule reports exists in the schema
    assert (rule.field or "") in crd_spec_schema()["properties"]


def test_rule_in_crd_from_crds_crd_directly() -> None:
    spec = crds.crd(crds.KINDS[0])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    pairs = {(v["rule"], v["message"]) for v in spec["x-kubernetes-validations"]}
    for rule in RULES:
        assert (rule.cel, rule.message) in pairs


def test_spark_version_regex_in_cel_equals_python_regex() -> None:
    (rule,) = [r for r in RULES if r.field == "resources"]
    cel = next(v["rule"] for v in crd_spec_schema()["x-kubernetes-validations"] if v["rule"] == rule.cel)
    m = re.search(r"self\.spark_version\.matches\('(.*)'\)$", cel)
    assert m is not None
    # A CEL single-quoted string literal reads "\\" as one backslash.
    assert m.group(1).replace("\\\\", "\\") == SPARK_3_3_OR_LATER


def test_memory_unit_rule_in_crd() -> None:
    props = crd_spec_schema()["properties"]
    for field in ("driverMemory", "executorMemory"):
        rules = props[field]["x-kubernetes-validations"]
        unit_rule = [r for r in rules if "must include the unit" in r["message"]]
        assert len(unit_rule) == 1
        m = re.fullmatch(r"!self\.matches\('(.*)'\)", unit_rule[0]["rule"])
        assert m is not None
        bare = re.compile(m.group(1).replace("\\\\", "\\"))
        assert bare.match("2048") and bare.match(" 2048 ")
        assert not bare.match("2048M")


VOLUME_MESSAGE = "a volume needs exactly one of configMap, secret, emptyDir, persistentVolumeClaim, hostPath"


def test_volume_rule_in_crd() -> None:
    volume = crd_spec_schema()["properties"]["driver"]["properties"]["volumes"]["items"]
    assert [v["message"] for v in volume["x-kubernetes-validations"]] == [VOLUME_MESSAGE]


@pytest.mark.parametrize("volume", [
    {"name": "v"},
    {"name": "v", "configMap": {"name": "c"}, "secret": {"secretName": "s"}},
], ids=["no-source", "two-sources"])
def test_volume_needs_exactly_one_source(volume: dict[str, Any]) -> None:
    spec = jar(driver={"volumes": [volume]})
    assert VOLUME_MESSAGE in parse_error(spec)
