"""FlinkJarJob through Kueue (issue 16, docs/queues.md): Kueue's manager built from Go modules and run
out of cluster (tests/e2e/kueue.py), the session operator, jobs naming a queue_name.

KWOK plays the JobManager and the TaskManagers (as in test_flinkjarjob.py: a JobManager without a
sim.lakejob.io/outcome label keeps running), which is all Kueue decides on. In a queue of 4 CUs:
- a FlinkJarJob of 3 CUs is admitted as a whole unit: one Workload with podSets jobmanager ×1 and
  taskmanager ×2, the pods' own requests, and then its pods run;
- a second one of 2 CUs does not fit: it waits in job_submitting (phase Pending) with Kueue's reason in
  its Admitted condition and no JobManager, TaskManager, ConfigMap or Service; stopping the first
  (spec.suspend) finishes its Workload, and the second is admitted and runs.
The last test runs a real Flink job on the real node through a queue, the operator installed by Helm
(as tests/e2e/test_flinkjarjob_real_node.py runs it): admitted whole, counting, stopped, Finished.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.kueue import Queue, condition
from tests.e2e.test_flinkjarjob import job, pods, status, wait_status
from tests.e2e.test_flinkjarjob_real_node import counts, flinkjarjob, jar_configmap, job_pods, running
from tests.e2e.test_flinkjarjob_real_node import pytestmark as real_flink_marks
from tests.e2e.test_flinkjarjob_real import compile_job

pytestmark = [pytest.mark.e2e, pytest.mark.kueue]


def admitted(kubectl: Kubectl, ns: str, name: str) -> dict[str, str]:
    return {k: v for k, v in condition({"status": status(kubectl, name, ns)}, "Admitted").items()
            if k in ("status", "reason", "message")}


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    return [(e["type"], e["reason"]) for e in kubectl.list("events", ns) if e["involvedObject"].get("name") == name]


def requests(pod_set: dict[str, Any]) -> dict[str, str]:
    return dict(pod_set["template"]["spec"]["containers"][0]["resources"]["requests"])


def test_a_flinkjarjob_is_admitted_whole_and_a_second_waits_in_a_full_queue_with_kueues_reason(
        kubectl: Kubectl, queue: Queue, operator: Operator) -> None:
    ns = queue.namespace
    # 3 CUs: the JobManager (1 CU) and two TaskManagers of 1 CU; the LocalQueue dli-queue by the rule.
    kubectl.apply(job("whole", cu_number=3, queue_name="dli_queue"), ns)
    kubectl.wait_for(lambda: admitted(kubectl, ns, "whole").get("status") == "True", "the job to be admitted", 60, ns,
                     ("flinkjarjob", "whole"))
    wl: dict[str, Any] = queue.get("whole-flinkjarjob") or {}
    sets = {p["name"]: p for p in wl["spec"]["podSets"]}
    assert {n: p["count"] for n, p in sets.items()} == {"jobmanager": 1, "taskmanager": 2}, sets
    for p in sets.values():  # the pods' own requests (1 CU = 1 vCPU + 4 GiB)
        assert requests(p)["cpu"] == "1" and requests(p)["memory"] in ("4096Mi", "4Gi"), p
    assert wl["spec"]["queueName"] == "dli-queue" and wl["metadata"]["ownerReferences"][0]["name"] == "whole"
    assert queue.condition("whole-flinkjarjob", "QuotaReserved").get("status") == "True"
    st = wait_status(kubectl, "whole", ns, "job_running")
    assert st["workload"]["admitted"] is True and st["workload"]["clusterQueue"] == queue.cluster_queue, st
    assert [p["metadata"]["name"] for p in pods(kubectl, ns, "whole", "jobmanager")] == ["whole-jm-1"]
    kubectl.wait_for(lambda: len(pods(kubectl, ns, "whole", "taskmanager")) == 2, "its two TaskManagers", 60, ns)
    assert ("Normal", "Queued") in events(kubectl, ns, "whole") and ("Normal", "Admitted") in events(kubectl, ns, "whole")

    # 2 more CUs do not fit in the 1 left: it waits, with Kueue's reason, and nothing of it exists.
    kubectl.apply(job("second", queue_name="dli_queue"), ns)
    kubectl.wait_for(lambda: "insufficient unused quota" in admitted(kubectl, ns, "second").get("message", ""),
                     "the second job to wait with Kueue's reason", 60, ns, ("flinkjarjob", "second"))
    st = status(kubectl, "second", ns)
    assert (st["status_name"], st["state"]) == ("job_submitting", "Pending") and "jobManagerPod" not in st, st
    assert admitted(kubectl, ns, "second")["reason"] == "Pending"
    assert st["workload"] == {"name": "second-flinkjarjob", "localQueue": "dli-queue"}, st["workload"]
    assert queue.pending("second-flinkjarjob")
    assert not kubectl.list("pods", ns, "lakejob.io/name=second")
    for kind in ("configmaps", "services", "replicasets"):
        assert not kubectl.list(kind, ns, "lakejob.io/name=second"), kind
    assert ("Normal", "Queued") in events(kubectl, ns, "second")

    # DLI's stop of the first: its Workload Finished, its quota goes to the second, which runs.
    kubectl.run("patch", "flinkjarjob", "whole", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_status(kubectl, "whole", ns, "job_cancel_success")
    kubectl.wait_for(lambda: queue.condition("whole-flinkjarjob", "Finished").get("status") == "True",
                     "the first job's Workload to be Finished", 30, ns, ("workloads.kueue.x-k8s.io", "whole-flinkjarjob"))
    st = wait_status(kubectl, "second", ns, "job_running", timeout=90)
    assert admitted(kubectl, ns, "second")["status"] == "True" and st["jobManagerPod"] == "second-jm-1", st


@pytest.fixture
def priorities(kubectl: Kubectl, priority_classes: None) -> tuple[str, str]:
    """Two of the chart's PriorityClasses (installed by the fixture), low and high."""
    return "lakejob-priority-low", "lakejob-priority-high"


def test_a_high_priority_flinkjarjob_preempts_a_low_one_which_is_reported_preempted_and_comes_back(
        kubectl: Kubectl, queue: Queue, operator: Operator, priorities: tuple[str, str]) -> None:
    ns, (low, high) = queue.namespace, priorities
    kubectl.apply(job("low", cu_number=3, queue_name="dli_queue", jm={"priorityClassName": low}), ns)  # runs on
    wait_status(kubectl, "low", ns, "job_running")
    kubectl.apply(job("high", "succeed", delay="5s", queue_name="dli_queue", jm={"priorityClassName": high}), ns)
    kubectl.wait_for(lambda: status(kubectl, "low", ns).get("reason") == "Preempted",
                     "the low-priority job to be preempted", 60, ns, ("flinkjarjob", "low"))
    st = status(kubectl, "low", ns)
    assert (st["status_name"], st["state"]) == ("job_submitting", "Pending") and st["workload"]["preemptions"] == 1, st
    assert admitted(kubectl, ns, "low")["reason"] == "Preempted"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Failed"] == "False"
    assert ("Normal", "Preempted") in events(kubectl, ns, "low")
    assert ("Warning", "Preempted") not in events(kubectl, ns, "low")
    # Its JobManager and TaskManagers deleted, then its quota released: the high one runs and ends.
    wait_status(kubectl, "high", ns, "job_finish", timeout=90)
    # The low one comes back as a new attempt, not a restart.
    st = wait_status(kubectl, "low", ns, "job_running", timeout=90)
    assert st["attempt"] == 2 and st["jobManagerPod"] == "low-jm-2" and st.get("restarts", 0) == 0, st
    assert [p["metadata"]["name"] for p in pods(kubectl, ns, "low", "jobmanager")] == ["low-jm-2"]


@pytest.fixture(scope="module")
def tiny_jar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return compile_job(tmp_path_factory.mktemp("tiny")).read_bytes()


def real_flink(test: Callable[..., None]) -> Callable[..., None]:
    """Marked `real` and skipped without what test_flinkjarjob_real_node.py needs (the real node,
    flink-dist, javac): that module's own marks."""
    for mark in real_flink_marks:
        test = mark(test) if mark.name != "e2e" else test
    return test


@real_flink
def test_a_real_flink_job_is_admitted_whole_runs_on_the_real_node_and_its_stop_finishes_its_workload(
        kubectl: Kubectl, real_queue: Queue, incluster_operator: tuple[str, str], tiny_jar: bytes) -> None:
    ns, name = real_queue.namespace, "fjj-queued"
    jar_configmap(kubectl, ns, f"{name}-jar", tiny_jar)
    kubectl.apply(flinkjarjob(name, f"{name}-jar", queue_name="real_queue"), ns)
    wl_name = f"{name}-flinkjarjob"
    kubectl.wait_for(lambda: real_queue.admitted(wl_name), "Kueue to admit the job", 60, ns, ("flinkjarjob", name))
    wl: dict[str, Any] = real_queue.get(wl_name) or {}
    # One Workload, the whole job: the JobManager and its TaskManager, with their pods' requests.
    sets = {p["name"]: p for p in wl["spec"]["podSets"]}
    assert {n: p["count"] for n, p in sets.items()} == {"jobmanager": 1, "taskmanager": 1}, sets
    assert requests(sets["taskmanager"])["cpu"] == "100m", sets  # the chart's CU here (hack/incluster.py)
    st = running(kubectl, ns, name, 1)
    assert st["workload"]["admitted"] is True, st
    kubectl.wait_for(lambda: counts(kubectl, ns, name).get(st["job_id"]), "the job to count", timeout=120,
                     namespace=ns)
    # DLI's stop: Flink cancels the job, the pods go, the Workload is Finished (the quota freed).
    kubectl.run("patch", "flinkjarjob", name, "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_status(kubectl, name, ns, "job_cancel_success", timeout=120)
    kubectl.wait_for(lambda: real_queue.condition(wl_name, "Finished").get("status") == "True",
                     "its Workload to be Finished", 30, ns, ("workloads.kueue.x-k8s.io", wl_name))
    assert not job_pods(kubectl, ns, name)
    kubectl.run("delete", "flinkjarjob", name, "-n", ns)
    kubectl.run("delete", "configmap", f"{name}-jar", "-n", ns)
