"""BatchCompute's job API served by `lakejob gateway` (issue 13), driven by Alibaba's own SDK —
`batchcompute` 2.1.7 with its AccessKey signing, unmodified — against the local control plane; the
operator runs the DagJobs on KWOK.

- Create (201, the Id the operator also uses in log names: the DagJob's uid), get before and after
  the operator's first status, description, tasks and instances, the job run to Finished.
- IdempotentToken: the same token and body is the same job; another body under it is refused.
- Stop, change priority, start; the list pages in creation order and selects by State; delete.
- Refusals in BatchCompute's shape: RBAC (403), the model's rule (InvalidPriority, nothing created),
  a wrong secret (401).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from batchcompute import Client
from batchcompute.core.exceptions import ClientError
from batchcompute.resources import DAG, JobDescription, TaskDescription

from tests.e2e.gateway import Gateway, running
from tests.e2e.kubectl import Kubectl, Operator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
AK, SK = "LTAIlakejobE2EBatch01", "bc-secret-do-not-print"
USER = "bc:bot"


@pytest.fixture(autouse=True)
def _priority_classes(priority_classes: None) -> None:
    """Every DagJob pod names one of the chart's PriorityClasses."""


@pytest.fixture
def keys(tmp_path: Path, namespace: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"batchcompute": [{"accessKeyId": AK, "accessKeySecret": SK,
                                                      "as": {"user": USER, "namespace": namespace}}]}))
    return path


@pytest.fixture
def gateway(kubeconfig: str, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    from batchcompute.utils import constants, functions

    # register_region sets process-wide globals of the SDK: restored after the test.
    monkeypatch.setattr(constants, "SERVICE_PORT", constants.SERVICE_PORT)
    monkeypatch.setitem(functions.ENDPOINT_INFO, "lakejob", "")
    with running(kubeconfig, keys, tmp_path / "gateway.log", SK) as gw:
        Client.register_region("lakejob", "127.0.0.1", port=gw.port)
        yield gw


def bc(secret: str = SK) -> Any:
    return Client("127.0.0.1", AK, secret)


def allow(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bc-user"},
                   "rules": [{"apiGroups": ["lakejob.io"], "resources": ["dagjobs"],
                              "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]}, ns)
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bc-user"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bc-user"},
                   "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]}, ns)


def job(name: str = "nightly", priority: int = 1, instances: int = 2) -> JobDescription:
    task = TaskDescription()
    task.Parameters.Command.CommandLine = "python worker.py"
    task.Parameters.StdoutRedirectPath = task.Parameters.StderrRedirectPath = "oss://bucket/logs/"
    task.InstanceCount, task.Timeout, task.ClusterId = instances, 600, "cls-0001"
    dag = DAG()
    dag.add_task("etl", task)
    desc = JobDescription()
    desc.Name, desc.Priority, desc.DAG = name, priority, dag
    return desc


def dagjob_of(kubectl: Kubectl, ns: str, uid: str) -> dict[str, Any]:
    return next(o for o in kubectl.list("dagjobs", ns) if o["metadata"]["uid"] == uid)


def test_the_batchcompute_sdk_runs_jobs_as_the_keys_user(kubectl: Kubectl, namespace: str, operator: Operator,
                                                         gateway: Gateway) -> None:
    allow(kubectl, namespace)
    client = bc()
    job_id = client.create_job(job()).Id
    cr = dagjob_of(kubectl, namespace, job_id)
    assert cr["metadata"]["name"].startswith("job-") and cr["metadata"]["annotations"]["lakejob.io/owner"] == USER
    assert client.get_job(job_id).State in ("Waiting", "Running", "Finished")  # found before and after status.Id
    kubectl.wait_for(lambda: client.get_job(job_id).State == "Finished", "the job to finish", namespace=namespace)
    got = client.get_job(job_id)
    assert got.TaskMetrics.FinishedCount == 1 and got.InstanceMetrics.FinishedCount == 2 and got.EndTime is not None
    assert client.get_job_description(job_id).DAG.Tasks["etl"].InstanceCount == 2
    assert [(t.TaskName, t.State) for t in client.list_tasks(job_id, "", 10)] == [("etl", "Finished")]
    assert [i.State for i in client.easy_list("instances", job_id, "etl")] == ["Finished", "Finished"]
    assert client.get_instance(job_id, "etl", 1).StdoutRedirectPath == f"oss://bucket/logs/stdout.{job_id}.etl.1"
    token = "run 2026-12-03 / nightly"
    second = client.create_job(job("again"), token).Id
    assert client.create_job(job("again"), token).Id == second
    with pytest.raises(ClientError) as e:
        client.create_job(job("again", priority=5), token)
    assert (e.value.status, e.value.code) == (400, "IdempotentTokenMismatch")
    client.stop_job(second)
    kubectl.wait_for(lambda: client.get_job(second).State == "Stopped", "the job to stop", namespace=namespace)
    client.change_job_priority(second, 9)
    assert client.get_job_description(second).Priority == 9
    client.start_job(second)
    kubectl.wait_for(lambda: client.get_job(second).State in ("Waiting", "Running", "Finished"), "the job to resume",
                     namespace=namespace)
    page1 = client.list_jobs("", 1)
    assert [j.Id for j in page1.Items] == [job_id]
    assert [j.Id for j in client.list_jobs(page1.NextMarker, 1).Items] == [second]
    assert [j.Id for j in client.list_jobs("", 10, state="Finished").Items][0] == job_id
    client.delete_job(job_id)
    kubectl.wait_for(lambda: not [o for o in kubectl.list("dagjobs", namespace) if o["metadata"]["uid"] == job_id],
                     "the DagJob to be deleted", namespace=namespace)
    with pytest.raises(ClientError) as e:
        client.get_job(job_id)
    assert (e.value.status, e.value.code) == (404, "InvalidResource.NotFound")


def test_refusals_are_batchcomputes(kubectl: Kubectl, namespace: str, gateway: Gateway) -> None:
    with pytest.raises(ClientError) as e:  # no Role yet: the apiserver refuses the key's user
        bc().create_job(job())
    assert (e.value.status, e.value.code) == (403, "Forbidden") and USER in e.value.msg
    allow(kubectl, namespace)
    with pytest.raises(ClientError) as e:
        bc().create_job(job(priority=5000))
    assert (e.value.status, e.value.code) == (400, "InvalidPriority") and kubectl.list("dagjobs", namespace) == []
    with pytest.raises(ClientError) as e:
        bc("wrong").list_jobs("", 10)
    assert (e.value.status, e.value.code) == (401, "SignatureDoesNotMatch")
