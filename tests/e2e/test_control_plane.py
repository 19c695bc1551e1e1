"""The local control plane is real: admission, scheduling, the Job controller, the GC, KWOK stages.

These are the guarantees every other e2e test leans on (issue: the control plane on loopback).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.own_pods]  # plain pods of its own

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.e2e.lakejob.io"},
    "spec": {"group": "e2e.lakejob.io", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {
                     "type": "object",
                     "properties": {"size": {"type": "integer", "minimum": 1}, "color": {"type": "string"}},
                     "x-kubernetes-validations": [{"rule": "self.size <= 10 || self.color == 'red'",
                                                   "message": "big widgets must be red"}]}}}}}]},
}


def pod(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        cpu: str = "100m") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}}


def test_object_round_trips(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rt"},
                   "data": {"key": "value ✓"}}, namespace)
    got = kubectl.get("configmap", "rt", namespace)
    assert got is not None and got["data"] == {"key": "value ✓"}
    assert got["metadata"]["uid"] and got["metadata"]["resourceVersion"]


def test_crd_schema_and_cel_rule_reject_bad_objects(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.wait_established("widgets.e2e.lakejob.io", timeout=30)

    def widget(name: str, spec: dict[str, object]) -> str:
        return json.dumps({"apiVersion": "e2e.lakejob.io/v1", "kind": "Widget", "metadata": {"name": name},
                           "spec": spec})

    kubectl.wait_for(lambda: kubectl.result("apply", "-n", namespace, "-f", "-",
                                            stdin=widget("good", {"size": 3})).returncode == 0, "the Widget API")
    cel = kubectl.result("apply", "-n", namespace, "-f", "-", stdin=widget("big", {"size": 20, "color": "blue"}))
    assert cel.returncode != 0 and "big widgets must be red" in cel.stderr
    schema = kubectl.result("apply", "-n", namespace, "-f", "-", stdin=widget("zero", {"size": 0}))
    assert schema.returncode != 0 and "spec.size" in schema.stderr and "should be greater than or equal to 1" in schema.stderr


def test_job_pods_are_scheduled_on_kwok_nodes_and_the_job_completes(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "done"},
                   "spec": {"completions": 3, "parallelism": 3, "template": {
                       "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}},
                  namespace)
    kubectl.wait_for(lambda: (kubectl.get("job", "done", namespace) or {}).get("status", {}).get("succeeded") == 3,
                     "the Job to complete", namespace=namespace, show=("job", "done"))
    pods = kubectl.list("pods", namespace, "job-name=done")
    assert len(pods) == 3
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)


def test_a_pod_labelled_to_fail_ends_failed_with_our_exit_code(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(pod("doomed", {"sim.lakejob.io/outcome": "fail"},
                      {"sim.lakejob.io/exit-code": "42", "sim.lakejob.io/delay": "1s",
                       "sim.lakejob.io/message": "out of luck"}), namespace)
    got = kubectl.wait_for(lambda: (p := kubectl.get("pod", "doomed", namespace)) and
                           p["status"].get("phase") == "Failed" and p, "the pod to fail", namespace=namespace)
    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 42 and term["message"] == "out of luck"


def test_a_pod_labelled_to_succeed_succeeds(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(pod("lucky", {"sim.lakejob.io/outcome": "succeed"}, {"sim.lakejob.io/delay": "1s"}), namespace)
    kubectl.wait_for(lambda: (kubectl.get("pod", "lucky", namespace) or {}).get("status", {}).get("phase")
                     == "Succeeded", "the pod to succeed", namespace=namespace)


def test_a_pod_too_big_for_any_node_stays_pending_with_failed_scheduling(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(pod("giant", cpu="1000"), namespace)

    def failed_scheduling() -> bool:
        events = kubectl.list("events", namespace)
        return any(e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "giant" for e in events)

    kubectl.wait_for(failed_scheduling, "a FailedScheduling event", namespace=namespace)
    got = kubectl.get("pod", "giant", namespace)
    assert got is not None and got["status"]["phase"] == "Pending" and not got["spec"].get("nodeName")


def test_deleting_an_owner_garbage_collects_its_dependents(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace)
    owner = kubectl.get("configmap", "owner", namespace)
    assert owner is not None
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dependent", "ownerReferences": [ref]}},
                  namespace)
    kubectl.apply({**pod("dependent-pod"), "metadata": {"name": "dependent-pod", "ownerReferences": [ref]}}, namespace)
    kubectl.run("delete", "configmap", "owner", "-n", namespace)
    kubectl.wait_for(lambda: kubectl.get("configmap", "dependent", namespace) is None
                     and kubectl.get("pod", "dependent-pod", namespace) is None,
                     "the garbage collector to delete the dependents", namespace=namespace)


# ---------------------------------------------------------------------------- lifecycle of the script


def _cluster(run_dir: Path, port_base: int, *args: str) -> subprocess.CompletedProcess[str]:
    # KWOK-only: one machine holds one real node (the session's cluster has it).
    env = {**os.environ, "LAKEJOB_RUN_DIR": str(run_dir), "LAKEJOB_PORT_BASE": str(port_base),
           "LAKEJOB_REAL_NODE": "0"}
    return subprocess.run([sys.executable, str(ROOT / "hack/cluster/cluster.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_second_cluster_lifecycle_leaves_no_process(tmp_path: Path, kubeconfig: str) -> None:
    """up → up again (no-op, same kubeconfig) → killed component → stale run dir cleaned → down: nothing left."""
    run_dir, base = tmp_path / "run", 17440
    first = _cluster(run_dir, base, "up", "--profile", "small")
    assert first.returncode == 0, first.stderr
    again = _cluster(run_dir, base, "up")
    assert again.returncode == 0 and again.stdout == first.stdout
    nodes = Kubectl(first.stdout.strip()).list("nodes", "default")
    assert [n["status"]["capacity"]["cpu"] for n in nodes] == ["4", "4"]  # the small profile
    pids = {p.stem: int(p.read_text().split()[0]) for p in (run_dir / "pids").glob("*.pid")}
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

    os.kill(pids["kube-scheduler"], 9)  # as after a crash: the run dir is stale now
    restarted = _cluster(run_dir, base, "up", "--profile", "small")
    assert restarted.returncode == 0, restarted.stderr
    assert "stale run directory" in restarted.stderr
    assert not any(_alive(p) for p in pids.values())
    new_pids = [int(p.read_text().split()[0]) for p in (run_dir / "pids").glob("*.pid")]

    down = _cluster(run_dir, base, "down")
    assert down.returncode == 0, down.stderr
    assert not run_dir.exists()
    assert not any(_alive(p) for p in new_pids)
    assert _cluster(run_dir, base, "kubeconfig").returncode == 1


def test_a_port_in_use_is_one_clear_line_and_starts_nothing(tmp_path: Path) -> None:
    run_dir, base = tmp_path / "run", 18440
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 3))
        s.listen()
        r = _cluster(run_dir, base, "up")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "ports in use" in r.stderr and str(base + 3) in r.stderr and "LAKEJOB_PORT_BASE" in r.stderr
    assert not (run_dir / "pids").exists() or not list((run_dir / "pids").glob("*.pid"))
