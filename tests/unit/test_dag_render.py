"""render.dag: the Indexed Job of a command task, child resources, the OSS Secret, names, priority."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lakejob.models.dagjob import DagJobSpec
from lakejob.render import dag
from lakejob.render.common import Owner
from lakejob.settings import Settings

OWNER = Owner("lakejob.io/v1alpha1", "DagJob", "etl", "ns", "uid-9")
SETTINGS = Settings(dag_images={"img-ubuntu": "ubuntu:24.04"}, fetcher_image="registry.example/lakejob/operator:1.2")


def command(**extra: Any) -> dict[str, Any]:
    return {"InstanceCount": 3, "MaxRetryCount": 2, "Timeout": 900, "Parameters": {
        "Command": {"CommandLine": "python 'my worker.py' --n 3", "PackagePath": "oss://bucket/pkg/w.tar.gz",
                    "EnvVars": {"B": "2", "A": "1"}},
        "StdoutRedirectPath": "oss://bucket/o/", "StderrRedirectPath": "oss://bucket/o/"}, **extra}


def spec(task: dict[str, Any], fail_fast: bool = True, priority: int = 600) -> DagJobSpec:
    return DagJobSpec.model_validate({"Name": "etl", "Priority": priority, "Type": "DAG",
                                      "JobFailOnInstanceFail": fail_fast, "DAG": {"Tasks": {"Work": task}}})


def job(task: dict[str, Any], settings: Settings = SETTINGS, **kw: Any) -> dict[str, Any]:
    return dag.task_job(spec(task, **kw), "Work", OWNER, settings, 1)


def test_indexed_job_maps_batchcompute_fields() -> None:
    j = job(command())
    s = j["spec"]
    assert (s["completionMode"], s["completions"], s["parallelism"]) == ("Indexed", 3, 3)
    assert s["backoffLimitPerIndex"] == 2 and s["maxFailedIndexes"] == 0 and s["suspend"] is False
    pod = s["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["activeDeadlineSeconds"] == 900
    main = pod["containers"][0]
    # The command's words, unchanged, after the wrapper sending its output to the upload sidecar.
    assert main["command"] == ["/bin/sh", "-c", dag.REDIRECT, "python", "my worker.py", "--n", "3"]
    assert main["workingDir"] == dag.WORKDIR
    env = [e["name"] for e in main["env"]]
    assert env[:2] == ["A", "B"] and "BATCH_COMPUTE_DAG_INSTANCE_ID" in env
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000


def test_without_fail_fast_every_index_runs_out_its_retries() -> None:
    assert "maxFailedIndexes" not in job(command(), fail_fast=False)["spec"]


def test_metadata_owner_labels_and_name() -> None:
    j = job(command())
    meta = j["metadata"]
    assert meta["name"] == dag.child_name("etl", "Work", 1) and len(meta["name"]) <= 52
    (ref,) = meta["ownerReferences"]
    assert ref == {"apiVersion": "lakejob.io/v1alpha1", "kind": "DagJob", "name": "etl", "uid": "uid-9",
                   "controller": True, "blockOwnerDeletion": True}
    assert meta["labels"]["lakejob.io/kind"] == "DagJob" and meta["labels"]["lakejob.io/name"] == "etl"
    assert meta["annotations"] == {"lakejob.io/task": "Work", "lakejob.io/run": "1"}
    assert j["spec"]["template"]["metadata"]["labels"]["lakejob.io/kind"] == "DagJob"


def test_child_names_are_deterministic_distinct_and_short() -> None:
    names = {dag.child_name("etl", t, r) for t in ("taskA", "taska", "task-a") for r in (1, 2)}
    assert len(names) == 6
    assert dag.child_name("etl", "task-a", 1).startswith("etl-task-a-r1-")
    assert dag.child_name("etl", "task-a", 2).startswith("etl-task-a-r2-")
    long = dag.child_name("x" * 253, "t" * 64, 99)
    assert len(long) <= 52 and long == dag.child_name("x" * 253, "t" * 64, 99)


def test_fetcher_init_container_gets_package_inputs_and_mounts() -> None:
    j = job(command(InputMapping={"oss://bucket/in/": "/data/in/", "oss://bucket/one.csv": "/data/one.csv"},
                    OutputMapping={"/data/out": "oss://bucket/out/"},
                    LogMapping={"/var/log/app/app.log": "oss://bucket/logs/"},
                    Mounts={"Entries": [{"Source": "oss://bucket/m/", "Destination": "/mnt/m"}]}))
    pod = j["spec"]["template"]["spec"]
    fetch, upload = pod["initContainers"]
    assert fetch["image"] == "registry.example/lakejob/operator:1.2"
    assert fetch["command"] == ["lakejob-oss", "fetch"] and "restartPolicy" not in fetch
    assert fetch["args"] == ["--package", "oss://bucket/pkg/w.tar.gz", "--into", dag.WORKDIR,
                             "--map", "oss://bucket/in/=/data/in/", "--map", "oss://bucket/one.csv=/data/one.csv",
                             "--map", "oss://bucket/m/=/mnt/m"]
    mounts = {m["mountPath"] for m in fetch["volumeMounts"]}
    assert mounts == {dag.WORKDIR, "/data/in", "/data", "/data/out", "/var/log/app", "/mnt/m"}
    # The command and the sidecar see the same directories, plus the one for stdout/stderr.
    assert pod["containers"][0]["volumeMounts"] == upload["volumeMounts"] == [
        *fetch["volumeMounts"], {"name": "out", "mountPath": dag.OUT_DIR}]
    assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in upload["volumeMounts"]}
    assert all("emptyDir" in v for v in pod["volumes"])


def test_upload_sidecar_gets_redirect_paths_outputs_and_logs() -> None:
    j = job(command(OutputMapping={"/data/out": "oss://bucket/out/", "/data/a.csv": "oss://bucket/a.csv"},
                    LogMapping={"/var/log/app/app.log": "oss://bucket/logs/"}))
    pod = j["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["initContainers"]]
    assert names == ["fetch", "upload"]  # in this order: the sidecar starts once the fetch has finished
    upload = pod["initContainers"][1]
    assert upload["restartPolicy"] == "Always"  # a native sidecar
    # ... that the command waits for until it handles SIGTERM (the file lakejob-oss upload writes).
    probe = upload["startupProbe"]
    assert probe["exec"]["command"] == ["test", "-e", "/lakejob/out/.upload-ready"]
    # ... patiently: a failed startup probe would restart the sidecar on a busy node.
    assert probe["timeoutSeconds"] >= 10 and probe["periodSeconds"] * probe["failureThreshold"] >= 600
    assert upload["image"] == SETTINGS.fetcher_image and upload["command"] == ["lakejob-oss", "upload"]
    assert upload["args"] == ["--job-id", "uid-9", "--task", "Work",
                              "--stdout-to", "oss://bucket/o/", "--stderr-to", "oss://bucket/o/",
                              "--output", "/data/a.csv=oss://bucket/a.csv", "--output", "/data/out=oss://bucket/out/",
                              "--log", "/var/log/app/app.log=oss://bucket/logs/", "--out-dir", dag.OUT_DIR]
    # The instance is the pod's completion index, as the command sees it.
    env = {e["name"]: e for e in upload["env"]}
    main_env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["BATCH_COMPUTE_DAG_INSTANCE_ID"] == main_env["BATCH_COMPUTE_DAG_INSTANCE_ID"]
    # As the command's, but with a read-only root file system (lakejob-oss writes only to the shared volumes).
    assert upload["securityContext"] == {**pod["containers"][0]["securityContext"], "readOnlyRootFilesystem": True}
    assert pod["terminationGracePeriodSeconds"] == 120 == Settings().dag_upload_grace_s
    grace = job(command(), settings=Settings(dag_upload_grace_s=600))["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] == 600


def test_the_redirect_wrapper_keeps_words_status_and_streams(tmp_path: Path) -> None:
    """Run the wrapper as the pod would (its directory moved here): the words reach the program
    unparsed, stdout and stderr land in their files, the exit status is the program's."""
    script = dag.REDIRECT.replace(dag.OUT_DIR, str(tmp_path))
    program = "import sys; print(sys.argv[1:]); print('to stderr', file=sys.stderr); sys.exit(3)"
    r = subprocess.run(["/bin/sh", "-c", script, sys.executable, "-c", program, "a b", "$HOME", "*"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert r.returncode == 3 and r.stdout == "" and r.stderr == ""
    assert (tmp_path / "stdout").read_text() == "['a b', '$HOME', '*']\n"
    assert (tmp_path / "stderr").read_text() == "to stderr\n"


@pytest.mark.parametrize(("handler", "status"), [
    ("", 128 + signal.SIGTERM),  # the default action ends it: the shell's status says which signal
    ("signal.signal(signal.SIGTERM, lambda *_: sys.exit(7)); ", 7),  # its own handler's status
])
def test_the_redirect_wrapper_passes_sigterm_to_the_command(tmp_path: Path, handler: str, status: int) -> None:
    """The wrapper stays (as PID 1 in the pod: without a handler there, SIGTERM would be ignored)
    and passes SIGTERM on; the command stops and the wrapper ends with the command's status."""
    script = dag.REDIRECT.replace(dag.OUT_DIR, str(tmp_path))
    program = f"import os, signal, sys, time; {handler}print(os.getpid(), flush=True); time.sleep(60)"
    wrapper = subprocess.Popen(["/bin/sh", "-c", script, sys.executable, "-c", program], cwd=tmp_path)
    try:
        out = tmp_path / "stdout"
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().endswith("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        command = int(out.read_text())
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=10) == status
        with pytest.raises(ProcessLookupError):
            os.kill(command, 0)  # gone, not orphaned
    finally:
        wrapper.kill()
        wrapper.wait()


def test_nothing_to_upload_means_no_sidecar_and_the_bare_command() -> None:
    s = spec(command())
    task = s.DAG.Tasks["Work"]
    assert task.Parameters is not None
    # Admission requires both redirect paths; rendering still copes without them.
    params = task.Parameters.model_copy(update={"StdoutRedirectPath": "", "StderrRedirectPath": ""})
    s.DAG.Tasks["Work"] = task.model_copy(update={"Parameters": params})
    pod = dag.task_job(s, "Work", OWNER, SETTINGS, 1)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch"]
    assert pod["containers"][0]["command"] == ["python", "my worker.py", "--n", "3"]
    assert "terminationGracePeriodSeconds" not in pod and "out" not in {v["name"] for v in pod["volumes"]}


def test_oss_endpoint_settings_reach_both_containers() -> None:
    settings = Settings(oss_endpoint="https://oss-cn-hangzhou.aliyuncs.com", oss_addressing_style="path",
                        oss_region="oss-cn-hangzhou")
    task = command(Mounts={"OSS": {"secretName": "mine"}})
    pod = job(task, settings=settings)["spec"]["template"]["spec"]
    for container in pod["initContainers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["OSS_ENDPOINT"] == "https://oss-cn-hangzhou.aliyuncs.com"
        assert env["OSS_ADDRESSING_STYLE"] == "path" and env["OSS_REGION"] == "oss-cn-hangzhou"
        assert {"OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"} <= set(env)
    # No endpoint configured: none set, so lakejob-oss fails saying OSS_ENDPOINT is missing.
    env = {e["name"]: e.get("value") for e in job(task)["spec"]["template"]["spec"]["initContainers"][0]["env"]}
    assert "OSS_ENDPOINT" not in env and "OSS_REGION" not in env and env["OSS_ADDRESSING_STYLE"] == "virtual"


def test_oss_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_OSS_ENDPOINT", "http://127.0.0.1:9000")
    monkeypatch.setenv("LAKEJOB_OSS_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("LAKEJOB_DAG_UPLOAD_GRACE_SECONDS", "300")
    s = Settings.from_env()
    assert (s.oss_endpoint, s.oss_addressing_style, s.dag_upload_grace_s) == ("http://127.0.0.1:9000", "path", 300)
    monkeypatch.setenv("LAKEJOB_OSS_ADDRESSING_STYLE", "vhost")
    with pytest.raises(ValueError, match="LAKEJOB_OSS_ADDRESSING_STYLE: must be one of 'virtual', 'path' or 'auto', got vhost"):
        Settings.from_env()


def test_no_package_and_no_inputs_means_no_fetch() -> None:
    task = command()
    task["Parameters"]["Command"]["PackagePath"] = ""
    assert [c["name"] for c in job(task)["spec"]["template"]["spec"]["initContainers"]] == ["upload"]


def test_inline_keys_live_only_in_the_owned_secret() -> None:
    task = command(Mounts={"OSS": {"AccessKeyId": "AKID", "AccessKeySecret": "SEKRIT", "AccessSecurityToken": ""}})
    s = spec(task)
    secret = dag.oss_secret(s, OWNER)
    assert secret is not None and secret["metadata"]["name"] == "etl-oss"
    assert secret["stringData"] == {"Work.AccessKeyId": "AKID", "Work.AccessKeySecret": "SEKRIT"}
    assert secret["metadata"]["ownerReferences"][0]["controller"] is True
    j = dag.task_job(s, "Work", OWNER, SETTINGS, 1)
    assert "SEKRIT" not in json.dumps(j) and "AKID" not in json.dumps(j)
    for container in j["spec"]["template"]["spec"]["initContainers"]:  # fetch and upload
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"].startswith("OSS_AC")}
        assert env == {"OSS_ACCESS_KEY_ID": {"name": "etl-oss", "key": "Work.AccessKeyId"},
                       "OSS_ACCESS_KEY_SECRET": {"name": "etl-oss", "key": "Work.AccessKeySecret"}}


def test_a_secret_reference_is_used_as_is_and_makes_no_secret() -> None:
    s = spec(command(AutoCluster={"InstanceType": "t", "Configs": {"Mounts": {"OSS": {"secretName": "mine"}}}}))
    assert dag.oss_secret(s, OWNER) is None
    env = dag.task_job(s, "Work", OWNER, SETTINGS, 1)["spec"]["template"]["spec"]["initContainers"][0]["env"]
    assert [e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e] == [
        {"name": "mine", "key": k, "optional": True} for k in dag.OSS_KEYS]


def test_empty_keys_as_in_the_seed_make_no_secret_and_no_env() -> None:
    s = spec(command(Mounts={"OSS": {"AccessKeyId": "", "AccessKeySecret": "", "AccessSecurityToken": ""}}))
    assert dag.oss_secret(s, OWNER) is None
    assert dag.task_job(s, "Work", OWNER, SETTINGS, 1)["spec"]["template"]["spec"]["initContainers"][0]["env"] == [
        {"name": "OSS_ADDRESSING_STYLE", "value": "virtual"}]


def test_a_task_without_keys_gets_the_operators_store_secret_and_its_own_keys_win() -> None:
    store = Settings(store_secret="lakejob-store")
    env = job(command(), settings=store)["spec"]["template"]["spec"]["initContainers"][0]["env"]
    assert [e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e] == [
        {"name": "lakejob-store", "key": k, "optional": True}
        for k in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")]
    env = job(command(Mounts={"OSS": {"secretName": "mine"}}), settings=store)["spec"]["template"]["spec"][
        "initContainers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e} == {"mine"}


@pytest.mark.parametrize(("extra", "settings", "image", "selector"), [
    ({}, SETTINGS, SETTINGS.dag_default_image, None),
    ({"AutoCluster": {"ImageId": "img-ubuntu", "InstanceType": "bcs.a2.large"}}, SETTINGS, "ubuntu:24.04", None),
    ({"AutoCluster": {"ImageId": "img-other", "InstanceType": "bcs.a2.large"}}, SETTINGS, SETTINGS.dag_default_image, None),
    ({"AutoCluster": {"ImageId": "img-ubuntu", "InstanceType": "bcs.a2.large"}},
     Settings(dag_instance_type_label="node.kubernetes.io/instance-type"), Settings().dag_default_image,
     {"node.kubernetes.io/instance-type": "bcs.a2.large"}),
    # ClusterId takes effect, AutoCluster is ignored
    ({"ClusterId": "cls-1", "AutoCluster": {"ImageId": "img-ubuntu", "InstanceType": "x"}}, SETTINGS,
     SETTINGS.dag_default_image, None),
    ({"ClusterId": "cls-1", "AutoCluster": {"ImageId": "img-ubuntu", "InstanceType": "x"}},
     Settings(dag_cluster_label="lakejob.io/cluster", dag_instance_type_label="it"), Settings().dag_default_image,
     {"lakejob.io/cluster": "cls-1"}),
])
def test_cluster_id_or_auto_cluster_pick_image_and_nodes(extra: dict[str, Any], settings: Settings, image: str,
                                                         selector: dict[str, str] | None) -> None:
    pod = job(command(**extra), settings=settings)["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == image
    assert pod.get("nodeSelector") == selector


def test_the_operators_workload_placement_goes_under_the_tasks_own() -> None:
    toleration = {"key": "pool", "operator": "Exists", "effect": "NoSchedule"}
    placed = Settings(workload_node_selector={"pool": "batch", "lakejob.io/cluster": "any"},
                      workload_tolerations=(toleration,), dag_cluster_label="lakejob.io/cluster")
    pod = job(command(), settings=placed)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "batch", "lakejob.io/cluster": "any"} and pod["tolerations"] == [toleration]
    # The task's ClusterId wins over the operator's key; its pod block's keys and tolerations too.
    pod = job(command(ClusterId="cls-1"), settings=placed)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "batch", "lakejob.io/cluster": "cls-1"}
    own = {"key": "gpu", "operator": "Exists"}
    pod = job(command(pod={"nodeSelector": {"pool": "gpu"}, "tolerations": [own]}),
              settings=placed)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu", "lakejob.io/cluster": "any"} and pod["tolerations"] == [own, toleration]


@pytest.mark.parametrize(("priority", "name"), [
    (0, "lakejob-priority-low"), (249, "lakejob-priority-low"), (250, "lakejob-priority-medium"),
    (499, "lakejob-priority-medium"), (500, "lakejob-priority-high"), (749, "lakejob-priority-high"),
    (750, "lakejob-priority-urgent"), (1000, "lakejob-priority-urgent"),
])
def test_priority_maps_to_the_documented_classes(priority: int, name: str) -> None:
    assert dag.priority_class(priority, Settings()) == name
    assert job(command(), priority=priority)["spec"]["template"]["spec"]["priorityClassName"] == name


def test_no_classes_configured_means_no_priority_class() -> None:
    assert dag.priority_class(500, Settings(dag_priority_classes=())) is None
    assert "priorityClassName" not in job(command(), settings=Settings(dag_priority_classes=()))["spec"]["template"]["spec"]


def test_pod_block_customises_and_can_choose_its_own_class() -> None:
    pod = job(command(pod={"labels": {"team": "a"}, "priorityClassName": "mine", "tolerations": [
        {"key": "spot", "operator": "Exists"}]}))["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "a" and pod["metadata"]["labels"]["lakejob.io/kind"] == "DagJob"
    assert pod["spec"]["priorityClassName"] == "mine" and pod["spec"]["tolerations"][0]["key"] == "spot"


def test_the_users_volume_mounts_reach_fetch_and_upload_too() -> None:
    pod = job(command(OutputMapping={"/results/": "oss://bucket/out/"}, pod={
        "volumes": [{"name": "scratch", "persistentVolumeClaim": {"claimName": "pvc"}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}))["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"], container["name"]
        assert len({m["mountPath"] for m in container["volumeMounts"]}) == len(container["volumeMounts"])


def test_child_resources_carry_the_embedded_spec_the_owner_and_the_priority() -> None:
    s = DagJobSpec.model_validate({"Name": "etl", "Priority": 800, "Type": "DAG", "JobFailOnInstanceFail": True,
                                   "DAG": {"Tasks": {
                                       "S": {"sparkBatch": {"file": "local:///a.py", "driver": {"priorityClassName": "x"}}},
                                       "F": {"flinkJarJob": {"name": "f", "entrypoint": "local:///f.jar"}}}}})
    sb = dag.child_resource(s, "S", OWNER, SETTINGS, 2)
    assert sb["kind"] == "SparkBatch" and sb["metadata"]["name"] == "etl-s-r2-" + sb["metadata"]["name"][-10:]
    assert sb["spec"]["file"] == "local:///a.py"
    assert sb["spec"]["driver"]["priorityClassName"] == "x"  # the task's own choice wins
    assert sb["spec"]["executor"]["priorityClassName"] == "lakejob-priority-urgent"
    assert sb["metadata"]["ownerReferences"][0]["controller"] is True
    assert sb["metadata"]["annotations"] == {"lakejob.io/task": "S", "lakejob.io/run": "2"}
    fj = dag.child_resource(s, "F", OWNER, SETTINGS, 1)
    assert fj["kind"] == "FlinkJarJob" and fj["spec"]["jobManager"]["priorityClassName"] == "lakejob-priority-urgent"
    assert fj["spec"]["taskManager"]["priorityClassName"] == "lakejob-priority-urgent"
