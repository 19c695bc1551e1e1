"""The vendors' own SDKs through the chart's gateway, their jobs run for real on the real node
(issue 13): Huawei Cloud's DliClient (AK/SK signed) submits SparkPi as a DLI batch, follows its
state to success, pages its log (the pages put together are `kubectl logs` of the driver) and
finds it in a filtered list; Alibaba's BatchCompute Client runs a job of two tasks (a command
from the package store, then one reading its output), reads its tasks and instances, and the
instances' stdout lands under BatchCompute's names. The gateway is reached as a user outside the
cluster would (`kubectl port-forward` to its Service), with keys from its keys Secret
(tests.e2e.real.gateway_keys).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batchcompute import Client
from batchcompute.resources import DAG, JobDescription, TaskDescription
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkdli.v1 import (CreateSparkJobRequest, CreateSparkJobRequestBody, DliClient, ListSparkJobsRequest,
                                  ShowSparkJobLogRequest, ShowSparkJobRequest, ShowSparkJobStatusRequest)

from tests.e2e.kubectl import Kubectl
from tests.e2e.objectstore import ObjectStore
from tests.e2e.real import (GATEWAY_BC_AK, GATEWAY_BC_SK, GATEWAY_BC_USER, GATEWAY_DLI_AK, GATEWAY_DLI_PROJECT,
                            GATEWAY_DLI_SK, GATEWAY_DLI_USER, REAL_NODE)
from tests.e2e.test_dagjob_real_node import BUCKET, prefix, read, task  # noqa: F401 (prefix: a fixture)
from tests.e2e.test_gateway_real_node import JOB_TIMEOUT, gateway_url

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")]


def allow(kubectl: Kubectl, ns: str, user: str, resources: list[str]) -> None:
    """A Role on `resources` (and the drivers' logs) bound to `user`, the identity a key stands for."""
    name = user.replace(":", "-")
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
                   "rules": [{"apiGroups": ["lakejob.io"], "resources": resources,
                              "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
                             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}, ns)
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                   "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]}, ns)


def test_the_dli_sdk_runs_sparkpi_for_real_and_pages_its_driver_log(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, tmp_path: Path) -> None:
    release, op_ns = incluster_operator
    ns = real_namespace
    allow(kubectl, ns, GATEWAY_DLI_USER, ["sparkbatches"])
    with gateway_url(kubectl, release, op_ns, tmp_path / "port-forward.log") as url:
        client = (DliClient.new_builder().with_credentials(BasicCredentials(GATEWAY_DLI_AK, GATEWAY_DLI_SK,
                                                                            GATEWAY_DLI_PROJECT))
                  .with_endpoint(url).build())
        body = CreateSparkJobRequestBody(file="local:///opt/spark/examples/jars/spark-examples.jar",
                                         class_name="org.apache.spark.examples.SparkPi", args=["4"],
                                         name="pi-dli-real", driver_memory="512M", driver_cores=1,
                                         executor_memory="512M", executor_cores=1, num_executors=1)
        batch_id = client.create_spark_job(CreateSparkJobRequest(body=body)).id
        try:
            def ended() -> str | None:
                state = client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id=batch_id)).state
                return state if state in ("success", "dead", "killed") else None

            assert kubectl.wait_for(ended, f"DLI batch {batch_id} to end", timeout=JOB_TIMEOUT, namespace=ns,
                                    show=("sparkbatch", batch_id)) == "success"
            cr = kubectl.get("sparkbatch", batch_id, ns)
            assert cr is not None and cr["status"]["state"] == "success"
            assert cr["metadata"]["annotations"]["lakejob.io/owner"] == GATEWAY_DLI_USER
            shown = client.show_spark_job(ShowSparkJobRequest(batch_id=batch_id))
            assert (shown.state, shown.app_id, shown.name) == ("success", cr["status"]["appId"], "pi-dli-real")
            whole = kubectl.run("logs", cr["status"]["driverPod"], "-n", ns).splitlines()
            pages, start = [], 0
            while True:
                page = client.show_spark_job_log(ShowSparkJobLogRequest(batch_id=batch_id, _from=start, size=40))
                assert page.total == len(whole) and page._from == start
                pages += page.log
                start += 40
                if start >= page.total:
                    break
            assert pages == whole and any("Pi is roughly 3.1" in line for line in pages)
            found = client.list_spark_jobs(ListSparkJobsRequest(job_name="pi-dli-real", state="success"))
            assert [s.id for s in found.sessions] == [batch_id]
        finally:
            kubectl.run("delete", "sparkbatch", batch_id, "-n", ns, "--wait=false", "--ignore-not-found")


@pytest.fixture
def batchcompute(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from batchcompute.utils import constants, functions

    # register_region sets process-wide globals of the SDK: restored after the test.
    monkeypatch.setattr(constants, "SERVICE_PORT", constants.SERVICE_PORT)
    monkeypatch.setitem(functions.ENDPOINT_INFO, "lakejob", "")
    yield


def test_the_batchcompute_sdk_runs_a_job_for_real_under_batchcompute_names(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, object_store: ObjectStore,
        priority_classes: None, prefix: str, batchcompute: None, tmp_path: Path) -> None:  # noqa: F811
    release, op_ns = incluster_operator
    ns = real_namespace
    allow(kubectl, ns, GATEWAY_BC_USER, ["dagjobs"])
    object_store.client().put_object(Bucket=BUCKET, Key=f"{prefix}/in/numbers.txt", Body=b"5 6 7\n")
    run = f"oss://{BUCKET}/{prefix}/run"
    dag = DAG()
    dag.add_task("a", TaskDescription(task("a", prefix, {f"oss://{BUCKET}/{prefix}/in/": "/data/in/"})))
    dag.add_task("c", TaskDescription(task("c", prefix, {f"{run}/a/a.txt": "/data/in/a.txt"}, instances=2)))
    dag.Dependencies = {"a": ["c"]}
    desc = JobDescription()
    desc.Name, desc.Priority, desc.DAG = "bc-real", 1, dag
    with gateway_url(kubectl, release, op_ns, tmp_path / "port-forward.log") as url:
        Client.register_region("lakejob", "127.0.0.1", port=int(url.rsplit(":", 1)[1]))
        client = Client("127.0.0.1", GATEWAY_BC_AK, GATEWAY_BC_SK)
        job_id = client.create_job(desc).Id
        try:
            state = kubectl.wait_for(
                lambda: (s := client.get_job(job_id).State) in ("Finished", "Failed", "Stopped") and s,
                "the BatchCompute job to end", timeout=JOB_TIMEOUT, namespace=ns)
            assert state == "Finished"
            got = client.get_job(job_id)
            assert got.TaskMetrics.FinishedCount == 2 and got.InstanceMetrics.FinishedCount == 3
            assert sorted((t.TaskName, t.State) for t in client.list_tasks(job_id, "", 10)) == \
                [("a", "Finished"), ("c", "Finished")]
            assert [i.State for i in client.easy_list("instances", job_id, "c")] == ["Finished", "Finished"]
            # a = 5+6+7; c[i] = a + i, each instance's stdout under BatchCompute's name.
            assert read(object_store, f"{prefix}/run/a/a.txt") == "18\n"
            for i in range(2):
                assert client.get_instance(job_id, "c", i).StdoutRedirectPath == \
                    f"oss://{BUCKET}/{prefix}/logs/stdout.{job_id}.c.{i}"
                assert read(object_store, f"{prefix}/logs/stdout.{job_id}.c.{i}") == \
                    f"c[{i}] of bc-real: {18 + i} hello-c\n"
            cr = next(o for o in kubectl.list("dagjobs", ns) if o["metadata"]["uid"] == job_id)
            assert cr["metadata"]["annotations"]["lakejob.io/owner"] == GATEWAY_BC_USER
            pods = kubectl.list("pods", ns, f"lakejob.io/kind=DagJob,lakejob.io/name={cr['metadata']['name']}")
            assert len(pods) == 3 and {p["spec"]["nodeName"] for p in pods} == {"lakejob-real"}
            client.delete_job(job_id)
            kubectl.wait_for(lambda: not any(o["metadata"]["uid"] == job_id for o in kubectl.list("dagjobs", ns)),
                             "the job deleted", namespace=ns)
        finally:
            kubectl.run("delete", "dagjobs", "-n", ns, "-l", "app.kubernetes.io/created-by=lakejob-gateway",
                        "--wait=false", "--ignore-not-found")
