"""controllers.dagjob without a cluster: what it keeps of a Job, the queue of slots, endpoints."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lakejob.controllers.dagjob import (
    DagJobReconciler,
    _obs,
    endpoint_of,
    summarize_flinkjarjob,
    summarize_job,
    summarize_sparkbatch,
)
from lakejob.models.dagjob import DagJobSpec
from lakejob.controllers.dagjob_decide import ChildObs, JobObs, Note
from lakejob.policy import http_url
from lakejob.settings import Settings


def job_body(conditions: list[dict[str, str]], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "spec": {"completions": 3, "suspend": True},
            "status": {"conditions": conditions, **status}}


@pytest.mark.parametrize(("conditions", "outcome"), [
    ([], None),
    ([{"type": "SuccessCriteriaMet", "status": "True"}], "Complete"),
    ([{"type": "Complete", "status": "True"}], "Complete"),
    ([{"type": "FailureTarget", "status": "True", "message": "index 1 out of retries"}], "Failed"),
    ([{"type": "Failed", "status": "True", "reason": "FailedIndexes"}], "Failed"),
    ([{"type": "Suspended", "status": "True"}], None),
    ([{"type": "Complete", "status": "False"}], None),
])
def test_summarize_job_outcome(conditions: list[dict[str, str]], outcome: str | None) -> None:
    s = summarize_job(job_body(conditions, active=2, completedIndexes="0", failedIndexes="1"))
    assert s["outcome"] == outcome
    assert (s["completions"], s["active"], s["completed_indexes"], s["failed_indexes"], s["suspended"]) == \
        (3, 2, "0", "1", True)
    if outcome == "Failed":
        assert s["message"] in ("index 1 out of retries", "FailedIndexes")


def test_summarize_child() -> None:
    assert summarize_sparkbatch({"metadata": {"name": "c"}, "spec": {}, "status": {"state": "dead", "message": "m"}}) == \
        {"name": "c", "state": "dead", "message": "m", "suspended": False}
    # A FlinkJarJob's DLI state is status_name; its `state` is a phase ("Succeeded") decide cannot map.
    assert summarize_flinkjarjob({"metadata": {"name": "f"}, "spec": {"suspend": True},
                                  "status": {"status_name": "job_finish", "state": "Succeeded", "status_desc": "d"}}) == \
        {"name": "f", "state": "job_finish", "message": "d", "suspended": True}


@pytest.mark.parametrize(("url", "ok"), [
    ("http://127.0.0.1:8080/hook", True), ("https://hooks.example.com/x", True),
    ("http://[UserId].mns.[Region].aliyuncs.com/", False), ("mns://topic", False), ("", False), ("http://", False),
])
def test_http_url(url: str, ok: bool) -> None:
    assert http_url(url) is ok


def body(name: str, priority: int, created: str, state: str | None = None, suspend: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": "1",
                         "creationTimestamp": created},
            "spec": {"Priority": priority, **({"suspend": True} if suspend else {})},
            "status": {"State": state} if state else {}}


def reconciler(limit: int, *bodies: dict[str, Any]) -> DagJobReconciler:
    r = DagJobReconciler(Settings(dag_max_running=limit), None, lambda: 0, None, None)  # type: ignore[arg-type]
    r._spawn = lambda key: None  # type: ignore[method-assign]
    for b in bodies:
        r.cr_event("ADDED", b, {})  # as kopf hands each over: stored, and put in the slot queue
    return r


def test_slots_go_to_the_highest_priority_then_the_oldest() -> None:
    low = body("low", 1, "2026-01-01T00:00:00Z", "Waiting")
    high_new = body("high-new", 900, "2026-01-01T00:00:09Z", "Waiting")
    high_old = body("high-old", 900, "2026-01-01T00:00:05Z", "Waiting")
    r = reconciler(1, low, high_new, high_old)
    assert not r._admitted("low", low) and not r._admitted("high-new", high_new)
    assert r._admitted("high-old", high_old)
    assert not r._admitted("high-new", high_new)  # the one slot is taken
    assert r._admitted("high-old", high_old)  # and kept by its holder


def test_a_freed_slot_wakes_only_the_waiting_job_it_admits() -> None:
    """Waking every waiting DagJob per freed slot was a pass each, each sorting all of them: O(n²)
    per release at scale. The slot's best taker alone is woken; the others wait for their turn."""
    done = body("done", 0, "2026-01-01T00:00:00Z", "Finished")
    waiting = [body(f"w{i}", i % 3, f"2026-01-01T00:00:{i + 10}Z", "Waiting") for i in range(6)]
    r = reconciler(1, done, *waiting)
    r._slots_held.add("done")
    woken: list[tuple[str, str]] = []
    r._spawn = woken.append  # type: ignore[method-assign]
    r._release("done")
    assert woken == [("ns", "w2")]  # the highest priority (2), then the oldest of those (w2 before w5)
    r._release("done")  # not held any more: nothing to give back
    assert woken == [("ns", "w2")]


def test_with_every_slot_held_a_waiting_job_is_refused_without_ranking_the_queue() -> None:
    """Ranking the waiting DagJobs is O(n log n); with thousands waiting it was most of a pass."""
    running = body("running", 0, "2026-01-01T00:00:00Z", "Running")
    waiting = body("waiting", 1000, "2026-01-01T00:00:01Z", "Waiting")
    r = reconciler(1, running, waiting)
    assert r._admitted("running", running)

    def ranked() -> tuple[set[str], list[str]]:
        raise AssertionError("the queue was ranked")
    r._queue = ranked  # type: ignore[method-assign]
    assert not r._admitted("waiting", waiting)


class _StatusWrites:
    async def patch_status(self, *args: Any) -> int:
        return 2  # the resourceVersion after the write: newer than the stored bodies' "1"


async def test_the_slot_queue_follows_status_writes_and_deletions_without_reading_every_status() -> None:
    a = body("a", 0, "2026-01-01T00:00:00Z", "Waiting")
    b = body("b", 0, "2026-01-01T00:00:01Z", "Waiting")
    c = body("c", 0, "2026-01-01T00:00:02Z", "Waiting")
    r = reconciler(1, a, b, c)
    r.kube = _StatusWrites()  # type: ignore[assignment]
    woken: list[tuple[str, str]] = []
    r._spawn = woken.append  # type: ignore[method-assign]
    real_status_of, read = r.status_of, []
    r.status_of = lambda body: read.append(body["metadata"]["name"]) or real_status_of(body)  # type: ignore
    assert r._admitted("a", a) and not r._admitted("b", b)
    assert read == ["a", "b"]  # each its own status only: the queue is not found by reading the others'
    r.status_of = real_status_of  # type: ignore[method-assign]
    await r.write_status(a, {"State": "Running"})  # its pass's write: Running before the watch says so
    assert r._running == {"a"} and "a" not in r._waiting
    await r.write_status(a, {"State": "Finished"})
    r._release("a")
    assert woken == [("ns", "b")] and not r._running  # the oldest waiting one takes the freed slot
    r.cr_event("DELETED", b, {})  # deleted before its pass: the slot goes to the next
    r._release("b")
    assert set(r._waiting) == {"c"} and r._admitted("c", c)


def test_running_jobs_hold_their_slots_after_a_restart() -> None:
    running = body("running", 0, "2026-01-01T00:00:00Z", "Running")
    waiting = body("waiting", 1000, "2026-01-01T00:00:01Z", "Waiting")
    r = reconciler(1, running, waiting)
    assert not r._admitted("waiting", waiting) and r._admitted("running", running)


def test_a_suspended_job_does_not_queue() -> None:
    stopped = body("stopped", 1000, "2026-01-01T00:00:00Z", "Stopped", suspend=True)
    other = body("other", 1, "2026-01-01T00:00:01Z", "Waiting")
    r = reconciler(1, stopped, other)
    assert not r._admitted("stopped", stopped) and r._admitted("other", other)


def test_jobs_in_namespace_counts_those_created_up_to_this_one() -> None:
    a, b, c = (body(n, 0, f"2026-01-01T00:00:0{i}Z") for i, n in enumerate("abc"))
    elsewhere = {**body("x", 0, "2026-01-01T00:00:00Z"), "metadata": {
        **body("x", 0, "2026-01-01T00:00:00Z")["metadata"], "namespace": "other"}}
    r = reconciler(10, c, a, elsewhere, b, b, c)  # seen in any order, each again on its status writes
    assert [r._jobs_in_namespace(x) for x in (a, b, c, elsewhere)] == [1, 2, 3, 1]
    r.cr_event("DELETED", a, {})
    assert [r._jobs_in_namespace(x) for x in (b, c)] == [1, 2]
    r.cr_event("DELETED", elsewhere, {})
    assert "other" not in r._arrivals  # no empty order kept per namespace that had DagJobs


def test_summaries_of_children_created_but_not_yet_watched_become_observations() -> None:
    """children() adds its own bookkeeping ("index") to what the operator created itself."""
    job = {**summarize_job(job_body([])), "index": "dagjob_jobs"}
    assert _obs(JobObs, job) == JobObs(name="j", completions=3, suspended=True)
    child = {**summarize_sparkbatch({"metadata": {"name": "c"}}), "index": "dagjob_sparkbatches"}
    assert _obs(ChildObs, child) == ChildObs(name="c", state=None)


def spec_with_topic(**topic: Any) -> DagJobSpec:
    return DagJobSpec.model_validate({"Name": "n", "Priority": 0, "Type": "DAG", "JobFailOnInstanceFail": True,
                                      "DAG": {"Tasks": {"A": {"sparkBatch": {"file": "local:///a.py"}}}},
                                      "Notification": {"Topic": topic}})


@pytest.mark.parametrize(("topic", "topics", "expected"), [
    ({"Endpoint": "http://h/x"}, {}, "http://h/x"),
    ({"Endpoint": "http://h/x", "Name": "t"}, {"t": "http://other/"}, "http://h/x"),
    # BatchCompute's MNS template is no URL: the operator's mapping of the topic's name decides
    ({"Endpoint": "http://[UserId].mns.[Region].aliyuncs.com/", "Name": "test-topic"},
     {"test-topic": "https://hooks.example/dag"}, "https://hooks.example/dag"),
    ({"Endpoint": "http://[UserId].mns.[Region].aliyuncs.com/", "Name": "test-topic"}, {}, None),
    ({"Name": "t"}, {"t": "not a url"}, None),
    ({}, {}, None),
])
def test_endpoint_of(topic: dict[str, str], topics: dict[str, str], expected: str | None) -> None:
    assert endpoint_of(spec_with_topic(**topic), Settings(notification_topics=topics)) == expected


class _SilentNotifier:
    """A notifier whose endpoint never answers: every delivery waits."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def deliver(self, url: str, event: dict[str, Any]) -> bool:
        self.sent.append(event)
        await asyncio.Event().wait()
        return True


async def test_stop_ends_a_delivery_still_waiting_for_its_endpoint() -> None:
    notifier = _SilentNotifier()
    r = DagJobReconciler(Settings(), None, lambda: 0, None, notifier)  # type: ignore[arg-type]
    b = body("told", 0, "2026-01-01T00:00:00Z")
    b["status"] = r.with_outbox({}, r._notifications(b, spec_with_topic(Endpoint="http://127.0.0.1:9/x"),
                                                    [Note("OnJobWaiting", "waiting")]))
    r.bodies[("ns", "told")] = b
    r._kick_outbox(("ns", "told"), "told")
    await asyncio.sleep(0)
    (delivery,) = r._tasks
    assert len(notifier.sent) == 1 and notifier.sent[0]["type"] == "io.lakejob.dagjob.OnJobWaiting"
    await r.stop()
    assert delivery.cancelled() and not r._tasks
