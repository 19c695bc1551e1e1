"""DagJob command tasks through Kueue (issue 16, docs/queues.md): Kueue's manager built from Go modules
and run out of cluster (tests/e2e/kueue.py), the session operator, KWOK playing the tasks' pods (as in
test_dagjob.py).

In a queue of 4 CUs, a DagJob with two independent command tasks in ClusterId `dli-queue` (the
LocalQueue dli-queue by the rule), each instance asking 3 CUs: one task's Workload is admitted and its
Job runs while the other task waits (Waiting, Admitted False with Kueue's reason, no Job); when the first
finishes its Workload is Finished, the second is admitted and runs, and the DagJob Finishes.
A stopped DagJob (spec.suspend) holds no quota: its running task's Job is suspended, then its
Workload deactivated and released, and another DagJob waiting in the queue runs; resumed, the
Workload queues again and the same Job finishes (docs/queues.md, "A stop"). A high-priority DagJob
preempts a low one's running task: the task waits again (Preempted, not a failure), its Job suspended,
and once the high one is done the same Job continues and the low DagJob Finishes.
On the real node, with the operator installed by Helm: two real command tasks (test_dagjob_real_node's
package, fetched from the object store) in a queue with room for one run one after the other.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import test_dagjob_real_node as dag_real
from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.kueue import Queue
from tests.e2e.objectstore import ObjectStore
from tests.e2e.real import REAL_NODE
from tests.e2e.test_dagjob import command, dagjob, jobs, status, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.kueue]


@pytest.fixture(scope="module", autouse=True)
def _priority_classes(priority_classes: None) -> None:
    """Every DagJob pod names one of the chart's PriorityClasses."""


prefix = dag_real.prefix  # the fixture: a fresh prefix in the DAG bucket holding the tasks' package


def task(delay: str) -> dict[str, Any]:
    return command(delay=delay, ClusterId="dli-queue", resources={"cpu": "3", "memory": "12Gi"})


def admitted(t: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in t.get("conditions") or () if c["type"] == "Admitted"), {})


def test_two_tasks_in_a_full_queue_run_one_after_another(kubectl: Kubectl, queue: Queue, operator: Operator) -> None:
    ns = queue.namespace
    kubectl.apply(dagjob("queued", {"a": task("6s"), "b": task("6s")}), ns)

    def one_runs_one_waits() -> Any:
        tasks = status(kubectl, "queued", ns).get("Tasks") or {}
        states = sorted((t.get("State"), n) for n, t in tasks.items())
        if [s for s, _ in states] != ["Running", "Waiting"]:
            return None
        waiting = next(n for s, n in states if s == "Waiting")
        if "insufficient unused quota" not in admitted(tasks[waiting]).get("message", ""):
            return None
        return tasks, next(n for s, n in states if s == "Running"), waiting

    tasks, first, second = kubectl.wait_for(one_runs_one_waits, "one task to run and the other to wait for Kueue",
                                            90, ns, ("dagjob", "queued"))
    assert admitted(tasks[first])["status"] == "True", tasks[first]
    assert admitted(tasks[second])["reason"] == "Pending", tasks[second]
    assert "insufficient unused quota" in (tasks[second].get("Message") or ""), tasks[second]
    assert list(jobs(kubectl, ns)) == [first], "no Job for the waiting task"
    wl = queue.get(tasks[first]["workload"]["name"]) or {}
    assert wl["spec"]["queueName"] == "dli-queue" and wl["spec"]["priority"] == 100, wl["spec"]
    (pod_set,) = wl["spec"]["podSets"]
    assert pod_set["name"] == "task" and pod_set["count"] == 1, pod_set
    assert pod_set["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "3", "memory": "12Gi"}
    assert wl["metadata"]["labels"]["lakejob.io/name"] == "queued" and wl["metadata"]["labels"]["lakejob.io/task"] == first
    assert queue.pending(tasks[second]["workload"]["name"])

    st = wait_state(kubectl, "queued", ns, "Finished", "Failed", timeout=120)
    assert st["State"] == "Finished", st
    assert sorted(jobs(kubectl, ns)) == ["a", "b"]
    for t in st["Tasks"].values():
        assert queue.condition(t["workload"]["name"], "Finished").get("status") == "True", t
    first_end = st["Tasks"][first]["EndTime"]
    assert st["Tasks"][second]["StartTime"] >= first_end, st["Tasks"]


def test_a_stopped_dagjob_gives_its_quota_back_and_its_resume_queues_the_same_job_again(
        kubectl: Kubectl, queue: Queue, operator: Operator) -> None:
    ns = queue.namespace

    def task_of(name: str, task: str) -> dict[str, Any]:
        return dict((status(kubectl, name, ns).get("Tasks") or {}).get(task) or {})

    kubectl.apply(dagjob("first", {"a": task("20s")}), ns)
    kubectl.wait_for(lambda: task_of("first", "a").get("State") == "Running", "the first DagJob's task to run", 60, ns,
                     ("dagjob", "first"))
    wl = task_of("first", "a")["workload"]["name"]
    kubectl.apply(dagjob("second", {"n": task("3s")}), ns)  # 3 more CUs: 6 > 4
    kubectl.wait_for(lambda: "insufficient unused quota" in (task_of("second", "n").get("Message") or ""),
                     "the second DagJob to wait for quota", 60, ns, ("dagjob", "second"))

    kubectl.run("patch", "dagjob", "first", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_state(kubectl, "first", ns, "Stopped")
    kubectl.wait_for(lambda: (queue.get(wl) or {}).get("spec", {}).get("active") is False
                     and queue.condition(wl, "QuotaReserved").get("status") == "False",
                     "the stopped task's Workload to be deactivated and released", 60, ns,
                     ("workloads.kueue.x-k8s.io", wl))
    assert queue.condition(wl, "Evicted")["reason"] == "Deactivated", queue.get(wl)
    job = jobs(kubectl, ns)["a"]
    assert job["spec"]["suspend"] is True  # kept, with its instances' progress, for the resume
    assert wait_state(kubectl, "second", ns, "Finished", "Failed", timeout=90)["State"] == "Finished"

    kubectl.run("patch", "dagjob", "first", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    st = wait_state(kubectl, "first", ns, "Finished", "Failed", timeout=120)
    assert st["State"] == "Finished", st
    assert (queue.get(wl) or {})["spec"]["active"] is True
    assert queue.condition(wl, "Finished").get("status") == "True", queue.get(wl)
    assert jobs(kubectl, ns)["a"]["metadata"]["uid"] == job["metadata"]["uid"]  # the same Job continued
    assert not st["Tasks"]["a"]["workload"].get("preemptions"), st["Tasks"]["a"]  # a stop, not a preemption


def test_a_high_priority_dagjob_preempts_a_low_ones_task_which_waits_and_continues_with_the_same_job(
        kubectl: Kubectl, queue: Queue, operator: Operator) -> None:
    ns = queue.namespace

    def task_of(name: str, task: str) -> dict[str, Any]:
        return dict((status(kubectl, name, ns).get("Tasks") or {}).get(task) or {})

    kubectl.apply(dagjob("low", {"l": task("20s")}, Priority=100), ns)
    kubectl.wait_for(lambda: task_of("low", "l").get("State") == "Running", "the low DagJob's task to run", 60, ns,
                     ("dagjob", "low"))
    job = jobs(kubectl, ns)["l"]
    kubectl.apply(dagjob("high", {"h": task("3s")}, Priority=900), ns)  # 3 more CUs: 6 > 4, Kueue preempts

    def preempted() -> Any:
        t = task_of("low", "l")
        return t.get("State") == "Waiting" and (t.get("workload") or {}).get("preemptions") == 1 and t
    t = kubectl.wait_for(preempted, "the low task to be preempted", 60, ns, ("dagjob", "low"))
    assert admitted(t)["reason"] == "Preempted", t
    assert status(kubectl, "low", ns)["State"] == "Running", "a preemption is not the DagJob's failure"
    assert wait_state(kubectl, "high", ns, "Finished", "Failed", timeout=90)["State"] == "Finished"
    st = wait_state(kubectl, "low", ns, "Finished", "Failed", timeout=120)
    assert st["State"] == "Finished", st
    assert jobs(kubectl, ns)["l"]["metadata"]["uid"] == job["metadata"]["uid"]  # the same Job continued
    assert st["Tasks"]["l"]["workload"]["preemptions"] == 1 and st["Tasks"]["l"]["Run"] == 1, st["Tasks"]["l"]
    events = [e["reason"] for e in kubectl.list("events", ns) if e["involvedObject"].get("name") == "low"]
    assert "TaskPreempted" in events, events


@pytest.mark.real
@pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")
def test_two_real_command_tasks_in_a_queue_with_room_for_one_run_one_after_the_other(
        kubectl: Kubectl, real_queue: Queue, incluster_operator: tuple[str, str], object_store: ObjectStore,
        prefix: str) -> None:
    ns, bucket = real_queue.namespace, dag_real.BUCKET
    object_store.client().put_object(Bucket=bucket, Key=f"{prefix}/in/numbers.txt", Body=b"1 2 3 4\n")
    # 600m each in the queue's 1 cpu: one at a time.
    tasks = {name: {**dag_real.task("a", prefix, {f"oss://{bucket}/{prefix}/in/": "/data/in/"}),
                    "ClusterId": "real-queue", "resources": {"cpu": "600m", "memory": "1Gi"}} for name in ("x", "y")}
    kubectl.apply(dagjob("queued-real", tasks), ns)
    try:
        st = wait_state(kubectl, "queued-real", ns, "Finished", "Failed", timeout=dag_real.DAG_TIMEOUT)
        assert st["State"] == "Finished", st
        t = st["Tasks"]
        first, second = sorted(t, key=lambda n: t[n]["StartTime"])
        assert t[second]["StartTime"] >= t[first]["EndTime"], t  # the second waited for the first's quota
        uid = (kubectl.get("dagjob", "queued-real", ns) or {})["metadata"]["uid"]
        for name in ("x", "y"):
            out = dag_real.read(object_store, f"{prefix}/logs/stdout.{uid}.{name}.0")
            assert out.startswith("a[0] of queued-real: 10"), out  # the real command ran, its output uploaded
            assert admitted(t[name])["status"] == "True", t[name]
            assert real_queue.condition(t[name]["workload"]["name"], "Finished").get("status") == "True"
    finally:
        kubectl.run("delete", "dagjob", "queued-real", "-n", ns, "--wait=false")
