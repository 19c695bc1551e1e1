"""SparkBatch through Kueue (issue 16, docs/queues.md): Kueue's manager built from Go modules and run
out of cluster (tests/e2e/kueue.py), the operator as users run it, jobs naming a queue.

KWOK plays the drivers of the session operator's namespaces (sim.lakejob.io/* labels, as in
test_sparkbatch.py), which is enough for what Kueue decides; the last test runs a real SparkPi on the
real node through a queue, with the operator installed by Helm.
- a queue of 4 CUs, three jobs of 2 CUs each: two run, the third waits in `starting` with no driver and
  Kueue's reason in its Admitted condition, then runs when one finishes;
- a high-priority job preempts a low-priority one in a full queue: the low one's driver is stopped, it
  is reported as Preempted (a Normal Event, not a failure), waits, and comes back as a new attempt
  once the high one is done;
- a real SparkPi admitted as a whole (driver + executors) and Finished.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.kueue import Queue, condition
from tests.e2e.real import REAL_NODE
from tests.e2e.test_sparkbatch import batch, drivers, status, wait_state
from tests.e2e.test_sparkbatch_real_node import JOB_TIMEOUT, SPARK_PI, sparkbatch

pytestmark = [pytest.mark.e2e, pytest.mark.kueue]

# Two CUs: a driver and one executor of 1 core and 2g (+384m overhead) each, within 1 CU apiece.
TWO_CUS = {"driverCores": 1, "driverMemory": "2g", "executorCores": 1, "executorMemory": "2g", "numExecutors": 1,
           "queue": "dli_queue"}  # the LocalQueue dli-queue, by the documented rule


def admitted(kubectl: Kubectl, ns: str, name: str) -> dict[str, str]:
    return {k: v for k, v in condition({"status": status(kubectl, name, ns)}, "Admitted").items()
            if k in ("status", "reason", "message")}


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    return [(e["type"], e["reason"]) for e in kubectl.list("events", ns) if e["involvedObject"].get("name") == name]


def test_a_4_cu_queue_runs_two_2_cu_sparkbatches_and_holds_the_third_until_one_finishes(
        kubectl: Kubectl, queue: Queue, operator: Operator) -> None:
    ns = queue.namespace
    for name, delay in (("one", "20s"), ("two", "40s")):
        kubectl.apply(batch(name, "succeed", driver={"annotations": {"sim.lakejob.io/delay": delay}}, **TWO_CUS), ns)
    for name in ("one", "two"):
        kubectl.wait_for(lambda n=name: admitted(kubectl, ns, n).get("status") == "True",
                         f"{name} to be admitted", 60, ns, ("sparkbatch", name))
    kubectl.apply(batch("three", "succeed", **TWO_CUS), ns)
    kubectl.wait_for(lambda: "insufficient unused quota" in admitted(kubectl, ns, "three").get("message", ""),
                     "the third to wait with Kueue's reason", 60, ns, ("sparkbatch", "three"))
    st = status(kubectl, "three", ns)
    assert st["state"] == "starting" and "driverPod" not in st, st  # waits in DLI's starting, nothing half-started
    assert admitted(kubectl, ns, "three")["reason"] == "Pending"
    assert st["workload"] == {"name": "three-sparkbatch", "localQueue": "dli-queue"}, st["workload"]
    assert drivers(kubectl, ns, "three") == [] and not kubectl.list("configmaps", ns, "lakejob.io/name=three")
    assert ("Normal", "Queued") in events(kubectl, ns, "three")

    st = wait_state(kubectl, "one", ns, "success", timeout=90)
    kubectl.wait_for(lambda: queue.condition("one-sparkbatch", "Finished").get("status") == "True",
                     "the first job's Workload to be Finished", 30, ns, ("workloads.kueue.x-k8s.io", "one-sparkbatch"))
    # Its quota went to the third, which runs while the second still does.
    st = wait_state(kubectl, "three", ns, "running", "success", timeout=60)
    assert admitted(kubectl, ns, "three")["status"] == "True"
    assert status(kubectl, "two", ns)["state"] == "running"
    assert drivers(kubectl, ns, "three") == ["three-driver-1"]
    for name in ("two", "three"):
        wait_state(kubectl, name, ns, "success", timeout=90)


@pytest.fixture
def priorities(kubectl: Kubectl, priority_classes: None) -> tuple[str, str]:
    """Two of the chart's PriorityClasses (installed by the fixture), low and high."""
    return "lakejob-priority-low", "lakejob-priority-high"


def test_a_high_priority_sparkbatch_preempts_a_low_one_which_is_reported_preempted_and_comes_back(
        kubectl: Kubectl, queue: Queue, operator: Operator, priorities: tuple[str, str]) -> None:
    ns, (low, high) = queue.namespace, priorities
    three_cus = {**TWO_CUS, "numExecutors": 2}
    kubectl.apply(batch("low", driver={"priorityClassName": low}, **three_cus), ns)  # runs until stopped
    wait_state(kubectl, "low", ns, "running", timeout=60)
    kubectl.apply(batch("high", "succeed", driver={"priorityClassName": high,
                                                   "annotations": {"sim.lakejob.io/delay": "5s"}}, **TWO_CUS), ns)
    kubectl.wait_for(lambda: status(kubectl, "low", ns).get("reason") == "Preempted",
                     "the low-priority job to be preempted", 60, ns, ("sparkbatch", "low"))
    st = status(kubectl, "low", ns)
    assert st["state"] == "starting" and st["workload"]["preemptions"] == 1, st
    assert admitted(kubectl, ns, "low")["reason"] == "Preempted"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Failed"] == "False"
    assert ("Normal", "Preempted") in events(kubectl, ns, "low")
    assert ("Warning", "Preempted") not in events(kubectl, ns, "low")
    # Its driver stopped, then its quota released: the high one runs and ends.
    wait_state(kubectl, "high", ns, "success", timeout=90)
    # The low one comes back as a new attempt; a preemption is not a retry.
    st = wait_state(kubectl, "low", ns, "running", timeout=90)
    assert st["attempt"] == 2 and st["driverPod"] == "low-driver-2", st
    assert "low-driver-1" not in drivers(kubectl, ns, "low")


@pytest.mark.real
@pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")
def test_a_real_sparkpi_is_admitted_whole_runs_and_finishes_its_workload(
        kubectl: Kubectl, real_queue: Queue, incluster_operator: tuple[str, str]) -> None:
    ns = real_queue.namespace
    kubectl.apply(sparkbatch("queued-pi", executors=1, **SPARK_PI, args=["2"], queue="real_queue"), ns)
    kubectl.wait_for(lambda: real_queue.admitted("queued-pi-sparkbatch"), "Kueue to admit the job", 60, ns,
                     ("sparkbatch", "queued-pi"))
    wl: dict[str, Any] = real_queue.get("queued-pi-sparkbatch") or {}
    # One Workload, the whole job: the driver and its executor, with the requests their pods will have.
    sets = {p["name"]: p for p in wl["spec"]["podSets"]}
    assert {n: p["count"] for n, p in sets.items()} == {"driver": 1, "executor": 1}, sets
    assert sets["executor"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
    assert wl["metadata"]["ownerReferences"][0]["name"] == "queued-pi"
    st = kubectl.wait_for(lambda: (s := status(kubectl, "queued-pi", ns)).get("state") in ("success", "dead") and s,
                          "the queued SparkPi to finish", JOB_TIMEOUT, ns, ("sparkbatch", "queued-pi"))
    assert st["state"] == "success", st
    assert any(line.startswith("Pi is roughly 3.1") for line in st["log"]), st["log"]
    assert admitted(kubectl, ns, "queued-pi")["status"] == "True"
    kubectl.wait_for(lambda: real_queue.condition("queued-pi-sparkbatch", "Finished").get("status") == "True",
                     "its Workload to be Finished (the quota freed)", 30, ns)
    kubectl.run("delete", "sparkbatch", "queued-pi", "-n", ns)
