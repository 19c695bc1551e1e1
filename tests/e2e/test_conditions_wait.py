"""`kubectl wait --for=condition=…` on every kind, as automation uses it (docs/<kind>.md, Conditions).

Per kind, three objects: one that succeeds, one that fails, one created with suspend: true. The
waits are the real kubectl's: on each object the condition of its outcome (Complete, Failed,
Suspended) must return 0, and then, its state final, the other two must time out. Before
Failed and Suspended existed, `kubectl wait --for=condition=Complete` returned for dead jobs too.

KWOK plays the pods (docs/testing.md): the sim.lakejob.io/outcome label on a pod decides whether
it succeeds or fails. All twelve objects are applied at once into one namespace, and each kind's
waits run side by side, so the module costs about its slowest object plus one negative timeout.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.conftest import PREFIX
from tests.e2e.kubectl import Kubectl, Operator

pytestmark = pytest.mark.e2e

OUTCOMES = ("Complete", "Failed", "Suspended")
POSITIVE_TIMEOUT = "120s"
# Asked only once the object's state is final, when nothing changes its conditions any more: a
# wait that has not returned by then never will.
NEGATIVE_TIMEOUT = "3s"


def sim(outcome: str) -> dict[str, Any]:
    """The pod block that makes KWOK's pod end as `outcome` (succeed; fail, with exit code 1) after a second."""
    return {"labels": {"sim.lakejob.io/outcome": outcome}, "annotations": {"sim.lakejob.io/delay": "1s"}}


def sparkbatch(outcome: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                            "className": "org.apache.spark.examples.SparkPi"}
    return {**spec, "suspend": True} if outcome == "suspend" else {**spec, "driver": sim(outcome)}


def sparksession(outcome: str) -> dict[str, Any]:
    # A session succeeds when its Spark Connect server exits 0 by itself (DriverExited).
    spec: dict[str, Any] = {"kind": "spark", "cluster_name": "c1", "heartbeatTimeoutInSecond": 0}
    return {**spec, "suspend": True} if outcome == "suspend" else {**spec, "driver": sim(outcome)}


def flinkjarjob(outcome: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "wc", "main_class": "com.example.Main",
                            "entrypoint": "local:///opt/flink/usrlib/job.jar"}
    return {**spec, "suspend": True} if outcome == "suspend" else {**spec, "jobManager": sim(outcome)}


def dagjob(outcome: str) -> dict[str, Any]:
    task: dict[str, Any] = {"InstanceCount": 1, "MaxRetryCount": 0, "Timeout": 600, "Parameters": {
        "Command": {"CommandLine": "python worker.py", "PackagePath": ""},
        "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"}}
    spec: dict[str, Any] = {"Name": "conditions", "Priority": 100, "Type": "DAG", "JobFailOnInstanceFail": True,
                            "DAG": {"Tasks": {"A": task}}}
    if outcome == "suspend":
        return {**spec, "suspend": True}
    task["pod"] = sim(outcome)
    return spec


KINDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "SparkBatch": sparkbatch, "SparkSession": sparksession, "FlinkJarJob": flinkjarjob, "DagJob": dagjob}
# The object's outcome → the condition that must come True.
EXPECTED = {"succeed": "Complete", "fail": "Failed", "suspend": "Suspended"}


def name_of(kind: str, outcome: str) -> str:
    return f"{kind.lower()}-{outcome}"


@pytest.fixture(scope="module")
def applied(kubectl: Kubectl, operator: Operator, priority_classes: None) -> Iterator[str]:
    """Every kind's three objects, applied at once into a namespace the session's operator watches."""
    ns = kubectl.fresh_namespace(PREFIX)
    for kind, spec_of in KINDS.items():
        for outcome in EXPECTED:
            kubectl.apply({"apiVersion": "lakejob.io/v1alpha1", "kind": kind,
                           "metadata": {"name": name_of(kind, outcome)}, "spec": spec_of(outcome)}, ns)
    yield ns
    kubectl.ok("delete", "namespace", ns, "--wait=false")


def wait(kubectl: Kubectl, ns: str, kind: str, name: str, condition: str, timeout: str) -> tuple[int, str]:
    r = kubectl.result("wait", f"--for=condition={condition}", f"--timeout={timeout}",
                       f"{kind.lower()}/{name}", "-n", ns)
    return r.returncode, (r.stdout + r.stderr).strip()


@pytest.mark.parametrize("kind", list(KINDS))
def test_kubectl_wait_returns_for_the_outcome_and_times_out_for_the_others(
        kubectl: Kubectl, applied: str, kind: str) -> None:
    objects = {name_of(kind, outcome): condition for outcome, condition in EXPECTED.items()}
    with ThreadPoolExecutor(max_workers=2 * len(objects)) as pool:
        positives = {name: pool.submit(wait, kubectl, applied, kind, name, condition, POSITIVE_TIMEOUT)
                     for name, condition in objects.items()}
        failures = []
        for name, future in positives.items():
            rc, out = future.result()
            if rc != 0:
                shown = kubectl.result("get", kind.lower(), name, "-n", applied, "-o", "yaml").stdout[-3000:]
                failures.append(f"{name}: wait --for=condition={objects[name]} exited {rc}: {out}\n{shown}")
        assert not failures, "\n".join(failures)
        # Every object is final now: the conditions of the other outcomes must never come True.
        negatives = {(name, other): pool.submit(wait, kubectl, applied, kind, name, other, NEGATIVE_TIMEOUT)
                     for name, condition in objects.items() for other in OUTCOMES if other != condition}
        for (name, other), future in negatives.items():
            rc, out = future.result()
            assert rc != 0 and "timed out" in out, f"{name}: wait --for=condition={other} returned {rc}: {out}"
    for name, condition in objects.items():
        obj = kubectl.get(kind.lower(), name, applied)
        assert obj is not None
        conditions = {c["type"]: c for c in obj["status"]["conditions"]}
        assert {t: conditions[t]["status"] for t in OUTCOMES} == {t: str(t == condition) for t in OUTCOMES}
        true = conditions[condition]
        assert true["reason"] and true["observedGeneration"] == obj["metadata"]["generation"]
