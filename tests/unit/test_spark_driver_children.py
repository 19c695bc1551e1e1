"""SparkReconciler.ensure_driver_children (controllers.spark_driver): what a Spark kind's pass creates
beside its driver, against a fake API that records the creates."""
from __future__ import annotations

import asyncio
from typing import Any

from lakejob.controllers.sparkbatch import SparkBatchReconciler
from lakejob.models.sparkbatch import SparkBatchSpec
from lakejob.render.common import Owner
from lakejob.settings import Settings

SPEC = SparkBatchSpec.model_validate({"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                                      "className": "org.apache.spark.examples.SparkPi"})


class Creates:
    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []

    async def create(self, obj: dict[str, Any]) -> bool:
        await asyncio.sleep(0.01)  # an API round trip: the passes overlap
        self.made.append((obj["kind"], obj["metadata"]["name"]))
        return True


def owner(i: int) -> Owner:
    return Owner("lakejob.io/v1alpha1", "SparkBatch", f"b{i}", "team-a", f"uid-{i}")


async def test_a_burst_creates_the_namespaces_shared_account_once() -> None:
    kube = Creates()
    r = SparkBatchReconciler(Settings(), kube, lambda: 0, None, None)  # type: ignore[arg-type]
    await asyncio.gather(*(r.ensure_driver_children(SPEC, owner(i), []) for i in range(20)))
    assert sorted(kube.made) == [("Role", "lakejob-spark-driver"), ("RoleBinding", "lakejob-spark-driver"),
                      ("ServiceAccount", "lakejob-spark-driver")]
    assert kube.made.index(("RoleBinding", "lakejob-spark-driver")) > kube.made.index(("Role", "lakejob-spark-driver"))


async def test_per_job_accounts_are_each_jobs_own() -> None:
    kube = Creates()
    r = SparkBatchReconciler(Settings(driver_rbac="per-job"), kube, lambda: 0, None, None)  # type: ignore[arg-type]
    await asyncio.gather(*(r.ensure_driver_children(SPEC, owner(i), []) for i in range(2)))
    assert sorted(m for m in kube.made if m[0] == "ServiceAccount") == [("ServiceAccount", "b0-spark"),
                                                                         ("ServiceAccount", "b1-spark")]
