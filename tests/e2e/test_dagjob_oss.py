"""A DagJob command task's pod, as the operator renders it on the real control plane, run here for
real against a real S3 API server on loopback (moto's): the `fetch` init container, the command
wrapped by /bin/sh, and the `upload` native sidecar, each with the env a kubelet would give it
(Secret keys resolved from the API, the completion index from the pod annotation).

KWOK runs no containers, so — like the real-Flink test — the test plays the kubelet: the one change
for a single host is that the pod's emptyDir mount points under /lakejob/ move under a temporary
directory. What is checked: the package and InputMapping arrive, the command's stdout/stderr reach
the sidecar, and on SIGTERM every upload lands under BatchCompute's names; the inline keys reach
the containers only through the operator's Secret.
"""
from __future__ import annotations

import base64
import io
import signal
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_dagjob import dagjob, jobs

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
pytestmark = pytest.mark.e2e

TOOL_DIR = Path(sys.executable).parent
KEY_ID, KEY_SECRET = "AKID-E2E-NOT-PRINTED", "SECRET-E2E-NOT-PRINTED"
WORKER = b"""\
import os, sys
print("hello from instance", os.environ["BATCH_COMPUTE_DAG_INSTANCE_ID"], open("in/data.txt").read().strip())
print("a warning", file=sys.stderr)
out = os.environ["OUT"]
open(os.path.join(out, "result.csv"), "w").write("a,b\\n1,2\\n")
open(os.environ["LOG"], "w").write("app log line\\n")
"""


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def package() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("worker.py")
        info.size = len(WORKER)
        tar.addfile(info, io.BytesIO(WORKER))
    return buf.getvalue()


def resolve_env(container: dict[str, Any], kubectl: Kubectl, ns: str, index: str) -> dict[str, str]:
    """What the kubelet makes of a container's env: values, Secret keys, the index annotation."""
    env = {"PATH": f"{TOOL_DIR}:/usr/bin:/bin"}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in (ref := var["valueFrom"]):
            secret = kubectl.get("secret", ref["secretKeyRef"]["name"], ns)
            assert secret is not None, f"the Secret {ref['secretKeyRef']['name']} the pod reads"
            env[var["name"]] = base64.b64decode(secret["data"][ref["secretKeyRef"]["key"]]).decode()
        elif "fieldRef" in ref:
            env[var["name"]] = index
    return env


def test_the_rendered_pod_fetches_runs_and_uploads_under_batchcompute_names(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path, endpoint: str, crds_installed: None) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=KEY_ID, aws_secret_access_key=KEY_SECRET)
    bucket = f"lakejob-e2e-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="pkg/worker.tar.gz", Body=package())
    s3.put_object(Bucket=bucket, Key="inputs/data.txt", Body=b"input-data\n")

    local = tmp_path / "host"  # where this "node" keeps the pod's local paths
    out_dir, log_file = str(local / "results") + "/", str(local / "logs" / "app.log")
    ns = f"solo-oss-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", ns)
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={
        "LAKEJOB_OSS_ENDPOINT": endpoint, "LAKEJOB_OSS_ADDRESSING_STYLE": "path"})
    try:
        op.start()
        task = {
            "InstanceCount": 1, "MaxRetryCount": 0, "Timeout": 600,
            "Parameters": {"Command": {"CommandLine": "python3 worker.py",
                                       "PackagePath": f"oss://{bucket}/pkg/worker.tar.gz",
                                       "EnvVars": {"OUT": out_dir, "LOG": log_file}},
                           "StdoutRedirectPath": f"oss://{bucket}/logs/",
                           "StderrRedirectPath": f"oss://{bucket}/logs/"},
            "InputMapping": {f"oss://{bucket}/inputs/": "/lakejob/work/in/"},
            "OutputMapping": {out_dir: f"oss://{bucket}/results/"},
            "LogMapping": {log_file: f"oss://{bucket}/applogs/"},
            "Mounts": {"OSS": {"AccessKeyId": KEY_ID, "AccessKeySecret": KEY_SECRET}},
            "pod": {"annotations": {"sim.lakejob.io/delay": "600s"}},
        }
        kubectl.apply(dagjob("ossjob", {"Echo": task}), ns)
        job = kubectl.wait_for(lambda: jobs(kubectl, ns).get("Echo"), "the task's Job", namespace=ns,
                               show=("dagjob", "ossjob"))
        uid = kubectl.get("dagjob", "ossjob", ns)["metadata"]["uid"]
        pod = job["spec"]["template"]["spec"]
        assert KEY_ID not in str(job) and KEY_SECRET not in str(job)
        init = {c["name"]: c for c in pod["initContainers"]}
        fetch, upload, (main,) = init["fetch"], init["upload"], pod["containers"]
        assert [c["name"] for c in pod["initContainers"]] == ["fetch", "upload"]
        assert upload["restartPolicy"] == "Always"  # a native sidecar

        def here(words: list[str]) -> list[str]:
            return [w.replace("/lakejob/", f"{local}/lakejob/") for w in words]

        for mount in main["volumeMounts"]:
            Path(here([mount["mountPath"]])[0]).mkdir(parents=True, exist_ok=True)

        # 1. fetch, 2. the upload sidecar starts and passes its startupProbe, 3. the command, 4. SIGTERM
        # to the sidecar at once.
        r = subprocess.run(here(fetch["command"] + fetch["args"]), env=resolve_env(fetch, kubectl, ns, "0"),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        work = Path(here([main["workingDir"]])[0])
        assert (work / "worker.py").exists() and (work / "in" / "data.txt").read_text() == "input-data\n"

        sidecar = subprocess.Popen(here(upload["command"] + upload["args"]), env=resolve_env(upload, kubectl, ns, "0"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The kubelet starts the command once the sidecar's startupProbe passes; so does this test.
        probe = here(upload["startupProbe"]["exec"]["command"])
        kubectl.wait_for(lambda: sidecar.poll() is None and subprocess.run(probe).returncode == 0,
                         "the upload sidecar's startupProbe", namespace=ns)
        env = resolve_env(main, kubectl, ns, "0")
        assert env["BATCH_COMPUTE_DAG_JOB_ID"] == uid and env["BATCH_COMPUTE_DAG_TASK_ID"] == "Echo"
        done = subprocess.run(here(main["command"]), cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "" and done.stderr == ""  # the command's output goes to the sidecar
        sidecar.send_signal(signal.SIGTERM)  # the kubelet's, once the main container has exited
        stdout, stderr = sidecar.communicate(timeout=60)
        assert sidecar.returncode == 0, stderr
        assert "hello from instance 0 input-data" in stdout  # `kubectl logs -c upload` shows it
        for text in (stdout, stderr, r.stdout, r.stderr, op.output()):
            assert KEY_ID not in text and KEY_SECRET not in text

        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert {f"logs/stdout.{uid}.Echo.0", f"logs/stderr.{uid}.Echo.0", "results/result.csv",
                f"applogs/app.log.{uid}.Echo.0"} <= keys, keys
        body = s3.get_object(Bucket=bucket, Key=f"logs/stdout.{uid}.Echo.0")["Body"].read().decode()
        assert body == "hello from instance 0 input-data\n"
        assert s3.get_object(Bucket=bucket, Key=f"logs/stderr.{uid}.Echo.0")["Body"].read() == b"a warning\n"
        assert s3.get_object(Bucket=bucket, Key="results/result.csv")["Body"].read() == b"a,b\n1,2\n"
    finally:
        op.stop()
        kubectl.run("delete", "namespace", ns, "--wait=false")
