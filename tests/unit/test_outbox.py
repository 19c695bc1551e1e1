"""controllers.base's notification outbox (issue 11: notifications pending when the operator stops
are not lost): queued in status by the pass's own write, delivered in order, each removed from
status once its endpoint took it; a delivery whose removal could not be written is sent again with
the same CloudEvent id (so a receiver can tell), and another operator resumes what one left.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from lakejob import kube as kubemod
from lakejob.controllers.base import OUTBOX_MAX, Key, Reconciler
from lakejob.notify import cloudevent
from lakejob.settings import Settings

KEY = ("ns", "a")


class Kube:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.fail_next = 0
        self.rv = 1

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> int:
        if self.fail_next:
            self.fail_next -= 1
            raise kubemod.KubeError(503, "unavailable", "write the status of X a")
        for k, v in patch.items():
            if v is None:
                self.status.pop(k, None)
            else:
                self.status[k] = v
        self.rv += 1
        return self.rv


class Receiver:
    def __init__(self, refuse: int = 0) -> None:
        self.ids: list[str] = []
        self.refuse = refuse

    async def deliver(self, url: str, event: dict[str, Any]) -> bool:
        self.ids.append(event["id"])
        if self.refuse:
            self.refuse -= 1
            return False
        return True


class Notifying(Reconciler):
    kind = "Notifying"
    plural = "notifyings"
    terminal_states = frozenset()

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        raise AssertionError("not used")

    def delivered(self, status: dict[str, Any], ok: bool) -> dict[str, Any]:
        return {**status, "sent": status.get("sent", 0) + 1, "ok": ok}


def reconciler(kube: Kube, receiver: Receiver) -> Notifying:
    r = Notifying(Settings(error_backoff_s=0.001), kube, lambda: 0, None, receiver)  # type: ignore[arg-type]
    r.bodies[KEY] = {"metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "1"}, "status": {}}
    return r


async def queue(r: Notifying, kube: Kube, *names: str) -> list[str]:
    """What a pass does: its status write carries the new entries."""
    events = [cloudevent(n, "/s", "a", {}) for n in names]
    await r.write_status(r.bodies[KEY], r.with_outbox(r.status_of(r.bodies[KEY]), [("http://h/x", e) for e in events]))
    return [e["id"] for e in events]


async def settle(r: Reconciler) -> None:
    while r._tasks:
        await asyncio.gather(*list(r._tasks))


async def test_entries_are_delivered_in_order_and_removed_from_status_once_sent() -> None:
    kube, receiver = Kube(), Receiver(refuse=1)
    r = reconciler(kube, receiver)
    ids = await queue(r, kube, "first", "second", "third")
    assert [json.loads(e["event"])["id"] for e in kube.status["outbox"]] == ids  # written before any delivery
    r._kick_outbox(KEY, "u")
    r._kick_outbox(KEY, "u")  # one task per CR, however often kicked
    await settle(r)
    assert receiver.ids == ids and "outbox" not in kube.status
    assert kube.status["sent"] == 3 and kube.status["ok"] is True


async def test_a_delivery_whose_removal_was_not_written_is_sent_again_with_the_same_id() -> None:
    kube, receiver = Kube(), Receiver()
    r = reconciler(kube, receiver)
    (first,) = await queue(r, kube, "first")
    kube.fail_next = 1  # the API refuses the removal once
    r._kick_outbox(KEY, "u")
    await settle(r)
    assert receiver.ids == [first, first] and "outbox" not in kube.status


async def test_a_new_operator_resumes_the_outbox_another_left() -> None:
    kube = Kube()
    old = reconciler(kube, Receiver())
    ids = await queue(old, kube, "first", "second")  # written, then the operator stops before sending
    receiver = Receiver()
    new = reconciler(kube, receiver)
    new.bodies[KEY] = {**new.bodies[KEY], "status": dict(kube.status)}  # what its watch lists
    new._kick_outbox(KEY, "u")
    await settle(new)
    assert receiver.ids == ids


async def test_the_outbox_is_bounded_keeping_the_newest() -> None:
    r = reconciler(Kube(), Receiver())
    status = r.with_outbox({}, [("http://h/x", cloudevent(str(i), "/s", "a", {})) for i in range(OUTBOX_MAX + 5)])
    kept = [json.loads(e["event"])["type"] for e in status["outbox"]]
    assert len(kept) == OUTBOX_MAX and kept[0] == "5" and kept[-1] == str(OUTBOX_MAX + 4)
