"""DagJobSpec: BatchCompute's error-code table as rules, on the operator's path (pydantic), and the
same rules in the generated CRD (OpenAPI bounds and CEL with the same messages).

Each invalid case names the BatchCompute code (or bound) it stands for and asserts the message
fragment, so a dropped or loosened rule fails here. The apiserver's half (the CEL really
evaluated) is tests/e2e/test_dagjob.py's admission cases.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakejob import crds
from lakejob.controllers.dagjob import parse_spec
from lakejob.models.dagjob import DagJobSpec, Task
from lakejob.models.rules import Rule

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "seeds" / "batchcompute-dag-job-api.txt"


def command(**extra: Any) -> dict[str, Any]:
    return {"InstanceCount": 1, "Timeout": 60, "Parameters": {
        "Command": {"CommandLine": "python worker.py", "PackagePath": "oss://bucket/app/worker.tar.gz"},
        "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"}, **extra}


def valid() -> dict[str, Any]:
    return {"Name": "job-1", "Priority": 1, "Type": "DAG", "JobFailOnInstanceFail": True,
            "DAG": {"Tasks": {"A": command(), "B": command()}, "Dependencies": {"A": ["B"]}}}


def error_of(spec: dict[str, Any]) -> str:
    parsed, error = parse_spec({"spec": spec})
    assert parsed is None, f"accepted: {json.dumps(spec)[:300]}"
    assert error is not None
    return error


def task_a(spec: dict[str, Any]) -> dict[str, Any]:
    a: dict[str, Any] = spec["DAG"]["Tasks"]["A"]
    return a


def cmd(spec: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = task_a(spec)["Parameters"]["Command"]
    return c


Mutation = Callable[[dict[str, Any]], None]
CASES: list[tuple[str, Mutation, str]] = [
    ("MissingName", lambda s: s.pop("Name"), "spec.Name: Field required"),
    ("InvalidName length", lambda s: s.update(Name="a" * 65), "spec.Name: String should have at most 64"),
    ("InvalidName empty", lambda s: s.update(Name=""), "spec.Name: String should have at least 1"),
    ("InvalidName digit", lambda s: s.update(Name="1job"), "InvalidName: Specified parameter Name is not valid"),
    ("InvalidName chars", lambda s: s.update(Name="job_1"), "must not start with [0-9]"),
    ("InvalidDescription", lambda s: s.update(Description="d" * 1025), "spec.Description: String should have at most 1024"),
    ("InvalidPriority high", lambda s: s.update(Priority=1001), "spec.Priority: Input should be less than or equal to 1000"),
    ("InvalidPriority low", lambda s: s.update(Priority=-1), "spec.Priority: Input should be greater than or equal to 0"),
    ("InvalidPriority type", lambda s: s.update(Priority="high"), "spec.Priority: Input should be a valid integer"),
    ("MissingType", lambda s: s.pop("Type"), "spec.Type: Field required"),
    ("InvalidType", lambda s: s.update(Type="Batch"), "spec.Type: Input should be 'DAG'"),
    ("InvalidJobFailOnInstanceFail", lambda s: s.update(JobFailOnInstanceFail="maybe"),
     "spec.JobFailOnInstanceFail: Input should be a valid boolean"),
    ("MissingDAG", lambda s: s.pop("DAG"), "spec.DAG: Field required"),
    ("MissingTasks", lambda s: s["DAG"].pop("Tasks"), "spec.DAG.Tasks: Field required"),
    ("InvalidTasks size 0", lambda s: s["DAG"].update(Tasks={}, Dependencies={}), "spec.DAG.Tasks: Dictionary should have at least 1"),
    ("InvalidTasks size 17", lambda s: s["DAG"].update(Tasks={f"t{i}": command() for i in range(17)}, Dependencies={}),
     "spec.DAG.Tasks: Dictionary should have at most 16"),
    ("InvalidTasks.{key} digit", lambda s: s["DAG"].update(Tasks={"9a": command()}, Dependencies={}),
     "InvalidTasks.{key}: Specified parameter Tasks.{key} is not valid"),
    ("InvalidTasks.{key} length", lambda s: s["DAG"].update(Tasks={"a" * 65: command()}, Dependencies={}),
     "Its length must be in [1, 64]"),
    ("InvalidDependencies unknown target", lambda s: s["DAG"].update(Dependencies={"A": ["Z"]}),
     "InvalidDependencies: Dependencies name tasks that are not in Tasks: Z"),
    ("InvalidDependencies unknown source", lambda s: s["DAG"].update(Dependencies={"Y": ["A"]}),
     "Dependencies name tasks that are not in Tasks: Y"),
    ("InvalidDependencies cycle", lambda s: s["DAG"].update(Dependencies={"A": ["B"], "B": ["A"]}),
     "InvalidDependencies: Dependencies form a cycle: A -> B -> A"),
    ("InvalidDependencies.{key}.value", lambda s: s["DAG"].update(Dependencies={"A": "B"}),
     "spec.DAG.Dependencies.A: Input should be a valid list"),
    ("MissingParameters", lambda s: task_a(s).pop("Parameters"), "MissingParameters: Parameters is mandatory"),
    ("MissingCommand", lambda s: task_a(s)["Parameters"].pop("Command"), "Parameters.Command: Field required"),
    ("MissingCommandLine", lambda s: cmd(s).pop("CommandLine"), "Command.CommandLine: Field required"),
    ("InvalidCommandLine", lambda s: cmd(s).update(CommandLine="x" * 1025), "CommandLine: String should have at most 1024"),
    ("MissingInstanceCount", lambda s: task_a(s).pop("InstanceCount"), "MissingInstanceCount: InstanceCount is mandatory"),
    ("InvalidInstanceCount", lambda s: task_a(s).update(InstanceCount=1.5), "InstanceCount: Input should be a valid integer"),
    ("InvalidInstanceCount 0", lambda s: task_a(s).update(InstanceCount=0), "InstanceCount: Input should be greater than or equal to 1"),
    ("MissingTimeout", lambda s: task_a(s).pop("Timeout"), "MissingTimeout: Timeout is mandatory"),
    ("InvalidTimeout", lambda s: task_a(s).update(Timeout="1h"), "Timeout: Input should be a valid integer"),
    ("InvalidMaxRetryCount", lambda s: task_a(s).update(MaxRetryCount=-1), "MaxRetryCount: Input should be greater than or equal to 0"),
    ("InvalidPackagePath folder", lambda s: cmd(s).update(PackagePath="oss://bucket/app/"),
     "InvalidPackagePath: Specified parameter PackagePath is not valid. OSS path must start with"),
    ("InvalidPackagePath scheme", lambda s: cmd(s).update(PackagePath="s3://bucket/app.tgz"), "InvalidPackagePath"),
    ("InvalidPackagePath length", lambda s: cmd(s).update(PackagePath="oss://bucket/" + "a" * 1020),
     "PackagePath: String should have at most 1024"),
    ("InvalidEnvVars size", lambda s: cmd(s).update(EnvVars={f"K{i}": "v" for i in range(65)}),
     "EnvVars: Dictionary should have at most 64"),
    ("InvalidEnvVars.{key} long", lambda s: cmd(s).update(EnvVars={"K" * 129: "v"}),
     "InvalidEnvVars.{key}: Specified parameter EnvVars.{key} is not valid. Its length must be in [1, 128]."),
    ("InvalidEnvVars.{key} empty", lambda s: cmd(s).update(EnvVars={"": "v"}), "InvalidEnvVars.{key}"),
    ("InvalidEnvVars.{key}.value long", lambda s: cmd(s).update(EnvVars={"K": "v" * 1025}),
     "EnvVars.K: String should have at most 1024"),
    ("InvalidEnvVars.{key}.value type", lambda s: cmd(s).update(EnvVars={"K": 1}), "EnvVars.K: Input should be a valid string"),
    ("InvalidStdoutRedirectPath", lambda s: task_a(s)["Parameters"].update(StdoutRedirectPath="oss://bucket/out.log"),
     "InvalidStdoutRedirectPath: Specified parameter StdoutRedirectPath is not valid"),
    ("InvalidStderrRedirectPath", lambda s: task_a(s)["Parameters"].update(StderrRedirectPath="/tmp/"),
     "InvalidStderrRedirectPath"),
    ("InvalidLocale", lambda s: task_a(s)["Parameters"].update(InputMappingConfig={"Locale": "KOI8-R"}),
     "InputMappingConfig.Locale: Input should be 'GBK'"),
    ("InvalidLock", lambda s: task_a(s)["Parameters"].update(InputMappingConfig={"Lock": "perhaps"}),
     "InputMappingConfig.Lock: Input should be a valid boolean"),
    ("InvalidInputMapping size", lambda s: task_a(s).update(InputMapping={f"oss://bucket/{i}/": f"/in/{i}/" for i in range(17)}),
     "InputMapping: Dictionary should have at most 16"),
    ("InvalidInputMapping.{key}", lambda s: task_a(s).update(InputMapping={"bucket/in/": "/in/"}),
     "InvalidInputMapping.{key}: Specified parameter InputMapping.{key} is not valid. OSS path"),
    ("InvalidInputMapping.{key}.value", lambda s: task_a(s).update(InputMapping={"oss://bucket/in/": "in/"}),
     "InvalidInputMapping.{key}.value: Specified parameter InputMapping.{key}.value is not valid. Local path"),
    ("InvalidInputMapping.{key}.value windows", lambda s: task_a(s).update(InputMapping={"oss://bucket/in/": "C:\\in"}),
     "InvalidInputMapping.{key}.value"),
    ("InvalidOutputMapping.{key}", lambda s: task_a(s).update(OutputMapping={"out": "oss://bucket/out/"}),
     "InvalidOutputMapping.{key}: Specified parameter OutputMapping.{key} is not valid. Local path"),
    ("InvalidOutputMapping.{key}.value", lambda s: task_a(s).update(OutputMapping={"/out": "http://x/"}),
     "InvalidOutputMapping.{key}.value"),
    ("InvalidOutputMapping.{key}.value length", lambda s: task_a(s).update(OutputMapping={"/out": "oss://b" + "c" * 1024}),
     "OutputMapping./out: String should have at most 1024"),
    ("InvalidLogMapping.{key}", lambda s: task_a(s).update(LogMapping={"app.log": "oss://bucket/logs/"}),
     "InvalidLogMapping.{key}: Specified parameter LogMapping.{key} is not valid"),
    ("InvalidLogMapping.{key}.value folder", lambda s: task_a(s).update(LogMapping={"/app.log": "oss://bucket/logs"}),
     "InvalidLogMapping.{key}.value: Specified parameter LogMapping.{key}.value is not valid"),
    ("InvalidLogMapping size", lambda s: task_a(s).update(LogMapping={f"/l{i}": "oss://bucket/l/" for i in range(17)}),
     "LogMapping: Dictionary should have at most 16"),
    ("InvalidClusterId digit", lambda s: task_a(s).update(ClusterId="0cls"), "InvalidClusterId: Specified parameter ClusterId"),
    ("InvalidClusterId length", lambda s: task_a(s).update(ClusterId="c" * 65), "ClusterId: String should have at most 64"),
    ("InvalidClusterId type", lambda s: task_a(s).update(ClusterId=12), "ClusterId: Input should be a valid string"),
    ("Mounts source", lambda s: task_a(s).update(Mounts={"Entries": [{"Source": "nfs://x", "Destination": "/m"}]}),
     "InvalidSource"),
    ("Mounts destination", lambda s: task_a(s).update(Mounts={"Entries": [{"Source": "oss://bucket/m/", "Destination": "m"}]}),
     "InvalidDestination"),
    ("OSS keys twice", lambda s: task_a(s).update(Mounts={"OSS": {"AccessKeyId": "id", "secretName": "s"}}),
     "give the OSS keys either inline or as secretName, not both"),
    ("AutoCluster images", lambda s: task_a(s).update(AutoCluster={"InstanceType": "t", "ImageId": "i", "ECSImageId": "e"}),
     "only one of ECSImageId and ImageId can be set"),
    ("AutoCluster InstanceType", lambda s: task_a(s).update(AutoCluster={"ImageId": "i"}),
     "AutoCluster.InstanceType: Field required"),
    ("two kinds", lambda s: task_a(s).update(sparkBatch={"file": "local:///a.py"}),
     "a task is exactly one of: a command task (Parameters), sparkBatch, flinkJarJob"),
    ("child task with command fields", lambda s: s["DAG"]["Tasks"].update(
        A={"sparkBatch": {"file": "local:///a.py"}, "InstanceCount": 2}),
     "a sparkBatch or flinkJarJob task takes only its embedded spec"),
    ("embedded spec rules", lambda s: s["DAG"]["Tasks"].update(A={"sparkBatch": {"file": "local:///a.jar"}}),
     "className is required unless file is a Python file"),
    ("Topic events", lambda s: s.update(Notification={"Topic": {"Events": ["OnJobExploded"]}}),
     "Notification.Topic.Events.0: Input should be 'OnJobWaiting'"),
]


@pytest.mark.parametrize(("code", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_each_error_code_is_rejected_with_its_message(code: str, mutate: Mutation, message: str) -> None:
    spec = valid()
    assert DagJobSpec.model_validate(spec)
    mutate(spec)
    assert message in error_of(spec)


def seed_body() -> dict[str, Any]:
    text = SEED.read_text()
    body: dict[str, Any] = json.loads(text[text.index("{"):text.index("Attribute description")])
    return body


@pytest.mark.skipif(not SEED.exists(), reason="the shared seed is not checked out next to the repo")
def test_the_seed_example_is_accepted_unchanged() -> None:
    spec = DagJobSpec.model_validate(seed_body())
    task = spec.DAG.Tasks["taskA"]
    assert spec.Name == "testJob" and task.kind == "command" and task.ClusterId and task.AutoCluster
    assert task.Parameters is not None and task.Parameters.Command.PackagePath == "oss://bucket/tests/worker.tar.gz"


def test_the_example_file_is_the_seed_body() -> None:
    import yaml

    doc = yaml.safe_load((REPO / "examples" / "dagjob-batchcompute.yaml").read_text())
    assert doc["kind"] == "DagJob" and doc["apiVersion"] == "lakejob.io/v1alpha1"
    if SEED.exists():
        assert doc["spec"] == seed_body()


@pytest.mark.parametrize("good", [
    lambda s: cmd(s).update(PackagePath=""),  # no package
    lambda s: cmd(s).update(EnvVars={"K" * 128: "v" * 1024}),
    lambda s: task_a(s).update(InputMapping={"oss://bucket/in/file.csv": "/data/file.csv", "oss://bucket/d/": "/d/"}),
    lambda s: task_a(s).update(ClusterId="-cls-1"),  # BatchCompute's rule allows a leading hyphen
    lambda s: s["DAG"]["Tasks"].update(A={"sparkBatch": {"file": "local:///a.py"}}),
    lambda s: s["DAG"]["Tasks"].update(A={"flinkJarJob": {"name": "f", "entrypoint": "local:///f.jar"}}),
    lambda s: s["DAG"].update(Tasks={f"t{i}": command() for i in range(16)}, Dependencies={}),
    lambda s: task_a(s).update(Mounts={"OSS": {"AccessKeyId": "", "secretName": "s"}}),  # empty inline keys are none
])
def test_edges_that_are_valid(good: Mutation) -> None:
    spec = valid()
    good(spec)
    parsed, error = parse_spec({"spec": spec})
    assert error is None and parsed is not None


# ----------------------------------------------------------------------------- the same rules in the CRD


def crd_spec() -> dict[str, Any]:
    (kind,) = [k for k in crds.KINDS if k.kind == "DagJob"]
    schema: dict[str, Any] = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _rules_in(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        return list(node.get("x-kubernetes-validations", [])) + [r for v in node.values() for r in _rules_in(v)]
    if isinstance(node, list):
        return [r for v in node for r in _rules_in(v)]
    return []


def _models() -> list[type[Any]]:
    import lakejob.models.dagjob as m

    return [v for v in vars(m).values() if isinstance(v, type) and getattr(v, "__module__", "") == m.__name__
            and hasattr(v, "__rules__")]


def test_every_python_rule_is_in_the_crd_with_the_same_message() -> None:
    in_crd = {(r["rule"], r["message"]) for r in _rules_in(crd_spec())}
    rules: list[Rule] = [r for model in _models() for r in model.__dict__["__rules__"]]
    assert len(rules) >= 20
    for rule in rules:
        assert (rule.cel, rule.message) in in_crd, rule.message


def test_crd_names_columns_and_mutability() -> None:
    (kind,) = [k for k in crds.KINDS if k.kind == "DagJob"]
    crd = crds.crd(kind)
    assert crd["spec"]["names"]["shortNames"] == ["dag"] and crd["spec"]["names"]["categories"] == ["lakejob"]
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns[:3]] == ["State", "Tasks", "Age"]
    assert columns[1]["jsonPath"] == ".status.TaskProgress"
    props = crd_spec()["properties"]
    for name in ("suspend", "Priority"):
        assert "self == oldSelf" not in [v["rule"] for v in props[name].get("x-kubernetes-validations", [])]
    for name in ("DAG", "Name", "JobFailOnInstanceFail", "Notification", "AutoRelease"):
        assert "self == oldSelf" in [v["rule"] for v in props[name]["x-kubernetes-validations"]], name
    tasks = props["DAG"]["properties"]["Tasks"]
    assert (tasks["minProperties"], tasks["maxProperties"]) == (1, 16)
    assert props["Priority"]["minimum"] == 0 and props["Priority"]["maximum"] == 1000


def test_every_string_list_and_map_under_spec_is_bounded() -> None:
    """The apiserver estimates the CEL cost from these bounds (16 embedded specs would blow it otherwise)."""
    unbounded = []

    def walk(node: dict[str, Any], path: str) -> None:
        t = node.get("type")
        if t == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
        if t == "array":
            if "maxItems" not in node:
                unbounded.append(path)
            walk(node["items"], path + "[]")
        if t == "object":
            for k, v in (node.get("properties") or {}).items():
                walk(v, f"{path}.{k}")
            if isinstance(node.get("additionalProperties"), dict):
                if "maxProperties" not in node:
                    unbounded.append(path)
                walk(node["additionalProperties"], path + "{}")

    walk(crd_spec(), "spec")
    assert unbounded == []


def test_task_model_kind_and_child_spec() -> None:
    t = Task.model_validate({"sparkBatch": {"file": "local:///a.py"}})
    assert t.kind == "sparkBatch" and t.child_spec() is t.sparkBatch
    c = Task.model_validate(copy.deepcopy(command()))
    assert c.kind == "command" and c.child_spec() is None
