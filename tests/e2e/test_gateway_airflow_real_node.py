"""Airflow's Livy provider (issue 13): an Airflow task's LivyHook, unmodified, in Airflow's own
Python (hack/airflow_venv.py: apache-airflow and apache-airflow-providers-apache-livy from PyPI, a
virtualenv of their own), submits SparkPi through the chart's gateway (kubectl port-forward) as a
Livy key's user, polls it to success on the real node, and pages its log as LivyOperator does; the
answers are the SparkBatch's and the driver's log.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.kubectl import Kubectl
from tests.e2e.real import GATEWAY_PASSWORD, GATEWAY_USER, REAL_NODE
from tests.e2e.test_gateway_livy import rbac
from tests.e2e.test_gateway_real_node import JOB_TIMEOUT, gateway_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import airflow_venv  # noqa: E402  (hack/airflow_venv.py)

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")]
SCRIPT = Path(__file__).parent / "data" / "airflow_livy_batch.py"


def test_airflows_livy_hook_runs_sparkpi_through_the_gateway(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, tmp_path: Path) -> None:
    python = airflow_venv.install()
    release, op_ns = incluster_operator
    ns = real_namespace
    rbac(kubectl, ns, {"kind": "User", "name": GATEWAY_USER, "apiGroup": "rbac.authorization.k8s.io"})
    with gateway_url(kubectl, release, op_ns, tmp_path / "port-forward.log") as url:
        host, port = url.removeprefix("http://").split(":")
        # The connection as an Airflow deployment gives it: the gateway's URL and the Livy key.
        connection = {"conn_type": "livy", "host": host, "port": int(port), "schema": "http",
                      "login": "real", "password": GATEWAY_PASSWORD}
        env = {**os.environ, "AIRFLOW_CONN_LIVY_DEFAULT": json.dumps(connection),
               "AIRFLOW_HOME": str(tmp_path / "airflow")}
        done = subprocess.run([str(python), str(SCRIPT), str(JOB_TIMEOUT)], env=env, capture_output=True, text=True,
                              timeout=JOB_TIMEOUT + 120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    name = f"livy-batch-{seen['id']}"
    try:
        assert seen["success"], seen["states"]
        assert seen["states"][-1] == "success" and seen["states"][0] in ("starting", "running")
        cr = kubectl.get("sparkbatch", name, ns)
        assert cr is not None and cr["spec"]["name"] == "from-airflow" and cr["status"]["state"] == "success"
        assert seen["batch"]["appId"] == cr["status"]["appId"]
        # LivyOperator's paging put together is the driver's whole log.
        whole = kubectl.run("logs", cr["status"]["driverPod"], "-n", ns).splitlines()
        assert seen["total"] == len(whole) and seen["log"] == whole
        assert any("Pi is roughly 3.1" in line for line in seen["log"])
        assert GATEWAY_PASSWORD not in done.stdout + done.stderr  # Airflow masks it; the gateway never says it
    finally:
        kubectl.run("delete", "sparkbatch", name, "-n", ns, "--wait=false", "--ignore-not-found")
