"""`lakejob submit / logs / stop` (issue 13) as a user runs them, with a kubeconfig, against the
local control plane; the operator runs the jobs on KWOK.

- A Livy body, submitted with --watch, is a SparkBatch followed to success (exit 0), each state
  printed once (a watch on the object, not a poll: the state's line comes within a second); one
  deleted while watched ends the watch (exit 1); the DLI Flink example body is a FlinkJarJob; a BatchCompute body a DagJob.
- `stop` ends a running job as its kind does (spec.suspend → killed); `logs` prints what it has.
- A bad body is refused naming the field, before anything is created (exit 2).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import Kubectl, Operator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
SIM_SUCCEED = {"labels": {"sim.lakejob.io/outcome": "succeed"}, "annotations": {"sim.lakejob.io/delay": "2s"}}
PI = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi"}


def lakejob(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "lakejob"), *args], capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": kubeconfig}, timeout=180)


def body_file(tmp_path: Path, name: str, body: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def test_submit_watch_follows_a_livy_body_to_success(kubeconfig: str, kubectl: Kubectl, namespace: str,
                                                      operator: Operator, tmp_path: Path) -> None:
    f = body_file(tmp_path, "livy.json", {**PI, "args": ["10"], "driver": SIM_SUCCEED})
    r = lakejob(kubeconfig, "submit", f, "--api", "livy", "-n", namespace, "--watch")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout[:r.stdout.index("\n}\n") + 2])
    name = created["metadata"]["name"]
    assert created["kind"] == "SparkBatch" and name.startswith("livy-")
    states = [line.split(": ", 1)[1].split(" ")[0] for line in r.stdout.splitlines() if line.startswith(f"SparkBatch {name}: ")]
    assert states[-1] == "success" and len(states) == len(set(states)), r.stdout
    assert (kubectl.get("sparkbatch", name, namespace) or {})["status"]["state"] == "success"
    out = lakejob(kubeconfig, "logs", name, "-n", namespace)
    # KWOK's pods have no log to read: what the operator kept, or a clear word that there is none.
    assert out.returncode == 0 or "cannot be read" in out.stderr, out.stderr


def test_submit_watch_ends_when_the_job_is_deleted(kubeconfig: str, kubectl: Kubectl, namespace: str,
                                                   operator: Operator, tmp_path: Path) -> None:
    f = body_file(tmp_path, "livy.json", PI)  # KWOK's driver without an outcome: it runs until stopped
    watching = subprocess.Popen([str(Path(sys.executable).parent / "lakejob"), "submit", f, "--api", "livy", "-n",
                                 namespace, "--name", "watched", "--watch"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "KUBECONFIG": kubeconfig})
    try:
        kubectl.wait_for(lambda: (kubectl.get("sparkbatch", "watched", namespace) or {}).get("status", {}).get("state")
                         == "running", "the batch to run", namespace=namespace)
        kubectl.run("delete", "sparkbatch", "watched", "-n", namespace)
        out, _ = watching.communicate(timeout=30)
    finally:
        watching.kill()
    assert watching.returncode == 1 and out.rstrip().endswith("SparkBatch watched was deleted"), out
    assert "SparkBatch watched: running" in out, out


def test_dli_flink_and_batchcompute_bodies_become_their_kinds_and_stop_stops(
        kubeconfig: str, kubectl: Kubectl, namespace: str, operator: Operator, tmp_path: Path) -> None:
    flink = yaml.safe_load((ROOT / "examples" / "flinkjarjob-dli.yaml").read_text())["spec"]
    r = lakejob(kubeconfig, "submit", body_file(tmp_path, "flink.json", flink), "--api", "dli", "-n", namespace,
                "--name", "stream")
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "FlinkJarJob", r.stderr
    dag = yaml.safe_load((ROOT / "examples" / "dagjob-batchcompute.yaml").read_text())["spec"]
    r = lakejob(kubeconfig, "submit", body_file(tmp_path, "dag.json", dag), "--api", "batchcompute", "-n", namespace)
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "DagJob", r.stderr
    # A batch whose (simulated) driver keeps running, stopped.
    r = lakejob(kubeconfig, "submit", body_file(tmp_path, "pi.json", PI), "--api", "dli", "-n", namespace, "--name", "pi")
    assert r.returncode == 0, r.stderr
    kubectl.wait_for(lambda: (kubectl.get("sparkbatch", "pi", namespace) or {}).get("status", {}).get("state")
                     == "running", "pi to run", namespace=namespace)
    r = lakejob(kubeconfig, "stop", "pi", "-n", namespace)
    assert r.returncode == 0 and "SparkBatch pi: stop requested" in r.stdout, r.stderr
    kubectl.wait_for(lambda: (kubectl.get("sparkbatch", "pi", namespace) or {}).get("status", {}).get("state")
                     == "killed", "pi to be killed", namespace=namespace)
    r = lakejob(kubeconfig, "stop", "nothing-here", "-n", namespace)
    assert r.returncode == 2 and "no lakejob job named nothing-here" in r.stderr
    # A DagJob's sparkBatch task is its DagJob's to stop: refused, and left running.
    kubectl.apply({"apiVersion": "lakejob.io/v1alpha1", "kind": "DagJob", "metadata": {"name": "owner"},
                   "spec": {"Name": "owner", "Priority": 100, "Type": "DAG", "JobFailOnInstanceFail": True,
                            "DAG": {"Tasks": {"pi": {"sparkBatch": PI}}}}}, namespace)
    child = kubectl.wait_for(lambda: kubectl.list("sparkbatches", namespace, "lakejob.io/kind=DagJob"),
                             "the DagJob's SparkBatch", namespace=namespace)[0]["metadata"]["name"]
    r = lakejob(kubeconfig, "stop", child, "-n", namespace, "--kind", "SparkBatch")
    assert r.returncode == 2 and "controlled by DagJob owner" in r.stderr, r.stderr
    assert not (kubectl.get("sparkbatch", child, namespace) or {})["spec"].get("suspend")


def test_a_bad_body_is_refused_naming_the_field(kubeconfig: str, kubectl: Kubectl, namespace: str,
                                                tmp_path: Path) -> None:
    r = lakejob(kubeconfig, "submit", body_file(tmp_path, "bad.json", {**PI, "numExecutors": -1}), "--api", "livy",
                "-n", namespace)
    assert r.returncode == 2 and "numExecutors" in r.stderr and r.stderr.startswith("lakejob: SparkBatch: "), r.stderr
    assert kubectl.list("sparkbatches", namespace) == []
    r = lakejob(kubeconfig, "submit", str(tmp_path / "missing.json"), "--api", "dli", "-n", namespace)
    assert r.returncode == 2 and "missing.json" in r.stderr
