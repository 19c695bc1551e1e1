"""SparkSession through Kueue (issue 16, docs/queues.md, docs/sparksession.md "Queues"): Kueue's
manager built from Go modules and run out of cluster (tests/e2e/kueue.py), sessions naming a queue.

KWOK plays the drivers and, as in test_sparksession.py, a small HTTP server answers for their Spark
REST APIs (an operator of this module's own is pointed at it), so that a session reaches `idle`:
- a queue of 4 CUs: a session of 3 CUs is admitted whole (driver ×1 + executor ×2) and idles; a
  second of 2 CUs waits in `not_started` with Kueue's reason in its Admitted condition and no
  driver or Service; deleting the first (its Workload goes with it) lets the second run;
  stopping that one Finishes its Workload;
- a high-priority session preempts an idle low-priority one, which is reported Preempted (its
  in-memory state lost, not an error), waits in `not_started`, and comes back with a new driver
  (attempt 2) once the high one is deleted.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import kueue as kueue_mod
from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.kueue import Kueue, Queue, condition
from tests.e2e.test_sparksession import FakeRest, children, reasons, rest_operator, session, status, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.kueue]

RUN = "kss"  # this module's namespaces (kss-XXXXXX), watched by its own operator
# A driver and `numExecutors` executors of 1 core and 2g (+384m overhead) each: one CU apiece.
SIZE = {"driverCores": 1, "driverMemory": "2g", "executorCores": 1, "executorMemory": "2g",
        "cluster_name": "dli_queue",  # the LocalQueue dli-queue, by the documented rule
        "heartbeatTimeoutInSecond": 0}  # no idle timeout: the first holds its quota until deleted


@pytest.fixture(scope="module")
def queued_operator(kubeconfig: str, crds_installed: None, kueue: Kueue,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """After Kueue (an operator must find its CRDs at its start), before Kueue's end."""
    rest = FakeRest()
    op = rest_operator(kubeconfig, f"{RUN}-*", tmp_path_factory.mktemp("kss-operator") / "operator.log", rest)
    op.start()
    yield op
    op.stop()
    rest.server.shutdown()


@pytest.fixture
def session_queue(kubectl: Kubectl, kueue: Kueue) -> Iterator[Queue]:
    """A queue of 4 CUs (LocalQueue dli-queue) in a namespace of the module's operator."""
    ns = kubectl.fresh_namespace(RUN)
    try:
        yield from kueue_mod.local_queue(kubectl, ns, {"cpu": "4", "memory": "16Gi"})
    finally:
        kubectl.ok("delete", "namespace", ns, "--wait=false")


def admitted(kubectl: Kubectl, ns: str, name: str) -> dict[str, str]:
    return {k: v for k, v in condition({"status": status(kubectl, name, ns)}, "Admitted").items()
            if k in ("status", "reason", "message")}


def test_a_4_cu_queue_holds_a_second_session_until_the_first_is_deleted(
        kubectl: Kubectl, session_queue: Queue, queued_operator: Operator) -> None:
    q, ns = session_queue, session_queue.namespace
    kubectl.apply(session("one", numExecutors=2, **SIZE), ns)  # 3 CUs
    st = wait_state(kubectl, "one", ns, "idle", timeout=90)
    assert admitted(kubectl, ns, "one")["status"] == "True"
    assert st["workload"]["name"] == "one-sparksession" and st["workload"]["admitted"] is True, st
    wl = q.get("one-sparksession") or {}
    assert {p["name"]: p["count"] for p in wl["spec"]["podSets"]} == {"driver": 1, "executor": 2}, wl["spec"]
    assert wl["metadata"]["ownerReferences"][0]["name"] == "one"

    kubectl.apply(session("two", numExecutors=1, **SIZE), ns)  # 2 CUs: 5 > 4
    kubectl.wait_for(lambda: "insufficient unused quota" in admitted(kubectl, ns, "two").get("message", ""),
                     "the second session to wait with Kueue's reason", 60, ns, ("sparksession", "two"))
    st = status(kubectl, "two", ns)
    assert st["state"] == "not_started" and "driverPod" not in st and "connectUrl" not in st, st
    assert admitted(kubectl, ns, "two")["reason"] == "Pending"
    assert st["workload"] == {"name": "two-sparksession", "localQueue": "dli-queue"}, st["workload"]
    assert all(kubectl.get(kind, child, ns) is None for kind, child in children("two")), "nothing half-started"
    assert "Queued" in reasons(kubectl, "two", ns)
    assert status(kubectl, "one", ns)["state"] == "idle"

    # The first deleted: its Workload goes with it (owned), Kueue admits the second.
    kubectl.run("delete", "ss", "one", "-n", ns, "--wait=true", "--timeout=30s")
    st = wait_state(kubectl, "two", ns, "idle", timeout=90)
    assert admitted(kubectl, ns, "two")["status"] == "True" and st["attempt"] == 1, st
    assert kubectl.get("pod", "two-session-1", ns) is not None
    assert {"Queued", "Admitted", "DriverCreated", "Idle"} <= set(reasons(kubectl, "two", ns))

    # Its end (a stop) Finishes its Workload: the quota is free again.
    kubectl.run("patch", "ss", "two", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_state(kubectl, "two", ns, "success", timeout=60)
    kubectl.wait_for(lambda: q.condition("two-sparksession", "Finished").get("status") == "True",
                     "the stopped session's Workload to be Finished", 30, ns,
                     ("workloads.kueue.x-k8s.io", "two-sparksession"))


def test_a_high_priority_session_preempts_a_low_one_which_waits_and_comes_back_with_a_new_driver(
        kubectl: Kubectl, session_queue: Queue, queued_operator: Operator, priority_classes: None) -> None:
    ns = session_queue.namespace
    kubectl.apply(session("low", numExecutors=2, driver={"priorityClassName": "lakejob-priority-low"}, **SIZE), ns)
    wait_state(kubectl, "low", ns, "idle", timeout=90)
    kubectl.apply(session("high", numExecutors=1, driver={"priorityClassName": "lakejob-priority-high"}, **SIZE), ns)
    kubectl.wait_for(lambda: status(kubectl, "low", ns).get("reason") == "Preempted",
                     "the low-priority session to be preempted", 60, ns, ("sparksession", "low"))
    st = status(kubectl, "low", ns)
    assert st["state"] == "not_started" and st["workload"]["preemptions"] == 1 and "connectUrl" not in st, st
    assert "in-memory state is lost" in st["message"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Failed"] == "False"
    assert admitted(kubectl, ns, "low")["reason"] in ("Preempted", "Pending")  # released: waiting again
    # Its driver stopped and its quota released: the high one runs.
    wait_state(kubectl, "high", ns, "idle", timeout=90)
    assert status(kubectl, "low", ns)["state"] == "not_started"
    assert kubectl.get("pod", "low-session-2", ns) is None
    # The high one gone, the low one comes back with a new driver (not a recovery).
    kubectl.run("delete", "ss", "high", "-n", ns, "--wait=true", "--timeout=30s")
    st = wait_state(kubectl, "low", ns, "idle", timeout=90)
    assert st["attempt"] == 2 and st["driverPod"] == "low-session-2" and st["reason"] != "Recovering", st
