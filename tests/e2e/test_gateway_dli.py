"""DLI's Spark batch API served by `lakejob gateway` (issue 13), driven by Huawei Cloud's own SDK —
huaweicloudsdkdli's DliClient with huaweicloudsdkcore's AK/SK signing, unmodified — against the
local control plane, the operator running the batches on KWOK.

- Spark batches: create, show, state, log, list with DLI's filters (state, job_name, job-id, queue_name, time
  window, order, paging) and cancel, the answers compared to the SparkBatches `kubectl` sees; a
  SparkBatch made with kubectl is in the list too (the API and kubectl agree).
- Flink JAR jobs: create (job_id 1, 2), list with filters, order and paging, show, stop (the job
  ends job_cancel_success), update (a stopped job stays stopped with its new spec; a running one
  runs its new spec at once), run (the stopped one runs again, a running one is refused), delete
  and batch delete (one result per id, an unknown one failing).
- Spark sessions (the seed's create, then show, state, list, stop), sent by the SDK's own signing
  client (the SDK has no method for this discarded API).
- The key's project maps to its namespace; RBAC decides (403 in DLI's error shape where the key's
  identity has no Role); a wrong secret key is refused (401) before any Kubernetes call.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdli.v1 import (BatchDeleteFlinkJobsRequest, BatchDeleteFlinkJobsRequestBody,
                                  BatchRunFlinkJobsRequest, BatchRunFlinkJobsRequestBody, BatchStopFlinkJobsRequest, CancelSparkJobRequest, CreateFlinkJarJobRequest,
                                  CreateFlinkJarJobRequestBody, CreateSparkJobRequest, CreateSparkJobRequestBody,
                                  DeleteFlinkJobRequest, DliClient, ListFlinkJobsRequest, ListSparkJobsRequest,
                                  ShowFlinkJobRequest, ShowSparkJobLogRequest, ShowSparkJobRequest,
                                  ShowSparkJobStatusRequest, StopFlinkJobsRequestBody, UpdateFlinkJarJobRequest,
                                  UpdateFlinkJarJobRequestBody)

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.gateway import Gateway, running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
AK, SK = "LAKEJOBDLITESTAK", "dli-secret-key-do-not-print"
PROJECT = "48cc2c48765f481480c7db940d6409d1"  # DLI's example project id
USER = "dli:bot"
PI = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi"}


@pytest.fixture
def keys(tmp_path: Path, namespace: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"dli": [{"accessKey": AK, "secretKey": SK,
                                             "as": {"user": USER, "projects": {PROJECT: namespace}}}]}))
    return path


@pytest.fixture
def gateway(kubeconfig: str, keys: Path, tmp_path: Path) -> Iterator[Gateway]:
    with running(kubeconfig, keys, tmp_path / "gateway.log", SK) as gw:
        yield gw


def dli(gw: Gateway, project: str = PROJECT, sk: str = SK) -> Any:
    return (DliClient.new_builder().with_credentials(BasicCredentials(AK, sk, project))
            .with_endpoint(gw.url).build())


def allow(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "dli-user"},
                   "rules": [{"apiGroups": ["lakejob.io"], "resources": ["sparkbatches", "sparksessions"],
                              "verbs": ["get", "list", "watch", "create", "patch"]},
                             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}, ns)
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "dli-user"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dli-user"},
                   "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]}, ns)


def dli_call(client: Any, method: str, path: str, body: Any = None) -> Any:
    """A DLI call the SDK has no method for, signed and sent by the SDK's own client; the answer's JSON
    (read through a response model of the same Livy-derived shape, whose raw content is the answer)."""
    answer = client.do_http_request(method, path, path_params={}, body=body,
                                    header_params={"Content-Type": "application/json"},
                                    response_type="CreateSparkJobResponse")
    return json.loads(answer.raw_content)


def listed(client: Any, **filters: Any) -> list[str]:
    return [s.id for s in client.list_spark_jobs(ListSparkJobsRequest(**filters)).sessions or []]


def test_the_dli_sdk_creates_shows_lists_and_cancels_batches_as_the_keys_user(
        kubectl: Kubectl, namespace: str, operator: Operator, gateway: Gateway) -> None:
    allow(kubectl, namespace)
    client = dli(gateway)
    body = CreateSparkJobRequestBody(file=PI["file"], class_name=PI["className"], args=["10"], queue="q1",
                                     name="pi-from-sdk", sc_type="A", spark_version="2.3.2")
    created = client.create_spark_job(CreateSparkJobRequest(body=body))
    batch_id = created.id
    assert str(uuid.UUID(batch_id)) == batch_id and created.state == "starting" and created.queue == "q1"
    cr = kubectl.get("sparkbatch", batch_id, namespace)
    assert cr is not None and cr["spec"]["className"] == PI["className"] and cr["spec"]["queue"] == "q1"
    assert cr["metadata"]["annotations"]["lakejob.io/owner"] == USER
    # One made with kubectl, that succeeds (KWOK's simulated driver): the API lists it too. It is made
    # in a later second: creationTimestamp (hence create_time) has a resolution of one second, and two
    # jobs of the same second order by id, not by which came first.
    time.sleep(1.1)
    kubectl.apply({"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": "by-kubectl"},
                   "spec": {**PI, "queue": "q2", "name": "kubectl-pi",
                            "driver": {"labels": {"sim.lakejob.io/outcome": "succeed"},
                                       "annotations": {"sim.lakejob.io/delay": "1s"}}}}, namespace)
    kubectl.wait_for(lambda: (kubectl.get("sparkbatch", "by-kubectl", namespace) or {}).get("status", {}).get("state")
                     == "success", "the kubectl batch to succeed", namespace=namespace)
    kubectl.wait_for(lambda: (kubectl.get("sparkbatch", batch_id, namespace) or {}).get("status", {}).get("state")
                     == "running", "the SDK's batch to run (KWOK: its driver keeps running)", namespace=namespace)
    assert sorted(listed(client)) == sorted([batch_id, "by-kubectl"])
    assert listed(client, state="success") == ["by-kubectl"]
    assert listed(client, state="running") == [batch_id]
    assert listed(client, queue_name="q1") == [batch_id] and listed(client, cluster_name="q2") == ["by-kubectl"]
    assert listed(client, job_name="kubectl-pi") == ["by-kubectl"] and listed(client, job_id=batch_id) == [batch_id]
    assert listed(client, order="create_time_asc") == [batch_id, "by-kubectl"]
    assert listed(client, order="create_time_asc", _from=1, size=5) == ["by-kubectl"]
    now_ms = int(time.time() * 1000)
    assert listed(client, start=now_ms + 60_000) == [] and len(listed(client, end=now_ms + 60_000)) == 2
    page = client.list_spark_jobs(ListSparkJobsRequest(size=1))
    assert page.total == 2 and len(page.sessions) == 1
    shown = client.show_spark_job(ShowSparkJobRequest(batch_id=batch_id))
    cr = kubectl.get("sparkbatch", batch_id, namespace)
    assert cr is not None
    assert (shown.state, shown.app_id, shown.sc_type, shown.owner) == (
        "running", cr["status"]["appId"], cr["status"]["sc_type"], USER)
    assert client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id=batch_id)).state == "running"
    log = client.show_spark_job_log(ShowSparkJobLogRequest(batch_id=batch_id, _from=0, size=10))
    assert log.id == batch_id and log.total == len(log.log)
    assert client.cancel_spark_job(CancelSparkJobRequest(batch_id=batch_id)).msg == "deleted"
    kubectl.wait_for(lambda: client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id=batch_id)).state
                     == "killed", "the cancelled batch to be killed", namespace=namespace)
    assert sorted(listed(client)) == sorted([batch_id, "by-kubectl"])  # a cancelled job stays listed
    with pytest.raises(ClientRequestException) as e:
        client.show_spark_job(ShowSparkJobRequest(batch_id="no-such-batch"))
    assert (e.value.status_code, e.value.error_code) == (404, "DLI.0002")


def test_rbac_and_the_signature_decide(kubectl: Kubectl, namespace: str, gateway: Gateway) -> None:
    allow(kubectl, namespace)
    with pytest.raises(ClientRequestException) as e:  # a project whose namespace the key's user has no Role in
        dli(gateway, project=f"{namespace}-elsewhere").list_spark_jobs(ListSparkJobsRequest())
    assert (e.value.status_code, e.value.error_code) == (403, "DLI.0003") and USER in e.value.error_msg
    with pytest.raises(ClientRequestException) as e:
        dli(gateway, sk="not-the-secret").list_spark_jobs(ListSparkJobsRequest())
    assert (e.value.status_code, e.value.error_code) == (401, "APIG.0301") and "signature" in e.value.error_msg
    with pytest.raises(ClientRequestException) as e:  # the operator's rules, before anything is created
        dli(gateway).create_spark_job(CreateSparkJobRequest(body=CreateSparkJobRequestBody(
            file=PI["file"], class_name=PI["className"], num_executors=-1)))
    assert (e.value.status_code, e.value.error_code) == (400, "DLI.0001") and "numExecutors" in e.value.error_msg
    assert kubectl.list("sparkbatches", namespace) == []


def test_the_dli_sdk_creates_lists_shows_stops_and_deletes_flink_jar_jobs(
        kubectl: Kubectl, namespace: str, operator: Operator, gateway: Gateway) -> None:
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "dli-flink"},
                   "rules": [{"apiGroups": ["lakejob.io"], "resources": ["flinkjarjobs"],
                              "verbs": ["get", "list", "create", "patch", "delete"]}]}, namespace)
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "dli-flink"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dli-flink"},
                   "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]}, namespace)
    client = dli(gateway)
    ids = []
    for name in ("stream-a", "stream-b"):
        body = CreateFlinkJarJobRequestBody(
            name=name, queue_name="testQueue", cu_number=2, manager_cu_number=1, parallel_number=1,
            entrypoint="local:///opt/flink/examples/streaming/WordCount.jar",
            main_class="org.apache.flink.streaming.examples.wordcount.WordCount")
        created = client.create_flink_jar_job(CreateFlinkJarJobRequest(body=body))
        assert str(created.is_success) == "True" and created.job.status_name == "job_init"
        ids.append(created.job.job_id)
    assert ids == [1, 2]
    cr = kubectl.get("flinkjarjob", "flink-job-1", namespace)
    assert cr is not None and cr["spec"]["name"] == "stream-a" and cr["metadata"]["annotations"]["lakejob.io/owner"] == USER
    kubectl.wait_for(lambda: all((kubectl.get("flinkjarjob", f"flink-job-{i}", namespace) or {}).get("status", {})
                                 .get("status_name") == "job_running" for i in ids),
                     "both jobs to run (KWOK: their JobManagers keep running)", namespace=namespace)

    def listed(**filters: Any) -> list[int]:
        return [j.job_id for j in client.list_flink_jobs(ListFlinkJobsRequest(**filters)).job_list.jobs]

    assert listed() == [2, 1] and listed(order="asc") == [1, 2] and listed(order="asc", offset=1, limit=5) == [2]
    assert listed(name="stream-a") == [1] and listed(status="job_running") == [2, 1] and listed(status="job_init") == []
    assert listed(queue_name="testQueue") == [2, 1] and listed(queue_name="other") == []
    detail = client.show_flink_job(ShowFlinkJobRequest(job_id=1)).job_detail
    assert (detail.job_id, detail.name, detail.status, detail.user_name, detail.queue_name) == (
        1, "stream-a", "job_running", USER, "testQueue")
    stopped = client.batch_stop_flink_jobs(BatchStopFlinkJobsRequest(body=StopFlinkJobsRequestBody(job_ids=[1])))
    assert [str(r.is_success) for r in stopped.body] == ["True"]  # the SDK types is_success as a string
    kubectl.wait_for(lambda: client.show_flink_job(ShowFlinkJobRequest(job_id=1)).job_detail.status
                     == "job_cancel_success", "job 1 stopped", namespace=namespace)

    def update(job_id: int, **fields: Any) -> Any:
        return client.update_flink_jar_job(UpdateFlinkJarJobRequest(job_id=job_id, body=UpdateFlinkJarJobRequestBody(
            **fields)))

    # DLI's update: a stopped job takes the new spec and stays stopped; a running one runs it at once.
    updated = update(1, cu_number=3, entrypoint_args="--input /tmp/in")
    assert str(updated.is_success) == "True" and updated.job.update_time > 0
    assert update(2, parallel_number=2, cu_number=3).is_success
    cr = kubectl.get("flinkjarjob", "flink-job-1", namespace)
    assert cr is not None and (cr["spec"]["cu_number"], cr["spec"]["suspend"]) == (3, True)
    assert cr["status"]["status_name"] == "job_cancel_success"
    with pytest.raises(ClientRequestException) as e:
        update(1, cu_number=0)
    assert (e.value.status_code, e.value.error_code) == (400, "DLI.0001") and "cu_number" in e.value.error_msg

    def attempt(name: str) -> tuple[Any, Any]:
        st = (kubectl.get("flinkjarjob", name, namespace) or {}).get("status") or {}
        return st.get("attempt"), st.get("status_name")

    kubectl.wait_for(lambda: attempt("flink-job-2") == (2, "job_running"), "job 2 running its new spec",
                     namespace=namespace)
    # DLI's run: the stopped job runs again (attempt 2, its new size); the running one is refused.
    ran = client.batch_run_flink_jobs(BatchRunFlinkJobsRequest(body=BatchRunFlinkJobsRequestBody(
        job_ids=[1, 2], resume_savepoint=False)))
    assert [str(r.is_success) for r in ran.body] == ["True", "False"] and "stop it before" in ran.body[1].message
    kubectl.wait_for(lambda: attempt("flink-job-1") == (2, "job_running"), "job 1 running again",
                     namespace=namespace)
    detail = client.show_flink_job(ShowFlinkJobRequest(job_id=1)).job_detail
    assert (detail.status, detail.entrypoint_args) == ("job_running", "--input /tmp/in")
    assert len(kubectl.list("pods", namespace, "lakejob.io/name=flink-job-1,lakejob.io/role=taskmanager")) == 2
    assert str(client.delete_flink_job(DeleteFlinkJobRequest(job_id=2)).is_success) == "True"
    gone = client.batch_delete_flink_jobs(BatchDeleteFlinkJobsRequest(body=BatchDeleteFlinkJobsRequestBody(
        job_ids=[1, 99])))
    assert [str(r.is_success) for r in gone.body] == ["True", "False"] and "99" in gone.body[1].message
    kubectl.wait_for(lambda: not kubectl.list("flinkjarjobs", namespace), "the jobs deleted", namespace=namespace)
    with pytest.raises(ClientRequestException) as e:
        client.show_flink_job(ShowFlinkJobRequest(job_id=2))
    assert (e.value.status_code, e.value.error_code) == (404, "DLI.0002")


SESSION_EXAMPLE = {  # the seed's example request, as pasted
    "kind": "spark", "cluster_name": "test_cluster", "sc_type": "A", "jars": ["group.tesddws/gsjdbc4.jar"],
    "resources": [{"name": "group.tesddws/gsjdbc3.jar", "type": "jar"}],
    "groups": [{"name": "group.tesddws", "resources": [{"name": "gsjdbc2.jar", "type": "jar"}]}]}


def test_dli_sessions_are_sparksessions_created_shown_listed_and_stopped(
        kubectl: Kubectl, namespace: str, gateway: Gateway) -> None:
    allow(kubectl, namespace)
    client = dli(gateway)
    created = dli_call(client, "POST", "/v2.0/{project_id}/sessions", SESSION_EXAMPLE)
    session_id = created["id"]
    assert str(uuid.UUID(session_id)) == session_id
    assert {k: created[k] for k in ("state", "kind", "cluster_name", "sc_type", "owner")} == {
        "state": "starting", "kind": "spark", "cluster_name": "test_cluster", "sc_type": "A", "owner": USER}
    cr = kubectl.get("sparksession", session_id, namespace)
    assert cr is not None and cr["spec"] == SESSION_EXAMPLE
    shown = dli_call(client, "GET", f"/v2.0/{{project_id}}/sessions/{session_id}")
    assert shown["id"] == session_id and shown["create_time"] == created["create_time"] > 0
    state = dli_call(client, "GET", f"/v2.0/{{project_id}}/sessions/{session_id}/state")
    assert state["id"] == session_id and state["state"] in ("starting", "not_started")
    kubectl.apply({"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkSession", "metadata": {"name": "by-kubectl"},
                   "spec": {"kind": "sql", "queue": "q2"}}, namespace)
    listed_ = dli_call(client, "GET", "/v2.0/{project_id}/sessions")
    assert listed_["total"] == 2 and {s["id"] for s in listed_["sessions"]} == {session_id, "by-kubectl"}
    assert dli_call(client, "DELETE", f"/v2.0/{{project_id}}/sessions/{session_id}") == {"msg": "deleted"}
    cr = kubectl.get("sparksession", session_id, namespace)
    assert cr is not None and cr["spec"]["suspend"] is True  # stopped, still listed, as DLI's
    with pytest.raises(ClientRequestException) as e:
        dli_call(client, "GET", "/v2.0/{project_id}/sessions/no-such-session")
    assert e.value.status_code == 404 and e.value.error_code == "DLI.0002"
    with pytest.raises(ClientRequestException) as e:
        dli_call(client, "POST", "/v2.0/{project_id}/sessions", {"kind": "spark"})
    assert e.value.status_code == 400 and "cluster_name" in e.value.error_msg
