"""Real Spark (pyspark's own spark-submit, a real JVM) runs what the operator renders.

1. The rendered spark.properties and driver arguments run a PySpark job with master local[2].
2. The rendered driver command, run on this host in client mode against the local apiserver,
   makes real Spark create executor pods from our pod template and confs; the SparkBatch status
   counts them. KWOK executors never register with the driver, so the job never finishes: the
   test stops the driver once the executors exist.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakejob import sizing
from lakejob.models.sparkbatch import SparkBatchSpec
from lakejob.render import spark as render
from lakejob.settings import Settings
from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_sparkbatch import status, wait_state

DATA = Path(__file__).parent / "data"
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
pytestmark = [pytest.mark.e2e, pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="real Spark needs a JVM (java)")]


def read_properties(text: str) -> dict[str, str]:
    """What java.util.Properties reads back, for the escapes our renderer emits."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        unescape = lambda s: s.encode().decode("unicode_escape")  # noqa: E731
        out[unescape(key)] = unescape(value)
    return out


def write_properties(path: Path, props: dict[str, str]) -> None:
    path.write_text(render.properties_text(props))


def spark_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "SPARK_LOCAL_DIRS": str(tmp), "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}


# The driver's env var the kubelet expands in its arguments (`$(VAR)`): the pod's IP there, loopback here.
POD_ENV = {"SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1"}


def entrypoint(driver_args: list[str], properties: Path) -> list[str]:
    """What the kubelet and the Spark image's entrypoint do with `driver …`: the `$(VAR)` references
    expanded from the pod's env, then spark-submit in client mode."""
    assert driver_args[:3] == ["driver", "--properties-file", render.PROPERTIES_FILE]
    args = [re.sub(r"\$\((\w+)\)", lambda m: POD_ENV.get(m[1], m[0]), a) for a in driver_args[3:]]
    assert not any("$(" in a for a in args), args
    return [str(SPARK_SUBMIT), "--deploy-mode", "client", "--properties-file", str(properties), *args]


def test_rendered_properties_and_args_run_pyspark_pi_locally(tmp_path: Path) -> None:
    spec = SparkBatchSpec.model_validate({"file": str(DATA / "pi.py"), "args": ["4"], "driverMemory": "1G",
                                          "executorMemory": "1G", "conf": {"spark.ui.enabled": "false"}})
    owner = render.Owner("lakejob.io/v1alpha1", "SparkBatch", "pi-local", "default", "0f6c-uid")
    sz = sizing.resolve_spark(sc_type=None, driver_cores=None, driver_memory="1G", executor_cores=None,
                              executor_memory="1G", num_executors=None, conf={}, python=True)
    text = render.properties_text(render.properties(spec, owner, sz, 1, Settings()))
    props = read_properties(text)
    # The only changes: run locally instead of on Kubernetes, on this host's loopback and disk.
    props.update({"spark.master": "local[2]", "spark.driver.host": "127.0.0.1", "spark.local.dir": str(tmp_path)})
    write_properties(tmp_path / "spark.properties", props)
    pod = render.driver_pod(spec, owner, sz, 1, Settings(), "sa")
    cmd = entrypoint(pod["spec"]["containers"][0]["args"], tmp_path / "spark.properties")
    r = subprocess.run(cmd, capture_output=True, text=True, env=spark_env(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pi is roughly 3.1" in r.stdout
    assert "app id local-" in r.stdout  # (the local backend names its own app; on Kubernetes ours is used)


def test_real_spark_creates_executors_from_our_template(
        kubectl: Kubectl, kubeconfig: str, namespace: str, operator: Operator, tmp_path: Path) -> None:
    manifest = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": "real"},
                "spec": {"file": str(DATA / "wait_for_executors.py"), "numExecutors": 2, "executorCores": 1,
                         "executorMemory": "512m", "driverMemory": "1G",
                         "conf": {"spark.ui.enabled": "false"},
                         "executor": {"labels": {"team": "analytics"}}}}
    kubectl.apply(manifest, namespace)
    st = wait_state(kubectl, "real", namespace, "running")
    driver = kubectl.get("pod", "real-driver-1", namespace)
    assert driver is not None
    files = driver["metadata"]["annotations"]  # the driver's conf files, projected into its conf dir
    props = read_properties(files["conf.lakejob.io/spark.properties"])
    (tmp_path / "executor-pod-template.yaml").write_text(files["conf.lakejob.io/executor-pod-template.yaml"])
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    user, cluster = cfg["users"][0]["user"], cfg["clusters"][0]["cluster"]
    # Client mode from this host instead of in-cluster: the apiserver's address and our admin
    # credentials, and a driver bound to loopback. Everything else is the operator's rendering.
    props.update({
        "spark.master": f"k8s://{cluster['server']}",
        "spark.kubernetes.submitInDriver": "false",
        "spark.kubernetes.authenticate.caCertFile": cluster["certificate-authority"],
        "spark.kubernetes.authenticate.clientCertFile": user["client-certificate"],
        "spark.kubernetes.authenticate.clientKeyFile": user["client-key"],
        "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
        "spark.kubernetes.executor.podTemplateFile": str(tmp_path / "executor-pod-template.yaml"),
        "spark.local.dir": str(tmp_path),
    })
    write_properties(tmp_path / "spark.properties", props)
    cmd = entrypoint(driver["spec"]["containers"][0]["args"], tmp_path / "spark.properties")
    log = open(tmp_path / "driver.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=spark_env(tmp_path),
                            start_new_session=True)
    try:
        executors = kubectl.wait_for(
            lambda: (p := kubectl.list("pods", namespace, "spark-role=executor")) and len(p) >= 2 and p,
            "real Spark to create 2 executor pods", timeout=180, namespace=namespace)
        assert len(executors) == 2
        for pod in executors:
            labels = pod["metadata"]["labels"]
            assert labels["lakejob.io/name"] == "real" and labels["lakejob.io/role"] == "executor"
            assert labels["team"] == "analytics" and labels["spark-app-selector"] == st["appId"]
            owner = pod["metadata"]["ownerReferences"][0]
            assert owner["kind"] == "Pod" and owner["name"] == "real-driver-1" and owner["uid"] == driver["metadata"]["uid"]
            container = pod["spec"]["containers"][0]
            assert container["resources"]["requests"]["cpu"] == "1"
            assert container["resources"]["requests"]["memory"] == "896Mi"  # 512m + the 384m floor
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
            assert pod["metadata"]["name"].startswith("real-a1-exec-")
        kubectl.wait_for(lambda: (status(kubectl, "real", namespace).get("executors") or {}).get("running") == 2,
                         "the SparkBatch status to count 2 running executors", namespace=namespace,
                         show=("sparkbatch", "real"))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
