"""Every pass ends in a known state, and nothing that is not ours is touched (issue 11).

controllers.base: what a pass raises becomes a Reconciled=False condition, one Warning Event per
distinct error, a metric and a per-object exponential backoff with jitter; the first clean pass
sets the condition back. kube.Kube: a create that finds a same-named object checks whose it is;
deleting and patching a child checks first, and deletes carry the child's UID as a precondition.
"""
from __future__ import annotations

from typing import Any

import pytest

from lakejob import kube as kubemod
from lakejob import metrics
from lakejob.controllers.base import NO_OWNER, Key, Reconciler, ownership
from lakejob.settings import Settings


class FakeKube:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []
        self.status_error: kubemod.KubeError | None = None
        self.rv = 10

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> int:
        if self.status_error:
            raise self.status_error
        self.status.update(patch)
        self.rv += 1
        return self.rv

    async def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


class Failing(Reconciler):
    kind = "Failing"
    plural = "failings"
    terminal_states = frozenset({"done"})

    def __init__(self, kube: FakeKube) -> None:
        super().__init__(Settings(error_backoff_s=1.0, error_backoff_max_s=8.0), kube, lambda: 0,  # type: ignore[arg-type]
                         None, None)  # type: ignore[arg-type]
        self.error: Exception | None = None
        self.delays: list[float] = []

    async def reconcile_one(self, key: Key, body: dict[str, Any]) -> None:
        if self.error:
            raise self.error

    def requeue(self, key: Key, uid: str, delay_s: float) -> None:
        self.delays.append(delay_s)


BODY = {"metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "1", "generation": 1}}
KEY = ("ns", "a")


def reconciled(kube: FakeKube) -> dict[str, Any]:
    return next(c for c in kube.status["conditions"] if c["type"] == "Reconciled")


async def passes(r: Failing, n: int) -> None:
    r.bodies[KEY] = BODY
    for _ in range(n):
        await r.reconcile(KEY)


async def test_an_unexpected_exception_is_a_condition_an_event_and_a_growing_capped_backoff() -> None:
    kube = FakeKube()
    r = Failing(kube)
    r.error = TypeError("'int' object is not subscriptable")
    before = metrics.RECONCILE_ERRORS.labels("Failing", "internal")._value.get()
    await passes(r, 6)
    c = reconciled(kube)
    assert c["status"] == "False" and c["reason"] == "InternalError" and "not subscriptable" in c["message"]
    assert kube.events == [("Warning", "InternalError", "TypeError: 'int' object is not subscriptable")]  # once
    assert metrics.RECONCILE_ERRORS.labels("Failing", "internal")._value.get() == before + 6
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= d <= cap for d, cap in zip(r.delays, caps, strict=True)), r.delays

    r.error = None  # fixed: the next pass clears the condition and the backoff
    await passes(r, 1)
    assert reconciled(kube)["status"] == "True" and "after 6 failed" in reconciled(kube)["message"]
    assert "u" not in r._failures


async def test_an_api_rejection_names_the_request_and_the_apis_message() -> None:
    kube = FakeKube()
    r = Failing(kube)
    r.error = kubemod.KubeError(403, 'pods "etl-driver-1" is forbidden: exceeded quota: q', "create Pod etl-driver-1")
    await passes(r, 1)
    c = reconciled(kube)
    assert c["reason"] == "Rejected"
    assert c["message"] == 'the API refused to create Pod etl-driver-1: 403 pods "etl-driver-1" is forbidden: exceeded quota: q'


async def test_a_transient_error_is_retried_quietly_and_shown_only_when_it_persists() -> None:
    kube = FakeKube()
    r = Failing(kube)
    r.error = kubemod.KubeError(503, "etcdserver: leader changed", "create Pod x")
    await passes(r, 2)
    assert kube.status == {} and kube.events == []
    await passes(r, 1)
    assert reconciled(kube)["reason"] == "APIUnavailable" and len(kube.events) == 1


async def test_a_foreign_object_is_a_conflict_that_says_what_to_do() -> None:
    kube = FakeKube()
    r = Failing(kube)
    r.error = kubemod.NotOwned("ServiceAccount", "ns", "etl-spark", "not made by lakejob")
    await passes(r, 1)
    c = reconciled(kube)
    assert c["reason"] == "ChildConflict" and "ServiceAccount ns/etl-spark exists and is not this object's child" in \
        c["message"] and "delete or rename it" in c["message"]


async def test_a_cr_deleted_while_unwatched_is_forgotten_on_its_first_404() -> None:
    kube = FakeKube()
    kube.status_error = kubemod.KubeError(404, "not found", "write the status of Failing a")
    r = Failing(kube)
    r.error = kubemod.KubeError(404, "not found", "write the status of Failing a")
    await passes(r, 1)
    assert KEY not in r.bodies and r.delays == [] and "u" not in r._failures


# ------------------------------------------------------------------ children: whose are they


def pod(name: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"lakejob.io/name": "a"}}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"metadata": meta}


def ref(uid: str, api: str = "lakejob.io/v1alpha1", controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": api, "kind": "SparkBatch", "name": "a", "uid": uid, "controller": controller}


def test_children_are_only_this_crs_and_its_childrens_descendants() -> None:
    r = Failing(FakeKube())
    r.bodies[KEY] = BODY
    index = [{"name": p["metadata"]["name"], **ownership(p)} for p in (
        pod("a-driver-1", ref("u")),  # ours
        pod("a-a1-exec-1", ref("uid-a-driver-1", api="v1")),  # an executor, controlled by our driver pod
        pod("a-driver-2", ref("old-uid")),  # a deleted predecessor's, still terminating
        pod("a-driver-3", None),  # made by hand with our labels
        pod("a-driver-4", ref("u", controller=False)),  # mentions us, but not as its controller
        pod("a-a1-exec-2", ref("uid-a-driver-1", api="v1", controller=False)),  # owned by our driver, no controller
    )]
    r.indexes["pods"] = {KEY: index}
    assert sorted(c["name"] for c in r.children("pods", KEY)) == ["a-a1-exec-1", "a-a1-exec-2", "a-driver-1"]
    assert ownership(pod("x", None)) == {"owner": NO_OWNER}


class Canned(kubemod.Kube):
    """A Kube whose requests get canned answers, recording what was asked."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        super().__init__(server="https://k", session=None)  # type: ignore[arg-type]
        self.answers, self.asked = answers, []  # type: ignore[var-annotated]

    async def request(self, method: str, url_path: str, body: Any = None, **_: Any) -> tuple[int, Any]:
        self.asked.append((method, url_path, body))
        return self.answers.get((method, url_path), (404, {"message": "not found"}))


SA_PATH = "/api/v1/namespaces/ns/serviceaccounts"
OURS = {"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "etl-spark", "namespace": "ns", "ownerReferences": [ref("u")]}}
EXISTS = (409, {"reason": "AlreadyExists", "message": "exists"})


@pytest.mark.parametrize("existing, result", [
    ({"metadata": {"name": "etl-spark", "uid": "s1", "ownerReferences": [ref("u")]}}, False),  # ours: idempotent
    ({"metadata": {"name": "etl-spark", "uid": "s1"}}, kubemod.NotOwned),  # the team's own account
    ({"metadata": {"name": "etl-spark", "uid": "s1", "ownerReferences": [ref("other")]}}, kubemod.NotOwned),
])
async def test_create_accepts_an_existing_object_only_if_it_is_ours(existing: dict[str, Any], result: Any) -> None:
    kube = Canned({("POST", SA_PATH): EXISTS, ("GET", SA_PATH + "/etl-spark"): (200, existing)})
    if result is kubemod.NotOwned:
        with pytest.raises(kubemod.NotOwned, match="ServiceAccount ns/etl-spark exists"):
            await kube.create(OURS)
    else:
        assert await kube.create(OURS) is result


async def test_a_foreign_child_is_never_deleted_or_patched_and_ours_is_deleted_by_uid() -> None:
    path = SA_PATH + "/etl-spark"
    kube = Canned({("GET", path): (200, {"metadata": {"name": "etl-spark", "uid": "s1"}})})
    with pytest.raises(kubemod.NotOwned):
        await kube.delete_child("v1", "ServiceAccount", "ns", "etl-spark", "u")
    with pytest.raises(kubemod.NotOwned):
        await kube.patch_child("v1", "ServiceAccount", "ns", "etl-spark", "u", {"spec": {}})
    assert [m for m, _, _ in kube.asked] == ["GET", "GET"]

    kube = Canned({("GET", path): (200, {"metadata": {"name": "etl-spark", "uid": "s1", "ownerReferences": [ref("u")]}}),
                   ("DELETE", path): (200, {})})
    assert await kube.delete_child("v1", "ServiceAccount", "ns", "etl-spark", "u")
    assert kube.asked[-1][2]["preconditions"] == {"uid": "s1"}



# ------------------------------------------------------------------ a spec from a newer version


def test_fields_a_newer_crd_has_are_ignored_and_named_but_real_errors_still_fail() -> None:
    from lakejob.controllers.base import parse_spec, unknown_fields
    from lakejob.models.sparkbatch import SparkBatchSpec

    body = {"spec": {"file": "local:///a.py", "autoscaleV2": {"max": 3}, "driver": {"labels": {"a": "b"}, "gpu": 1}}}
    spec, error = parse_spec(SparkBatchSpec, body)
    assert error is None and spec is not None and spec.driver.labels == {"a": "b"}
    assert sorted(unknown_fields(SparkBatchSpec, body)) == ["spec.autoscaleV2", "spec.driver.gpu"]

    spec, error = parse_spec(SparkBatchSpec, {"spec": {**body["spec"], "file": ""}})
    assert spec is None and error is not None and "spec.file" in error
