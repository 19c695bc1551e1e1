"""controllers.flinkjarjob without a cluster: the TaskManagers of a run are a ReplicaSet, unless the
run began under an operator that made them a Deployment (then no second set is made beside it), and
an ended run's cleanup deletes either."""
from __future__ import annotations

from typing import Any

import pytest

from lakejob.controllers.flinkjarjob import FlinkJarJobReconciler
from lakejob.models.flinkjarjob import FlinkJarJobSpec
from lakejob.render.common import Owner
from lakejob.settings import Settings

OWNER = Owner("lakejob.io/v1alpha1", "FlinkJarJob", "wc", "team-a", "uid-wc")


class Children:
    """The apiserver as far as a run's children go: what exists, what was created and deleted."""

    def __init__(self, existing: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.existing = existing
        self.created: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.existing.get((kind, name))

    async def create(self, obj: dict[str, Any]) -> bool:
        self.created.append((obj["kind"], obj["metadata"]["name"]))
        return True

    async def delete_child(self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str,
                           leave: Any = None) -> bool:
        if (kind, name) in self.existing:
            self.deleted.append((kind, name))
        return (kind, name) in self.existing

    async def delete(self, *args: Any, **kwargs: Any) -> bool:
        return False


def reconciler(kube: Children) -> FlinkJarJobReconciler:
    r = FlinkJarJobReconciler(Settings(), kube, lambda: 0, None, None)  # type: ignore[arg-type]
    r.kube = kube  # type: ignore[assignment]  # no _Reaching wrapper: no pass runs
    return r


def deployment(owner_uid: str) -> dict[str, Any]:
    return {"metadata": {"name": "wc-taskmanager", "ownerReferences": [{"controller": True, "uid": owner_uid}]}}


@pytest.mark.parametrize(("existing", "made"), [
    ({}, True),  # a run of this operator: a ReplicaSet
    ({("Deployment", "wc-taskmanager"): deployment("uid-wc")}, False),  # an earlier operator's run keeps its own
    ({("Deployment", "wc-taskmanager"): deployment("someone-else")}, True),  # not ours: not a reason
])
async def test_a_runs_taskmanagers_are_one_set(existing: dict[tuple[str, str], dict[str, Any]], made: bool) -> None:
    kube = Children(existing)
    await reconciler(kube)._ensure_children(FlinkJarJobSpec.model_validate({"name": "wc"}), OWNER,
                                            earlier_attempts=True)
    assert ("ReplicaSet", "wc-taskmanager") in kube.created if made else \
        ("ReplicaSet", "wc-taskmanager") not in kube.created
    assert {k for k, _ in kube.created} >= {"ConfigMap", "Service"}


async def test_a_job_whose_status_never_named_a_jobmanager_does_not_look_for_a_deployment() -> None:
    kube = Children({})
    asked: list[str] = []

    async def get(api_version: str, kind: str, namespace: str, name: str) -> None:
        asked.append(kind)

    kube.get = get  # type: ignore[method-assign]
    await reconciler(kube)._ensure_children(FlinkJarJobSpec.model_validate({"name": "wc"}), OWNER,
                                            earlier_attempts=False)
    assert asked == [] and ("ReplicaSet", "wc-taskmanager") in kube.created


async def test_cleanup_deletes_the_replicaset_or_an_earlier_operators_deployment() -> None:
    kube = Children({("ReplicaSet", "wc-taskmanager"): {}, ("Deployment", "wc-taskmanager"): {},
                     ("Service", "wc-jobmanager"): {}, ("ConfigMap", "wc-flink-config"): {}})
    await reconciler(kube)._cleanup(OWNER)
    assert sorted(kube.deleted) == [("ConfigMap", "wc-flink-config"), ("Deployment", "wc-taskmanager"),
                                    ("ReplicaSet", "wc-taskmanager"), ("Service", "wc-jobmanager")]
