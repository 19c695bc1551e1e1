"""DLI's Spark batch API served by `lakejob gateway` (issue 13), driven by Huawei Cloud's own SDK —
huaweicloudsdkdli's DliClient with huaweicloudsdkcore's AK/SK signing, unmodified — against the
local control plane, the operator running the batches on KWOK.

- Create, show, state, log, list with DLI's filters (state, job_name, job-id, queue_name, time
  window, order, paging) and cancel, the answers compared to the SparkBatches `kubectl` sees; a
  SparkBatch made with kubectl is in the list too (the API and kubectl agree).
- The key's project maps to its namespace; RBAC decides (403 in DLI's error shape where the key's
  identity has no Role); a wrong secret key is refused (401) before any Kubernetes call.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdli.v1 import (CancelSparkJobRequest, CreateSparkJobRequest, CreateSparkJobRequestBody,
                                  DliClient, ListSparkJobsRequest, ShowSparkJobLogRequest, ShowSparkJobRequest,
                                  ShowSparkJobStatusRequest)

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
                   "rules": [{"apiGroups": ["lakejob.io"], "resources": ["sparkbatches"],
                              "verbs": ["get", "list", "watch", "create", "patch"]},
                             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}, ns)
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "dli-user"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dli-user"},
                   "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]}, ns)


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
    # One made with kubectl, that succeeds (KWOK's simulated driver): the API lists it too.
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
