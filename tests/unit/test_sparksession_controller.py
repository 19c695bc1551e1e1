"""controllers.sparksession without a cluster: what it keeps of a pod (the driver's readiness), how
its REST poller spaces the polls of a driver that does not answer, and what a session that ended
deletes."""
from __future__ import annotations

import time
from typing import Any

import pytest

from lakejob.controllers.sparksession import PODS, SparkSessionReconciler, _PollTrack, summarize_session_pod
from lakejob.controllers.sparksession_decide import Action
from lakejob.render.common import Owner
from lakejob.settings import Settings

APP = "spark-0123"


def pod(ready: str | None) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "PodScheduled", "status": "True"},
                                           {"type": "Ready", "status": ready}]
    return {"metadata": {"name": "nb-session-1", "labels": {"spark-role": "driver", "spark-app-selector": APP}},
            "status": {"phase": "Running", "conditions": conditions}}


@pytest.mark.parametrize(("ready", "expected"), [("True", True), ("False", False), (None, False)])
def test_the_pod_summary_says_whether_the_driver_is_ready(ready: str | None, expected: bool) -> None:
    summary = summarize_session_pod(pod(ready))
    assert summary["ready"] is expected and summary["role"] == "driver" and summary["phase"] == "Running"


class Silent:
    """A driver whose REST API does not answer (yet)."""

    async def get_json(self, url: str, timeout_s: float) -> Any:
        return None


@pytest.mark.parametrize(("state", "failures", "delay_s"), [
    ("starting", 0, 5.0),  # a starting JVM is polled every period: no back-off to delay `idle`
    ("idle", 1, 10.0),  # a live driver that stops answering is polled ever less often
])
async def test_a_silent_driver_backs_off_unless_it_is_starting(state: str, failures: int, delay_s: float) -> None:
    r = SparkSessionReconciler(Settings(session_poll_interval_s=5.0), None, lambda: 0, Silent(), None)  # type: ignore[arg-type]
    woken: list[Any] = []
    r._spawn = woken.append  # type: ignore[method-assign]
    key = ("team-a", "nb")
    track = _PollTrack()
    for _ in range(3 if state == "starting" else 1):
        before = time.monotonic()
        await r._poll_one(key, {"name": "nb", "namespace": "team-a"}, {"state": state, "appId": APP}, track)
    assert track.failures == failures
    assert before + delay_s <= track.next_at <= time.monotonic() + delay_s
    assert woken == [key]  # the first look is news; the same silence again is not


class Deletions:
    def __init__(self) -> None:
        self.deleted: list[tuple[str, str]] = []

    async def delete_child(self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str,
                           leave: Any = None) -> bool:
        assert (namespace, owner_uid) == ("team-a", "uid-1")
        self.deleted.append((kind, name))
        return True


async def test_a_session_that_ended_deletes_its_objects_and_the_failed_drivers_of_earlier_attempts() -> None:
    kube = Deletions()
    r = SparkSessionReconciler(Settings(driver_rbac="per-job"), kube, lambda: 0, None, None)  # type: ignore[arg-type]
    key = ("team-a", "nb")
    r.bodies[key] = {"metadata": {"name": "nb", "namespace": "team-a", "uid": "uid-1"}}
    r.indexes[PODS] = {key: [
        {"name": "nb-session-1", "role": "driver", "phase": "Failed"},  # a recovery left it for inspection
        {"name": "nb-s1-exec-1", "role": "executor", "phase": "Succeeded"},  # owned by it: the GC's
        {"name": "nb-session-2", "role": "driver", "phase": "Running", "deleting": True},  # being stopped
    ]}
    owner = Owner("lakejob.io/v1alpha1", "SparkSession", "nb", "team-a", "uid-1")
    action = r.other_action(Action("delete_children", 2), owner, None)
    assert action is not None
    await action
    assert sorted(kube.deleted) == [("Endpoints", "nb-session-svc"), ("Pod", "nb-session-1"),
                                    ("Role", "nb-session-sa"), ("RoleBinding", "nb-session-sa"),
                                    ("Service", "nb-session-svc"), ("ServiceAccount", "nb-session-sa")]
