"""SparkBatch end to end on the real control plane: kubectl apply → driver pod → states → cleanup.

KWOK plays the pods: the sim.lakejob.io/* labels in a manifest's driver: block decide whether the
fake driver succeeds or fails (docs/testing.md). The operator is `lakejob run` as users run it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import Kubectl, Operator

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def batch(name: str, outcome: str | None = None, **spec: Any) -> dict[str, Any]:
    driver: dict[str, Any] = spec.pop("driver", {})
    if outcome:
        driver.setdefault("labels", {})["sim.lakejob.io/outcome"] = outcome
        driver.setdefault("annotations", {}).setdefault("sim.lakejob.io/delay", "1s")
    body = {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
            "className": "org.apache.spark.examples.SparkPi", **spec}
    if driver:
        body["driver"] = driver
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": name}, "spec": body}


def status(kubectl: Kubectl, name: str, ns: str) -> dict[str, Any]:
    return (kubectl.get("sparkbatch", name, ns) or {}).get("status") or {}


def wait_state(kubectl: Kubectl, name: str, ns: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    return kubectl.wait_for(lambda: (s := status(kubectl, name, ns)).get("state") in states and s,
                            f"SparkBatch {name} to reach {'/'.join(states)}", timeout=timeout,
                            namespace=ns, show=("sparkbatch", name))


def drivers(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in
                  kubectl.list("pods", ns, f"lakejob.io/name={name},lakejob.io/role=driver"))


def test_success_reaches_success_with_a_duration(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(batch("pi", "succeed"), namespace)
    st = wait_state(kubectl, "pi", namespace, "success")
    assert st["attempt"] == 1 and st["duration"] > 0 and st["sc_type"] == "A"
    assert st["id"] == kubectl.get("sparkbatch", "pi", namespace)["metadata"]["uid"]  # type: ignore[index]
    assert st["appId"].startswith("spark-") and st["driverPod"] == "pi-driver-1"
    assert st["resources"] == {"driverCores": 2, "driverMemory": "7168m", "driverMemoryOverhead": "716m",
                               "executorCores": 1, "executorMemory": "4096m", "executorMemoryOverhead": "409m",
                               "numExecutors": 6}
    ready = {c["type"]: c for c in st["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Complete"]["status"] == "True"
    assert ready["Failed"]["status"] == ready["Suspended"]["status"] == "False"
    assert st["observedGeneration"] == 1
    reasons = [e["reason"] for e in kubectl.list("events", namespace) if e["involvedObject"]["name"] == "pi"]
    assert {"DriverCreated", "DriverRunning", "Completed"} <= set(reasons)
    pod = kubectl.get("pod", "pi-driver-1", namespace)
    assert pod is not None
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "2", "memory": "7884Mi"}
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "SparkBatch"
    assert pod["metadata"]["labels"]["spark-role"] == "driver"
    assert pod["metadata"]["labels"]["spark-app-selector"] == st["appId"]
    printed = kubectl.run("get", "sb", "pi", "-n", namespace)
    assert "STATE" in printed and "success" in printed and "ATTEMPT" in printed


def test_failure_without_auto_recovery_is_dead_with_reason_and_exit_code(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(batch("boom", "fail", driver={"annotations": {
        "sim.lakejob.io/exit-code": "13", "sim.lakejob.io/reason": "Error",
        "sim.lakejob.io/message": "Exception in thread main: table not found"}}), namespace)
    st = wait_state(kubectl, "boom", namespace, "dead")
    assert st["reason"] == "Error" and "exit code 13" in st["message"] and "table not found" in st["message"]
    assert st["log"] and "exit code 13" in st["log"][-1]
    assert drivers(kubectl, namespace, "boom") == ["boom-driver-1"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "False", "Complete": "False", "Failed": "True", "Suspended": "False"}


def test_auto_recovery_makes_exactly_three_drivers_then_dead(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(batch("flaky", "fail", auto_recovery=True, max_retry_times=2), namespace)
    seen_states: set[str] = set()

    def dead() -> bool:
        st = status(kubectl, "flaky", namespace)
        seen_states.add(st.get("state", ""))
        return st.get("state") == "dead"

    kubectl.wait_for(dead, "flaky to die after its retries", timeout=90, namespace=namespace,
                     show=("sparkbatch", "flaky"))
    st = status(kubectl, "flaky", namespace)
    assert st["attempt"] == 3 and "after 2 retries" in st["message"]
    assert "recovering" in seen_states
    time.sleep(3)  # nothing more happens once dead
    assert drivers(kubectl, namespace, "flaky") == ["flaky-driver-1", "flaky-driver-2", "flaky-driver-3"]


def test_a_driver_that_cannot_be_scheduled_is_dead_with_the_schedulers_reason(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(batch("huge", driverCores=200, schedulingTimeout="8s"), namespace)
    st = wait_state(kubectl, "huge", namespace, "dead", timeout=60)
    assert st["reason"] == "FailedScheduling"
    assert "Insufficient cpu" in st["message"] and "8s schedulingTimeout" in st["message"]
    kubectl.wait_for(lambda: not drivers(kubectl, namespace, "huge"), "the unschedulable driver to be deleted",
                     namespace=namespace)


def test_suspend_kills_the_running_job(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(batch("forever"), namespace)  # no outcome: the fake driver runs until stopped
    wait_state(kubectl, "forever", namespace, "running")
    kubectl.run("patch", "sb", "forever", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    st = wait_state(kubectl, "forever", namespace, "killed")
    assert st["reason"] == "Suspended"
    kubectl.wait_for(lambda: not drivers(kubectl, namespace, "forever"), "the driver to be deleted",
                     namespace=namespace)
    back = kubectl.result("patch", "sb", "forever", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    assert back.returncode != 0 and "suspend cannot go back to false" in back.stderr
    edit = kubectl.result("patch", "sb", "forever", "-n", namespace, "--type=merge", "-p", '{"spec":{"numExecutors":3}}')
    assert edit.returncode != 0 and "spec: Invalid value" in edit.stderr


@pytest.mark.own_pods
def test_executors_are_counted_by_phase(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    """Pods labelled as Spark labels its executors (here made by the test, as a driver would)."""
    kubectl.apply(batch("counted"), namespace)
    st = wait_state(kubectl, "counted", namespace, "running")
    driver = kubectl.get("pod", st["driverPod"], namespace)
    assert driver is not None
    for i, outcome in enumerate(["", "", "fail"]):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"counted-a1-exec-{i + 1}",
            # Spark's driver owns its executors (controller: true), so they go with it.
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": st["driverPod"],
                                 "uid": driver["metadata"]["uid"], "controller": True}],
            "labels": {"lakejob.io/kind": "SparkBatch", "lakejob.io/name": "counted", "lakejob.io/role": "executor",
                       "spark-role": "executor", "spark-app-selector": st["appId"], "spark-exec-id": str(i + 1),
                       **({"sim.lakejob.io/outcome": outcome} if outcome else {})},
            "annotations": {"sim.lakejob.io/delay": "1s"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "spark-kubernetes-executor", "image": "x"}]}}
        kubectl.apply(pod, namespace)
    kubectl.wait_for(lambda: status(kubectl, "counted", namespace).get("executors") ==
                     {"pending": 0, "running": 2, "succeeded": 0, "failed": 1},
                     "executor counts 2 running / 1 failed", namespace=namespace, show=("sparkbatch", "counted"))


def test_deleting_the_batch_removes_every_child(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(batch("tidy"), namespace)
    wait_state(kubectl, "tidy", namespace, "running")
    children = [("pod", "tidy-driver-1")]
    # No Service (executors reach the driver by its pod IP), no ConfigMap (the driver pod carries its
    # conf files) and no account of its own (the namespace's).
    assert kubectl.get("configmap", "tidy-spark-conf", namespace) is None
    assert kubectl.get("service", "tidy-driver-svc", namespace) is None
    assert kubectl.get("serviceaccount", "tidy-spark", namespace) is None
    for kind, name in children:
        obj = kubectl.get(kind, name, namespace)
        assert obj is not None, f"{kind}/{name} missing"
        assert obj["metadata"]["ownerReferences"][0]["name"] == "tidy"
    files = kubectl.get("pod", "tidy-driver-1", namespace)["metadata"]["annotations"]
    assert "spark.kubernetes.driver.pod.name=tidy-driver-1" in files["conf.lakejob.io/spark.properties"]
    template = yaml.safe_load(files["conf.lakejob.io/executor-pod-template.yaml"])
    assert template["metadata"]["labels"]["lakejob.io/role"] == "executor"
    kubectl.run("delete", "sb", "tidy", "-n", namespace, "--wait=true", "--timeout=30s")
    kubectl.wait_for(lambda: all(kubectl.get(k, n, namespace) is None for k, n in children),
                     "the garbage collector to remove the children", namespace=namespace)


def test_conf_too_large_for_the_drivers_annotations_is_refused_before_anything_is_made(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    # 64 values of 4,096 two-byte characters: 512 KiB, which the CRD admits and a pod's annotations
    # (256 KiB, where the driver carries its conf files) cannot hold. `create`, not `apply`: apply's
    # last-applied annotation would make the CR itself too large.
    big = batch("big", "succeed", conf={f"spark.x.k{i}": "é" * 4096 for i in range(64)})
    kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(big))

    def refused() -> dict[str, Any] | None:
        c = {c["type"]: c for c in status(kubectl, "big", namespace).get("conditions") or []}.get("Reconciled")
        return c if c and c["status"] == "False" else None
    c = kubectl.wait_for(refused, "SparkBatch big to say why it cannot start", timeout=60, namespace=namespace,
                         show=("sparkbatch", "big"))
    assert c["reason"] == "CannotRender"
    assert f"Pod {namespace}/big-driver-1's annotations would be " in c["message"]
    assert "more than the 262144 bytes Kubernetes accepts" in c["message"] and "spec.conf" in c["message"]
    assert drivers(kubectl, namespace, "big") == []


@pytest.mark.parametrize("example", ["sparkbatch-dli.yaml", "sparkbatch-livy.yaml"])
def test_the_vendor_examples_pasted_unchanged_are_accepted_and_run(
        kubectl: Kubectl, namespace: str, operator: Operator, example: str) -> None:
    doc = yaml.safe_load((ROOT / "examples" / example).read_text())
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "examples" / example))
    st = wait_state(kubectl, doc["metadata"]["name"], namespace, "running")
    if example == "sparkbatch-dli.yaml":
        assert st["sc_type"] == "A" and st["queue"] == "test" and st["name"] == "TestDemo4"
    else:
        assert st["sc_type"] == "CUSTOMIZED"
        assert st["resources"]["executorCores"] == 10 and st["resources"]["numExecutors"] == 10
        assert st["resources"]["driverMemoryOverhead"] == "384m"


def test_operator_killed_mid_flight_neither_duplicates_nor_loses_the_job(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path) -> None:
    ns = kubectl.fresh_namespace()  # outside the session operator's namespaces
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op1.log")
    try:
        op.start()
        kubectl.apply(batch("survivor", "fail", auto_recovery=True, max_retry_times=1,
                            driver={"annotations": {"sim.lakejob.io/delay": "6s"}}), ns)
        wait_state(kubectl, "survivor", ns, "running")
        op.kill()  # mid-flight: the driver is running and will fail while no operator watches
        time.sleep(8)
        assert status(kubectl, "survivor", ns)["state"] == "running"
        op2 = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op2.log")
        op = op2
        op2.start()
        st = wait_state(kubectl, "survivor", ns, "dead", timeout=60)
        assert st["attempt"] == 2
        assert drivers(kubectl, ns, "survivor") == ["survivor-driver-1", "survivor-driver-2"]
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no-file", {"file": None}, "spec.file: Required value"),
    ("empty-file", {"file": ""}, "spec.file"),
    ("no-class", {"className": None}, "className is required unless file is a Python file"),
    ("queue-and-cluster", {"queue": "a", "cluster_name": "b"}, "queue and cluster_name cannot coexist"),
    ("sc-type-d", {"sc_type": "D"}, 'spec.sc_type: Unsupported value: "D"'),
    ("retry-101", {"max_retry_times": 101}, "spec.max_retry_times"),
    ("retry-negative", {"max_retry_times": -1}, "spec.max_retry_times"),
    ("image-basic", {"image": "me/spark:1", "feature": "basic"}, "image is valid only when feature is custom"),
    ("image-alone", {"image": "me/spark:1"}, "image is valid only when feature is custom"),
    ("feature-other", {"feature": "gpu"}, "spec.feature: Unsupported value"),
    ("resources-3-3", {"spark_version": "3.3.1", "resources": [{"name": "a.jar", "type": "jar"}]},
     "resources and groups are not supported by spark_version 3.3 or later"),
    ("groups-3-5", {"spark_version": "3.5", "groups": [{"name": "g"}]},
     "resources and groups are not supported by spark_version 3.3 or later"),
    ("bad-version", {"spark_version": "three"}, "spec.spark_version"),
    ("driver-mem-bare", {"driverMemory": "2048"}, "must include the unit"),
    ("executor-mem-bare", {"executorMemory": "4096"}, "must include the unit"),
    ("driver-mem-garbage", {"driverMemory": "lots"}, "spec.driverMemory"),
    ("driver-cores-zero", {"driverCores": 0}, "spec.driverCores"),
    ("executor-cores-zero", {"executorCores": 0}, "spec.executorCores"),
    ("executors-zero", {"numExecutors": 0}, "spec.numExecutors"),
    ("name-too-long", {"name": "x" * 129}, "spec.name: Too long"),
    ("unknown-field", {"colour": "blue"}, 'unknown field "spec.colour"'),
    ("timeout-words", {"schedulingTimeout": "3 hours"}, "spec.schedulingTimeout"),
    ("conf-not-string", {"conf": {"spark.executor.instances": 3}}, "spec.conf.spark.executor.instances"),
    ("args-not-list", {"args": "a b"}, "spec.args"),
    ("toleration-op", {"driver": {"tolerations": [{"operator": "Maybe"}]}}, "spec.driver.tolerations[0].operator"),
    ("volume-two-sources", {"driver": {"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}},
     "a volume needs exactly one of"),
]


def test_invalid_manifests_are_rejected_at_admission_naming_the_field(
        kubectl: Kubectl, namespace: str, crds_installed: None) -> None:
    failures = []
    for name, spec, expected in INVALID:
        # None removes a key from the otherwise valid base
        body = {k: v for k, v in {"file": "app.jar", "className": "Main", **spec}.items() if v is not None}
        manifest = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": name},
                    "spec": body}
        r = kubectl.result("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
        if r.returncode == 0 or expected not in r.stderr:
            failures.append(f"{name}: rc={r.returncode} expected {expected!r} in: {r.stderr.strip()}")
    assert not failures, "\n".join(failures)
    assert len(INVALID) >= 20
    assert kubectl.list("sparkbatches", namespace) == []


def test_drivers_share_the_namespaces_account_by_default(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    ns = namespace
    for name in ("one", "two"):
        kubectl.apply(batch(name, "succeed"), ns)
    for name in ("one", "two"):
        wait_state(kubectl, name, ns, "success")
        pod = kubectl.get("pod", f"{name}-driver-1", ns)
        assert pod is not None and pod["spec"]["serviceAccountName"] == "lakejob-spark-driver"
        assert kubectl.get("serviceaccount", f"{name}-spark", ns) is None
    for kind in ("serviceaccount", "role", "rolebinding"):
        shared = kubectl.get(kind, "lakejob-spark-driver", ns)
        assert shared is not None and not shared["metadata"].get("ownerReferences")
    # Someone deletes the shared account: the next job's driver still starts (it is made again).
    kubectl.run("delete", "serviceaccount", "lakejob-spark-driver", "-n", ns)
    kubectl.apply(batch("three", "succeed"), ns)
    wait_state(kubectl, "three", ns, "success")
    assert kubectl.get("serviceaccount", "lakejob-spark-driver", ns) is not None


def test_per_job_driver_rbac_gives_each_job_its_own_account(kubectl: Kubectl, kubeconfig: str,
                                                            tmp_path: Path) -> None:
    ns = kubectl.fresh_namespace()  # outside the session operator's namespaces
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={"LAKEJOB_DRIVER_RBAC": "per-job"})
    try:
        op.start()
        kubectl.apply(batch("own", "succeed"), ns)
        wait_state(kubectl, "own", ns, "success")
        pod = kubectl.get("pod", "own-driver-1", ns)
        assert pod is not None and pod["spec"]["serviceAccountName"] == "own-spark"
        for kind in ("serviceaccount", "role", "rolebinding"):
            obj = kubectl.get(kind, "own-spark", ns)
            assert obj is not None and obj["metadata"]["ownerReferences"][0]["name"] == "own", kind
        assert kubectl.get("serviceaccount", "lakejob-spark-driver", ns) is None
        kubectl.run("delete", "sb", "own", "-n", ns, "--wait=true", "--timeout=30s")
        kubectl.wait_for(lambda: kubectl.get("serviceaccount", "own-spark", ns) is None,
                         "the job's account to go with it", namespace=ns)
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")
