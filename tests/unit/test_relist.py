"""controllers.base after a re-list: what kopf's new listing left out was deleted unseen.

kopf lists a resource again when its watch fails (410 Gone, an apiserver restart) and reports
nothing of the objects deleted in between; its indexes keep them. The reconciler forgets such CRs
and stops counting such children once a LIST confirms they are gone (tests/e2e/test_faults.py
provokes the real thing).
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lakejob.controllers import base
from lakejob.controllers.base import Key, Reconciler
from lakejob.settings import Settings

INDEX = "relisting_pods"


class FakeKube:
    """Answers the reconciler's LISTs with what exists now."""

    def __init__(self) -> None:
        self.crs: list[str] = []  # uids
        self.pods: list[str] = []
        self.lists: list[str] = []

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        self.lists.append(path)
        uids = self.pods if path.endswith("/pods") else self.crs
        return 200, {"items": [{"metadata": {"uid": u}} for u in uids]}

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.lists.append(f"GET {name}")
        return {"metadata": {"uid": f"u-{name}"}} if f"u-{name}" in self.crs else None


class Relisting(Reconciler):
    kind = "Relisting"
    plural = "relistings"
    terminal_states = frozenset({"done"})

    def __init__(self, kube: FakeKube) -> None:
        super().__init__(Settings(), kube, lambda: 0, None, None)  # type: ignore[arg-type]
        self.passes: list[Key] = []

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        self.passes.append(key)


def cr(name: str, state: str = "running") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": "1"},
            "status": {"state": state}}


def pod(name: str, parent: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "labels": {"lakejob.io/name": parent}}}


def entry(name: str, parent: str) -> dict[str, Any]:
    return {"name": name, "uid": f"u-{name}", "owner": f"u-{parent}"}


async def settle(r: Reconciler) -> None:
    await asyncio.sleep(base.LISTING_QUIET_S * 3)
    while r._tasks:
        await asyncio.gather(*list(r._tasks))


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "LISTING_QUIET_S", 0.05)
    monkeypatch.setitem(base.RESOURCES, INDEX, ("pods",))


async def test_a_relist_forgets_deleted_crs_and_stops_counting_deleted_children() -> None:
    kube = FakeKube()
    r = Relisting(kube)
    index = {("ns", "a"): [entry("a-driver-1", "a")], ("ns", "b"): [entry("b-driver-1", "b")]}
    # The start: everything listed once.
    kube.crs, kube.pods = ["u-a", "u-b", "u-c"], ["u-a-driver-1", "u-b-driver-1"]
    for name in ("a", "b", "c"):
        r.cr_event(None, cr(name, "done" if name == "c" else "running"), {INDEX: index})
    for p, parent in (("a-driver-1", "a"), ("b-driver-1", "b")):
        r.child_event(pod(p, parent), {INDEX: index}, {"name": p}, index=INDEX, listed=True)
    await settle(r)
    assert set(r.bodies) == {("ns", "a"), ("ns", "b"), ("ns", "c")} and not kube.lists  # nothing suspect
    # While the watch is down: b and its pod, the finished c, and a's driver are deleted.
    kube.crs, kube.pods = ["u-a"], []
    r.passes.clear()
    r.cr_event(None, cr("a"), {INDEX: index})  # the re-list names a alone (and no pod at all)
    await settle(r)
    assert set(r.bodies) == {("ns", "a")}  # b and the terminal c are forgotten
    assert r.children(INDEX, ("ns", "a")) == []  # a's deleted driver no longer counts…
    assert ("ns", "a") in r.passes  # …and a was woken to notice
    assert r.indexed(INDEX, ("ns", "b")) == []
    # A new pod of that name (another uid) counts again.
    index[("ns", "a")].append(entry("a-driver-1", "a") | {"uid": "u-a-driver-1-new"})
    r.child_event(pod("a-driver-1", "a") | {"metadata": {**pod("a-driver-1", "a")["metadata"],
                                                         "uid": "u-a-driver-1-new"}},
                  {INDEX: index}, {"name": "a-driver-1"}, index=INDEX)
    assert [c["uid"] for c in r.children(INDEX, ("ns", "a"))] == ["u-a-driver-1-new"]


async def test_an_object_whose_event_comes_late_is_kept() -> None:
    """A listed object whose handler has not run yet is a suspect, but the LIST shows it exists."""
    kube = FakeKube()
    r = Relisting(kube)
    kube.crs = ["u-a", "u-b"]
    r.cr_event("ADDED", cr("a"), {})
    r.cr_event("ADDED", cr("b"), {})
    await settle(r)
    r.cr_event(None, cr("a"), {})  # b's listed event is still on its way
    await settle(r)
    assert set(r.bodies) == {("ns", "a"), ("ns", "b")}
    assert kube.lists == ["/apis/lakejob.io/v1alpha1/namespaces/ns/relistings"]


async def test_a_cr_a_child_relist_wakes_is_looked_at_before_anything_is_done_for_it() -> None:
    """The pods' watch re-lists first: a pod's event wakes a CR deleted meanwhile. Its pass would
    make children for a CR that is gone; it GETs the CR first, and forgets it."""
    kube = FakeKube()
    r = Relisting(kube)
    index = {("ns", "a"): [entry("a-driver-1", "a")], ("ns", "b"): [entry("b-driver-1", "b")]}
    kube.crs, kube.pods = ["u-a", "u-b"], ["u-a-driver-1", "u-b-driver-1"]
    for name in ("a", "b"):
        r.cr_event(None, cr(name), {INDEX: index})
    for p, parent in (("a-driver-1", "a"), ("b-driver-1", "b")):
        r.child_event(pod(p, parent), {INDEX: index}, {"name": p}, index=INDEX, listed=True)
    await settle(r)
    r.passes.clear()
    r.cr_event("MODIFIED", cr("a"), {INDEX: index})  # a plain event: the first listings are over
    await settle(r)
    kube.crs = ["u-a"]  # b is deleted while the watches are down; its pod is not yet collected
    r.passes.clear()
    kube.lists.clear()
    r.child_event(pod("b-driver-1", "b"), {INDEX: index}, {"name": "b-driver-1", "phase": "Succeeded"},
                  index=INDEX, listed=True)
    await asyncio.sleep(0.01)
    assert ("ns", "b") not in r.bodies and r.passes == []  # nothing was done for b
    assert kube.lists == ["GET b"]
    r.child_event(pod("a-driver-1", "a"), {INDEX: index}, {"name": "a-driver-1", "phase": "Succeeded"},
                  index=INDEX, listed=True)
    await asyncio.sleep(0.01)
    assert r.passes == [("ns", "a")] and kube.lists == ["GET b", "GET a"]  # a is there: one look, then on
    r.child_event(pod("a-driver-1", "a"), {INDEX: index}, {"name": "a-driver-1", "phase": "Failed"}, index=INDEX)
    await asyncio.sleep(0.01)
    assert r.passes == [("ns", "a"), ("ns", "a")] and kube.lists == ["GET b", "GET a"]  # not again
    await settle(r)
