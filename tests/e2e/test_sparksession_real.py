"""Real Spark Connect: the rendered session driver runs as a real server, a real client keeps it busy,
and the operator's REST poller follows it: idle → busy → idle, then the idle timeout.

The server is the rendered driver command (pyspark's own spark-submit, `--class …SparkConnectServer`
with the rendered spark.properties), run on this host with a local master instead of on Kubernetes.
The SparkSession CR lives on the local control plane (KWOK plays its driver pod); the operator's
REST URL template (LAKEJOB_SPARK_REST_URL_TEMPLATE, the documented setting) points at the real
server's UI port. A local master names its own application (local-…) instead of the spark.app.id
we render, so the template carries that ID, read from the server's /api/v1/applications.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lakejob.models.spark import resolve_sizing
from lakejob.models.sparksession import SparkSessionSpec
from lakejob.render import sparksession as render
from lakejob.render.common import Owner
from lakejob.settings import Settings
from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_spark_real import entrypoint, read_properties, spark_env, write_properties
from tests.e2e.test_sparksession import session, status, wait_state

DATA = Path(__file__).parent / "data"
pytestmark = [pytest.mark.e2e, pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="real Spark needs a JVM (java)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def test_real_connect_server_goes_idle_busy_idle_then_times_out(
        kubectl: Kubectl, kubeconfig: str, crds_installed: None, tmp_path: Path) -> None:
    pytest.importorskip("grpc", reason="the Spark Connect client needs pyspark[connect]")
    spec = SparkSessionSpec.model_validate({"kind": "pyspark", "cluster_name": "local", "spark_version": "4.3.0",
                                            "driverMemory": "1G", "executorMemory": "1G"})
    owner = Owner("lakejob.io/v1alpha1", "SparkSession", "real", "default", "3c1d-uid")
    sz = resolve_sizing(spec)
    props = read_properties(render.driver_pod(spec, owner, sz, 1, Settings(), "sa")["metadata"]["annotations"][
        "conf.lakejob.io/spark.properties"])
    assert props["spark.connect.grpc.binding.port"] == "15002"
    ui, grpc = free_port(), free_port()
    # The only changes: a local master on this host's loopback, and free ports instead of fixed ones.
    props.update({"spark.master": "local[2]", "spark.driver.host": "127.0.0.1", "spark.local.dir": str(tmp_path),
                  "spark.ui.port": str(ui), "spark.connect.grpc.binding.port": str(grpc)})
    write_properties(tmp_path / "spark.properties", props)
    pod = render.driver_pod(spec, owner, sz, 1, Settings(), "sa")
    cmd = entrypoint(pod["spec"]["containers"][0]["args"], tmp_path / "spark.properties")
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=spark_env(tmp_path),
                              start_new_session=True)
    ns = kubectl.fresh_namespace()
    op: Operator | None = None
    try:
        apps = kubectl.wait_for(lambda: (a := get_json(f"http://127.0.0.1:{ui}/api/v1/applications"))
                                and isinstance(a, list) and a, "the Spark Connect server's REST API", timeout=120)
        app = apps[0]["id"]
        op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "operator.log", env={
            "LAKEJOB_SPARK_REST_URL_TEMPLATE": f"http://127.0.0.1:{ui}/api/v1/applications/{app}/jobs",
            "LAKEJOB_SESSION_POLL_INTERVAL_SECONDS": "0.5", "LAKEJOB_METRICS_PORT": "0"})
        op.start()
        # No idle timeout while the client starts (importing pyspark's client takes seconds here); it is
        # set once the job is done (heartbeatTimeoutInSecond may change at any time).
        kubectl.apply(session("real", kind="pyspark", heartbeatTimeoutInSecond=0), ns)
        wait_state(kubectl, "real", ns, "idle", timeout=60)

        client = subprocess.Popen([sys.executable, str(DATA / "sparksession_busy_client.py"),
                                   f"sc://127.0.0.1:{grpc}", "5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env=spark_env(tmp_path), text=True)
        try:
            st = wait_state(kubectl, "real", ns, "busy", timeout=90)
            assert st["runningJobs"] >= 1
            out, _ = client.communicate(timeout=120)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == 0 and "ran 2 tasks" in out, out[-2000:]
        st = wait_state(kubectl, "real", ns, "idle", timeout=30)
        assert st["idleSince"] >= st["lastActivityTime"]
        kubectl.run("patch", "ss", "real", "-n", ns, "--type=merge", "-p", '{"spec":{"heartbeatTimeoutInSecond":4}}')
        st = wait_state(kubectl, "real", ns, "dead", timeout=30)
        assert st["reason"] == "IdleTimeout"
        assert status(kubectl, "real", ns)["state"] == "dead"
    finally:
        if op is not None:
            op.stop()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()
        kubectl.ok("delete", "namespace", ns, "--wait=false")
