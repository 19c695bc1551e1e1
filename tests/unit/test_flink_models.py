"""FlinkJarJobSpec: the DLI example accepted, every rule in Python, the CEL the CRD carries,
entrypoint_args split as a shell would."""
from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from lakejob import crds
from lakejob.models.flinkjarjob import (
    ARGS_PATTERN,
    OWNED_KEYS,
    RUNTIME_CONFIG_PATTERN,
    FlinkJarJobSpec,
    FlinkJarJobStatus,
)
from tests.unit.test_crds import REPO

DLI = yaml.safe_load((REPO / "examples" / "flinkjarjob-dli.yaml").read_text())["spec"]


def spec(**fields: Any) -> FlinkJarJobSpec:
    return FlinkJarJobSpec.model_validate({"name": "j", **fields})


def error(**fields: Any) -> str:
    with pytest.raises(ValidationError) as e:
        spec(**fields)
    return str(e.value)


def test_the_dli_example_is_accepted_unchanged() -> None:
    s = FlinkJarJobSpec.model_validate(DLI)
    assert s.name == "test" and s.cu() == 2 and s.tm_slot_num == 1 and s.dependency_files == \
        ["myGroup/test.csv", "myGroup/test1.csv"]


def test_defaults() -> None:
    s = spec()
    assert (s.cu(), s.manager_cus(), s.tm_cu(), s.parallelism()) == (2, 1, 1, 1)
    assert s.args() == []


@pytest.mark.parametrize(("text", "args"), [
    ("-windowSize 2000 -rate3", ["-windowSize", "2000", "-rate3"]),
    ("  a   b  ", ["a", "b"]),
    ("--name 'two words' --x \"a \\\"q\\\" b\"", ["--name", "two words", "--x", 'a "q" b']),
    ("a\\ b c", ["a b", "c"]),
    ("'it''s'", ["its"]),
    ("--empty ''", ["--empty", ""]),
    ("", []),
])
def test_entrypoint_args_are_split_as_a_shell_would(text: str, args: list[str]) -> None:
    assert spec(entrypoint_args=text).args() == args


@pytest.mark.parametrize("text", ["'open", '"open', "trailing\\", "a 'b\" c"])
def test_entrypoint_args_with_unbalanced_quotes_are_rejected(text: str) -> None:
    assert "entrypoint_args" in error(entrypoint_args=text)
    assert re.fullmatch(ARGS_PATTERN, text) is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"cu_number": 1}, "cu_number − manager_cu_number = 1 − 1 = 0 CU(s) left for TaskManagers"),
    ({"cu_number": 4, "tm_cus": 2, "parallel_number": 5}, "= (4 − 1) / 2 = 1 TaskManager(s) × 4 slot(s) = 4 slot(s)"),
    ({"resume_max_num": 0}, "resume_max_num must be -1 (unlimited) or greater than 0"),
    ({"resume_max_num": -2}, "greater than or equal to -1"),
    ({"log_enabled": True}, "obs_bucket is required when log_enabled is true"),
    ({"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}, "tags must have distinct keys"),
    ({"tags": [{"key": "x/y", "value": "1"}]}, "tags.0.key"),
    ({"tags": [{"key": "x", "value": "has space"}]}, "tags.0.value"),
    ({"entrypoint": "hdfs://nn/a.jar"}, "entrypoint"),  # a class loader cannot read it, nor can the fetcher
    ({"dependency_jars": ["ftp://h/a.jar"]}, "dependency_jars.0"),
    ({"dependency_files": ["http://h/a.csv"]}, "dependency_files.0"),
    ({"checkpoint_path": "/no/scheme"}, "checkpoint_path"),
    ({"name": "x" * 58}, "name"),
    ({"colour": "blue"}, "Extra inputs are not permitted"),
])
def test_rules(fields: dict[str, Any], message: str) -> None:
    assert message in error(**fields)


@pytest.mark.parametrize("fields", [
    {"resume_max_num": -1}, {"resume_max_num": 1}, {"log_enabled": False},
    {"log_enabled": True, "obs_bucket": "b"}, {"restart_when_exception": True, "resume_checkpoint": True},
    {"entrypoint": "https://repo/x.jar"}, {"entrypoint": "/opt/flink/usrlib/x.jar"}, {"entrypoint": "g/x.jar"},
    {"dependency_jars": ["local:///a.jar", "file:///b.jar"]}, {"checkpoint_path": "obs://bucket/ckpt"},
    {"entrypoint": "obs://bucket/a.jar", "dependency_jars": ["s3a://b/x.jar", "oss://b/y.jar"],
     "dependency_files": ["obs://b/a.csv", "s3://b/b.csv"]},
    {"cu_number": 4, "manager_cu_number": 2, "tm_cus": 2}, {"cu_number": 3, "parallel_number": 4, "tm_slot_num": 2},
])
def test_valid(fields: dict[str, Any]) -> None:
    spec(**fields)


def test_every_owned_runtime_config_key_is_rejected_and_others_pass() -> None:
    for key, use in OWNED_KEYS.items():
        message = error(runtime_config=f"state.backend.type: rocksdb\n  {key}: 1\n")
        assert f"{key} " in message and use in message
    ok = spec(runtime_config="# tuning\n\nstate.backend.type: rocksdb\nmy.parallelism.default: 3\nk: a: b\n")
    assert ok.runtime_config is not None


@pytest.mark.parametrize(("text", "ok"), [
    ("a.b: 1", True), ("a.b: 1\n", True), ("# c\n\n  a: x y z\n", True), ("a:b", False), ("no colon", False),
    ("a.b 1", False), ("", True),
])
def test_runtime_config_lines(text: str, ok: bool) -> None:
    assert (re.fullmatch(RUNTIME_CONFIG_PATTERN, text) is not None) is ok


def _flink_crd() -> dict[str, Any]:
    (kind,) = [k for k in crds.KINDS if k.kind == "FlinkJarJob"]
    return crds.crd(kind)


def test_crd_names_columns_and_rules() -> None:
    crd = _flink_crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["fjj"] and names["categories"] == ["lakejob"] and names["plural"] == "flinkjarjobs"
    (version,) = crd["spec"]["versions"]
    assert [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c] == \
        ["Status", "Parallelism", "Restarts", "Age"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = schema["x-kubernetes-validations"]
    cu_rules = [r for r in rules if "messageExpression" in r and r["fieldPath"] != ".runtime_config"]
    assert [r["fieldPath"] for r in cu_rules] == [".cu_number", ".parallel_number"]
    assert "string(" not in cu_rules[0]["messageExpression"]  # the apiserver cannot bound string(int)'s cost
    assert "x-kubernetes-validations" not in schema["properties"]["suspend"]  # set back to false: a new run
    assert schema["properties"]["checkpoint_path"]["x-kubernetes-validations"][-1] == {
        "rule": "self == oldSelf", "message": "checkpoint_path is immutable once the job exists (every field but "
                                              "checkpoint_path may change); delete and re-create the object to change it"}
    assert [r for r in rules if "oldSelf" in r["rule"]] == [{
        "rule": "has(self.checkpoint_path) == has(oldSelf.checkpoint_path)",
        "message": "checkpoint_path cannot be added to or removed from spec once the job exists (every field but "
                   "checkpoint_path may change)"}]
    assert schema["properties"]["entrypoint_args"]["pattern"] == ARGS_PATTERN
    assert schema["required"] == ["name"]


def test_status_tolerates_unknown_fields() -> None:
    st = FlinkJarJobStatus.model_validate({"status_name": "job_running", "state": "Running", "future": 1})
    assert st.status_name == "job_running"
