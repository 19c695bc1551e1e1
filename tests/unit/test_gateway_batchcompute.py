"""The gateway's BatchCompute API (lakejob.gateway.batchcompute) as the `batchcompute` SDK 2.1.7 sees
it: every shape the gateway answers is parsed here by the SDK's own response classes (GetResponse,
ListResponse, CreateResponse, CheckedApi's error check), and the bodies the SDK sends are checked
by DagJob's rules. Pure: no network, no cluster (the e2e tests run the SDK against a gateway)."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from lakejob.gateway import batchcompute as bc
from lakejob.gateway import jobs
from lakejob.models.dagjob import DagJobSpec

UID = "5f0c3a1e-7b7d-4d0e-9a51-0d3b2e9f4c11"
SPEC: dict[str, Any] = {
    "Name": "nightly", "Description": "etl", "Priority": 7, "Type": "DAG", "JobFailOnInstanceFail": True,
    "DAG": {"Dependencies": {"extract": ["load"]}, "Tasks": {
        "extract": {"Parameters": {"Command": {"CommandLine": "python e.py"},
                                   "StdoutRedirectPath": "oss://bucket/out/", "StderrRedirectPath": "oss://bucket/err/"},
                    "InstanceCount": 4, "Timeout": 600},
        "load": {"sparkBatch": {"file": "oss://bucket/load.jar", "className": "Load"}}}},
}
CR: dict[str, Any] = {
    "metadata": {"name": "job-abcde", "namespace": "team-b", "uid": UID, "creationTimestamp": "2026-12-03T10:00:00Z",
                 "annotations": {jobs.OWNER: "bc:bot"}},
    "spec": SPEC,
    "status": {"Id": UID, "Name": "nightly", "State": "Running", "Priority": 7,
               "CreationTime": "2026-12-03T10:00:00.120Z", "StartTime": "2026-12-03T10:00:01.500Z",
               "TaskMetrics": {"WaitingCount": 1, "RunningCount": 1},
               "InstanceMetrics": {"WaitingCount": 1, "RunningCount": 1, "FinishedCount": 2, "FailedCount": 1},
               "Tasks": {"extract": {"State": "Running", "Type": "command", "StartTime": "2026-12-03T10:00:02.000Z",
                                     "InstanceMetrics": {"RunningCount": 1, "FinishedCount": 2, "FailedCount": 1},
                                     "FinishedIndexes": "0,2", "FailedIndexes": "3"},
                         "load": {"State": "Waiting", "Type": "sparkBatch"}}},
}
FRESH: dict[str, Any] = {"metadata": {"name": "job-fresh", "uid": "u-2", "creationTimestamp": "2026-12-03T11:00:00Z"},
                         "spec": SPEC}


class _Response:
    """http.client's response as the SDK reads it (status, headers, the body read once)."""

    def __init__(self, body: Any, status: int = 200) -> None:
        self.status, self._body = status, json.dumps(body).encode()

    def read(self) -> bytes:
        return self._body

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return {"x-acs-request-id": "req-1"}.get(name, default)


def sdk_get(body: Any, kind: str) -> Any:
    from batchcompute.client import response
    from batchcompute.resources import JobDescription
    return response.GetResponse(_Response(body), JobDescription if kind == "JobDescription" else
                                getattr(response, kind), False)


def sdk_list(body: Any, kind: str) -> Any:
    from batchcompute.client import response
    return response.ListResponse(_Response(body), getattr(response, kind), False)


# --- GetJob, ListJobs, GetJobDescription -----------------------------------------------------------

def test_a_dagjob_is_the_sdks_job() -> None:
    job = sdk_get(bc.view(CR), "Job")
    assert (job.Id, job.Name, job.Owner, job.Priority, job.State, job.Message) == (
        UID, "nightly", "bc:bot", 7, "Running", "")
    # The SDK reads BatchCompute's times ("…T10:00:01.500000Z") as datetimes; any other form as None.
    assert job.CreationTime is not None and job.StartTime is not None and job.EndTime is None
    assert (job.StartTime - job.CreationTime).total_seconds() == pytest.approx(1.38)
    assert (job.TaskMetrics.WaitingCount, job.TaskMetrics.RunningCount, job.TaskMetrics.FinishedCount) == (1, 1, 0)
    assert (job.InstanceMetrics.FinishedCount, job.InstanceMetrics.FailedCount) == (2, 1)


def test_a_job_without_status_is_waiting_with_every_task_and_instance_waiting() -> None:
    v = bc.view(FRESH)
    assert (v["Id"], v["State"], v["Owner"], v["CreationTime"]) == ("u-2", "Waiting", "", "2026-12-03T11:00:00.000000Z")
    assert v["TaskMetrics"] == {"WaitingCount": 2, "RunningCount": 0, "StoppedCount": 0, "FinishedCount": 0,
                                "FailedCount": 0}
    assert v["InstanceMetrics"]["WaitingCount"] == 5  # 4 instances of the command, 1 for the Spark batch
    assert sdk_get(v, "Job").CreationTime is not None


def test_bc_time_is_the_form_the_sdk_parses() -> None:
    from batchcompute.utils.functions import str2datetime
    for stamp in ("2026-12-03T10:00:00Z", "2026-12-03T10:00:00.12Z", "2026-12-03T11:00:00+01:00"):
        out = bc.bc_time(stamp)
        assert out == ("2026-12-03T10:00:00.120000Z" if ".12" in stamp else "2026-12-03T10:00:00.000000Z")
        assert str2datetime(out) is not None
    assert bc.bc_time(None) is None and bc.bc_time("") is None


def test_the_list_is_the_sdks_list_of_jobs() -> None:
    listed = sdk_list({"Items": [bc.view(CR), bc.view(FRESH)], "NextMarker": "x"}, "Job")
    assert [j.Id for j in listed.Items] == [UID, "u-2"] and listed.NextMarker == "x"
    assert [j.State for j in listed] == ["Running", "Waiting"]


def test_the_spec_is_the_sdks_job_description() -> None:
    desc = sdk_get({**SPEC, "suspend": True}, "JobDescription")
    assert (desc.Name, desc.Priority, desc.Description, desc.JobFailOnInstanceFail) == ("nightly", 7, "etl", True)
    assert desc.DAG.Tasks["extract"].InstanceCount == 4
    assert desc.DAG.Tasks["extract"].Parameters.StdoutRedirectPath == "oss://bucket/out/"
    assert desc.DAG.Dependencies == {"extract": ["load"]}


# --- tasks and instances --------------------------------------------------------------------------

def test_tasks_are_the_sdks_tasks() -> None:
    tasks = sdk_list({"Items": [bc.task_view(CR, n) for n in bc.task_names(CR)], "NextMarker": ""}, "Task")
    assert [(t.TaskName, t.State) for t in tasks] == [("extract", "Running"), ("load", "Waiting")]
    extract = tasks[0]
    assert extract.StartTime is not None and extract.EndTime is None
    assert (extract.InstanceMetrics.RunningCount, extract.InstanceMetrics.FinishedCount) == (1, 2)
    assert bc.task_view(CR, "nope") is None
    status_only = {**CR, "status": {**CR["status"], "Tasks": {"gone": {"State": "Running"}}}}
    assert bc.task_view(status_only, "gone") is None  # the spec's tasks are the job's
    # A task the operator has not reported yet: Waiting, all its instances waiting.
    assert bc.task_view(FRESH, "extract") == {"TaskName": "extract", "State": "Waiting", "StartTime": None,
                                              "EndTime": None, "InstanceMetrics": {
                                                  "WaitingCount": 4, "RunningCount": 0, "StoppedCount": 0,
                                                  "FinishedCount": 0, "FailedCount": 0}}


def test_instances_follow_the_finished_and_failed_indexes() -> None:
    views = bc.instance_views(CR, "extract")
    assert views is not None
    instances = sdk_list({"Items": views, "NextMarker": ""}, "Instance")
    assert [(i.InstanceId, i.State) for i in instances] == [(0, "Finished"), (1, "Running"), (2, "Finished"),
                                                           (3, "Failed")]
    assert instances[3].StdoutRedirectPath == f"oss://bucket/out/stdout.{UID}.extract.3"
    assert instances[3].StderrRedirectPath == f"oss://bucket/err/stderr.{UID}.extract.3"
    assert instances[1].StartTime is not None and instances[1].EndTime is None
    got = sdk_get(views[2], "Instance")
    assert (got.InstanceId, got.State) == (2, "Finished")
    # A task of another kind is its one instance; a failed command task stopped its unfinished ones.
    assert [(i["InstanceId"], i["State"]) for i in bc.instance_views(CR, "load") or []] == [(0, "Waiting")]
    failed = {**CR, "status": {**CR["status"], "Tasks": {**CR["status"]["Tasks"], "extract": {
        **CR["status"]["Tasks"]["extract"], "State": "Failed", "EndTime": "2026-12-03T10:05:00Z"}}}}
    assert [i["State"] for i in bc.instance_views(failed, "extract") or []] == ["Finished", "Stopped", "Finished",
                                                                               "Failed"]
    assert all(i["EndTime"] == "2026-12-03T10:05:00.000000Z" for i in bc.instance_views(failed, "extract") or [])
    assert bc.instance_views(CR, "nope") is None


# --- paging, lookup -------------------------------------------------------------------------------

KEYS = ["2026-12-03T10:00:00Z/job-a", "2026-12-03T10:00:00Z/job-b", "2026-12-03T10:00:05Z/job-c",
        "2026-12-03T10:01:00Z/job-d", "2026-12-03T10:02:00Z/job-e"]


def test_pages_start_at_the_marker_and_name_the_next_pages_first_job() -> None:
    assert bc.page(KEYS, "", 2) == (0, 2, KEYS[2])
    assert bc.page(KEYS, KEYS[2], 2) == (2, 4, KEYS[4])
    assert bc.page(KEYS, KEYS[4], 2) == (4, 5, "")
    assert bc.page(KEYS, "", 10) == (0, 5, "") and bc.page([], "", 10) == (0, 0, "")


def test_paging_survives_creates_and_deletes_between_pages() -> None:
    start, end, marker = bc.page(KEYS, "", 2)
    # job-c (the marker) and job-a are deleted, job-f created, before the next page is asked for.
    later = [k for k in KEYS if not k.endswith(("job-a", "job-c"))] + ["2026-12-03T11:00:00Z/job-f"]
    start, end, marker = bc.page(later, marker, 2)
    assert later[start:end] == [KEYS[3], KEYS[4]] and marker == "2026-12-03T11:00:00Z/job-f"
    rev = sorted(KEYS, reverse=True)
    assert bc.page(rev, "", 2, reverse=True) == (0, 2, rev[2])
    assert bc.page(rev, rev[2], 2, reverse=True) == (2, 4, rev[4])
    assert bc.page(rev, "2026-12-03T10:00:04Z/job-gone", 2, reverse=True) == (3, 5, "")


def test_job_key_sorts_by_creation_time_then_name() -> None:
    objs = [{"metadata": {"name": n, "creationTimestamp": t}} for n, t in (
        ("job-z", "2026-12-03T10:00:00Z"), ("job-b", "2026-12-03T10:00:01Z"), ("job-a", "2026-12-03T10:00:00Z"))]
    assert [o["metadata"]["name"] for o in sorted(objs, key=bc.job_key)] == ["job-a", "job-z", "job-b"]


def test_a_job_without_status_id_is_found_by_its_uid() -> None:
    assert bc.by_uid([FRESH, CR], UID) is CR and bc.by_uid([FRESH], "u-2") is FRESH
    assert bc.by_uid([CR], "other") is None


# --- create: the SDK's bodies, idempotency --------------------------------------------------------

def sdk_body() -> dict[str, Any]:
    """What the SDK sends for a job built with its classes (every default it adds included)."""
    from batchcompute.resources import DAG, JobDescription, TaskDescription
    task = TaskDescription()
    task.Parameters.Command.CommandLine = "python main.py"
    task.Parameters.StdoutRedirectPath = task.Parameters.StderrRedirectPath = "oss://bucket/logs/"
    task.InstanceCount = 2
    task.AutoCluster.InstanceType, task.AutoCluster.ImageId = "ecs.sn1.medium", "img-ubuntu"
    dag = DAG()
    dag.add_task("etl", task)
    job = JobDescription()
    job.Name, job.Priority, job.DAG = "nightly", 1, dag
    job.Notification.Topic.Name, job.Notification.Topic.Events = "t", ["OnJobFinished"]
    return json.loads(job.dump())  # type: ignore[no-any-return]


def test_the_sdks_body_is_a_dagjob_once_its_empty_defaults_are_dropped() -> None:
    body = sdk_body()
    with pytest.raises(ValidationError):  # Docker, DependencyIsvService, UserData, UserTemplate
        DagJobSpec.model_validate(body)
    clean = bc.without_sdk_defaults(body)
    DagJobSpec.model_validate(clean)
    command = clean["DAG"]["Tasks"]["etl"]["Parameters"]["Command"]
    assert "Docker" not in command and command["CommandLine"] == "python main.py"
    assert "DependencyIsvService" not in clean["DAG"]["Tasks"]["etl"]["AutoCluster"]
    assert clean["Notification"]["Topic"] == {"Name": "t", "Endpoint": "", "Events": ["OnJobFinished"]}
    assert body["DAG"]["Tasks"]["etl"]["Parameters"]["Command"]["Docker"] == {"Image": ""}  # not changed in place
    # A Docker image asked for stays, and the kind refuses it by name.
    body["DAG"]["Tasks"]["etl"]["Parameters"]["Command"]["Docker"] = {"Image": "busybox"}
    with pytest.raises(ValidationError) as e:
        DagJobSpec.model_validate(bc.without_sdk_defaults(body))
    assert bc.model_code(e.value) == "InvalidCommand"
    assert bc.without_sdk_defaults({"DAG": "x", "Notification": None}) == {"DAG": "x", "Notification": None}


@pytest.mark.parametrize(("change", "code"), [
    ({"Priority": 5000}, "InvalidPriority"),
    ({"Priority": "high"}, "InvalidPriority"),
    ({"Type": "Batch"}, "InvalidType"),
    ({"Name": "9lives"}, "InvalidName"),  # the model's rule: its message starts with the code
    ({"DAG": {"Tasks": {"a": {"Parameters": {"Command": {"CommandLine": "x"}, "StdoutRedirectPath": "bad",
                                             "StderrRedirectPath": "oss://bucket/l/"},
                              "InstanceCount": 1, "Timeout": 1}}}}, "InvalidStdoutRedirectPath"),
    ({"DAG": {"Tasks": {"a": {"Parameters": {"Command": {"CommandLine": "x"}, "StdoutRedirectPath": "oss://bucket/l/",
                                             "StderrRedirectPath": "oss://bucket/l/"}, "Timeout": 1}}}},
     "MissingInstanceCount"),
    ({"DAG": {"Tasks": {"a": {"Parameters": {"Command": {"CommandLine": "x"}, "StdoutRedirectPath": "oss://bucket/l/",
                                             "StderrRedirectPath": "oss://bucket/l/"},
                              "InstanceCount": 1, "Timeout": 0}}}}, "InvalidTimeout"),
])
def test_a_refused_body_has_batchcomputes_code(change: dict[str, Any], code: str) -> None:
    body = {k: v for k, v in {**SPEC, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as e:
        DagJobSpec.model_validate(body)
    assert bc.model_code(e.value) == code
    missing = {k: v for k, v in SPEC.items() if k != "Type"}
    with pytest.raises(ValidationError) as e:
        DagJobSpec.model_validate(missing)
    assert bc.model_code(e.value) == "MissingType"


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("token", ["t1", "x" * 500, "spaces and / slashes = ünïcødé", "-_.-"])
def test_an_idempotent_token_of_any_length_or_characters_is_a_label_and_a_name(token: str) -> None:
    label, name = bc.digest(token), bc.token_name(token)
    assert LABEL_VALUE.match(label) and len(label) <= 63
    assert DNS_NAME.match(name) and len(name) <= 63 and name.startswith("job-")
    assert bc.token_name(token) == name and bc.token_name(token + " ") != name


def test_the_body_digest_tells_a_repeat_from_a_mismatch() -> None:
    assert bc.digest(SPEC) == bc.digest(json.loads(json.dumps(SPEC)))  # key order does not matter
    assert bc.digest(SPEC) != bc.digest({**SPEC, "Priority": 8})


def test_the_create_answer_is_the_sdks_create_response() -> None:
    from batchcompute.client.response import CreateResponse
    assert CreateResponse(_Response({"Id": UID}, 201), False).Id == UID


# --- errors ---------------------------------------------------------------------------------------

def sdk_error(status: int, body: dict[str, Any]) -> Any:
    """The ClientError the SDK raises for an answer (its CheckedApi's check)."""
    from batchcompute.client.client import CheckedApi
    from batchcompute.core.exceptions import ClientError
    api = object.__new__(CheckedApi)
    api._h = False
    with pytest.raises(ClientError) as e:
        api._check(_Response(body, status))
    return e.value


def test_errors_are_batchcomputes_shape_and_the_sdk_reads_them() -> None:
    body = bc.error(404, "InvalidResource.NotFound", "Specified job x is not found.")
    assert set(body) == {"Code", "Message", "RequestId", "HostId"} and body["HostId"] == bc.HOST
    assert re.match(r"^[0-9A-F-]{36}$", body["RequestId"])
    e = sdk_error(404, body)
    assert (e.get_status_code(), e.get_code(), e.get_msg()) == (404, "InvalidResource.NotFound",
                                                                "Specified job x is not found.")


@pytest.mark.parametrize(("status", "code", "message", "expected"), [
    (400, None, "Priority: Input should be less than or equal to 1000", "InvalidParameter"),
    (400, None, "InvalidName: Specified parameter Name is not valid.", "InvalidName"),
    (400, None, "DAG.Tasks.a.Parameters: InvalidStdoutRedirectPath: Specified …", "InvalidStdoutRedirectPath"),
    (400, "IdempotentTokenMismatch", "…", "IdempotentTokenMismatch"),
    (401, "Unauthenticated", "not authenticated: signature mismatch", "SignatureDoesNotMatch"),
    (403, "Forbidden", 'dagjobs.lakejob.io is forbidden: User "bc:bot" cannot create', "Forbidden"),
    (404, "NotFound", "dagjobs.lakejob.io \"x\" not found", "InvalidResource.NotFound"),
    (409, "StateConflict", "User operation is invalid. The current resource state is Running.", "StateConflict"),
    (409, "Conflict", "the object has been modified", "StateConflict"),
    (422, "Invalid", "spec.Priority: Invalid value: 5000: should be less than or equal to 1000", "InvalidParameter"),
    (422, "Invalid", 'DagJob "x" is invalid: spec: Invalid value: "object": InvalidName: Specified parameter Name is '
                     "not valid.", "InvalidName"),
    (502, None, "bad gateway", "InternalError"),
    (503, None, "the Kubernetes API did not answer; retry", "ServiceUnavailable"),
])
def test_error_codes(status: int, code: str | None, message: str, expected: str) -> None:
    assert bc.error(status, code, message)["Code"] == expected


def test_register_serves_the_sdks_paths_with_batchcomputes_errors() -> None:
    from aiohttp import web

    from lakejob.gateway import server
    app = web.Application()
    gw = server.Gateway(kube=None, keys=None)  # type: ignore[arg-type]
    bc.register(app, gw)
    assert gw.shapes["/jobs"] is bc.error
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    assert routes == {("POST", "/jobs"), ("GET", "/jobs"), ("GET", "/jobs/{job_id}"), ("PUT", "/jobs/{job_id}"),
                      ("DELETE", "/jobs/{job_id}"), ("POST", "/jobs/{job_id}/stop"), ("POST", "/jobs/{job_id}/start"),
                      ("GET", "/jobs/{job_id}/tasks"), ("GET", "/jobs/{job_id}/tasks/{task}"),
                      ("GET", "/jobs/{job_id}/tasks/{task}/instances"),
                      ("GET", "/jobs/{job_id}/tasks/{task}/instances/{instance}")}


# --- the SDK against the gateway's handlers, the Kubernetes edge in memory ------------------------
# The app runs on a loopback port of this process, its Kubernetes calls (lakejob.gateway.jobs.Jobs)
# replaced by a dict; the SDK runs unmodified in a thread, signing as it does (the middleware checks
# the signature). What the apiserver would do with field selectors is done here on the dicts.

class MemoryJobs:
    def __init__(self) -> None:
        self.objs: dict[str, dict[str, Any]] = {}
        self.count = 0

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        from lakejob.gateway.jobs import ApiError
        meta = obj["metadata"]
        assert meta["namespace"] == "team-b"
        name = meta.get("name") or f"{meta['generateName']}{self.count:05d}"
        if name in self.objs:
            raise ApiError(409, "AlreadyExists", f'dagjobs.lakejob.io "{name}" already exists', "create")
        self.count += 1
        stored = json.loads(json.dumps(obj))
        stored["metadata"].update(name=name, uid=f"uid-{self.count}",
                                  creationTimestamp=f"2026-12-03T10:00:{self.count:02d}Z")
        self.objs[name] = stored
        return json.loads(json.dumps(stored))

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return json.loads(json.dumps(self.objs[name])) if name in self.objs else None

    async def select(self, kind: str, namespace: str, labels: Any = None, fields: str | None = None) -> list[Any]:
        def matches(o: dict[str, Any]) -> bool:
            for term in filter(None, (fields or "").split(",")):
                path, _, value = term.partition("=")
                node: Any = o
                for part in path.split("."):
                    node = (node or {}).get(part)
                if (node or "") != value.replace("\\", ""):  # the apiserver: absent is empty
                    return False
            return True
        return [json.loads(json.dumps(o)) for o in self.objs.values() if matches(o)]

    def owner(self) -> dict[str, str]:
        return {jobs.OWNER: "bc:bot"}  # the one key of these tests stands for bc:bot

    async def delete(self, obj: dict[str, Any]) -> bool:
        return self.objs.pop(obj["metadata"]["name"], None) is not None

    async def merge_patch(self, obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
        stored = self.objs[obj["metadata"]["name"]]
        assert stored["metadata"]["uid"] == obj["metadata"]["uid"]
        stored["spec"].update(patch["spec"])
        return stored

    def operator(self, uid: str, **status: Any) -> None:
        """What the operator's reconcile writes: status.Id and the rest."""
        obj = next(o for o in self.objs.values() if o["metadata"]["uid"] == uid)
        obj["status"] = {"Id": uid, "CreationTime": "2026-12-03T10:00:00.000Z", **status}


AK, SK = "LTAIexampleBatchAK01", "batchcompute-secret-of-ak"


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    from aiohttp.test_utils import TestServer
    from batchcompute.utils import constants, functions

    from lakejob.gateway import identity, server
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"batchcompute:\n  - {{accessKeyId: {AK}, accessKeySecret: {SK}, "
                    "as: {user: 'bc:bot', namespace: team-b}}\n")
    memory = MemoryJobs()
    monkeypatch.setattr(server, "jobs", lambda request: memory)
    gw = server.Gateway(kube=None, keys=identity.KeysFile(str(keys)))  # type: ignore[arg-type]
    test_server = TestServer(server.make_app(gw, [bc.register]), host="127.0.0.1")
    await test_server.start_server()
    # register_region changes the SDK's globals: put them back after the test.
    monkeypatch.setattr(constants, "SERVICE_PORT", constants.SERVICE_PORT)
    monkeypatch.setitem(functions.ENDPOINT_INFO, "lakejob", "")
    from batchcompute import Client
    Client.register_region("lakejob", "127.0.0.1", port=test_server.port)
    yield memory
    await test_server.close()


def sdk(secret: str = SK) -> Any:
    from batchcompute import Client
    return Client("127.0.0.1", AK, secret)


def sdk_job(priority: int = 1) -> Any:
    from batchcompute.resources import DAG, JobDescription, TaskDescription
    task = TaskDescription()
    task.Parameters.Command.CommandLine = "python main.py"
    task.Parameters.StdoutRedirectPath = task.Parameters.StderrRedirectPath = "oss://bucket/logs/"
    task.InstanceCount, task.ClusterId = 3, "cls-0001"
    dag = DAG()
    dag.add_task("etl", task)
    job = JobDescription()
    job.Name, job.Priority, job.DAG = "nightly", priority, dag
    return job


async def test_the_sdk_creates_gets_lists_and_stops_jobs(gateway: MemoryJobs) -> None:
    import asyncio

    from batchcompute.core.exceptions import ClientError

    def run() -> None:
        client = sdk()
        first = client.create_job(sdk_job()).Id
        assert first == "uid-1" and gateway.objs["job-00000"]["metadata"]["annotations"] == {jobs.OWNER: "bc:bot"}
        # Before the operator's first status: found by its uid, Waiting.
        job = client.get_job(first)
        assert (job.Id, job.State, job.Name, job.Priority, job.Owner) == (first, "Waiting", "nightly", 1, "bc:bot")
        gateway.operator(first, State="Running", StartTime="2026-12-03T10:00:01.000Z",
                         Tasks={"etl": {"State": "Running", "FinishedIndexes": "1"}})
        assert client.get_job(first).State == "Running" and client.get_job(first).StartTime is not None
        desc = client.get_job_description(first)
        assert desc.Priority == 1 and desc.DAG.Tasks["etl"].InstanceCount == 3
        second = client.create_job(sdk_job(2)).Id
        # Paged one by one, in creation order; State selects.
        page1 = client.list_jobs("", 1)
        page2 = client.list_jobs(page1.NextMarker, 1)
        assert [j.Id for j in page1.Items] == [first] and [j.Id for j in page2.Items] == [second]
        assert page2.NextMarker == ""
        assert [j.Id for j in client.list_jobs("", 10, state="Running").Items] == [first]
        assert [j.Id for j in client.easy_list("jobs")] == [first, second]
        # Tasks and instances.
        assert [(t.TaskName, t.State) for t in client.list_tasks(first, "", 10)] == [("etl", "Running")]
        assert client.get_task(first, "etl").State == "Running"
        assert [(i.InstanceId, i.State) for i in client.list_instances(first, "etl", 0, 2)] == [
            (0, "Running"), (1, "Finished")]
        assert [i.InstanceId for i in client.easy_list("instances", first, "etl")] == [0, 1, 2]
        assert client.get_instance(first, "etl", 1).State == "Finished"
        # Priority, stop, start.
        client.change_job_priority(first, 9)
        assert gateway.objs["job-00000"]["spec"]["Priority"] == 9 and client.get_job(first).Priority == 9
        client.stop_job(first)
        assert gateway.objs["job-00000"]["spec"]["suspend"] is True
        client.start_job(first)  # still Running in status (the operator not there yet), but being stopped
        assert gateway.objs["job-00000"]["spec"]["suspend"] is False
        with pytest.raises(ClientError) as e:
            client.start_job(first)
        assert (e.value.status, e.value.code) == (409, "StateConflict")
        with pytest.raises(ClientError) as e:
            client.delete_job(first)  # as BatchCompute: not while it runs
        assert (e.value.status, e.value.code) == (409, "StateConflict")
        gateway.operator(first, State="Finished")
        client.delete_job(first)
        assert "job-00000" not in gateway.objs
        with pytest.raises(ClientError) as e:
            client.get_job(first)
        assert (e.value.status, e.value.code) == (404, "InvalidResource.NotFound")
        with pytest.raises(ClientError) as e:
            client.get_task(second, "nope")
        assert (e.value.status, e.value.code) == (404, "InvalidResource.NotFound")

    await asyncio.to_thread(run)


async def test_the_sdks_idempotent_token_and_refusals(gateway: MemoryJobs) -> None:
    import asyncio

    from batchcompute.core.exceptions import ClientError

    def run() -> None:
        client = sdk()
        token = "nightly-2026-12-03 / run #1 " + "x" * 100
        first = client.create_job(sdk_job(), token).Id
        assert client.create_job(sdk_job(), token).Id == first and len(gateway.objs) == 1
        with pytest.raises(ClientError) as e:
            client.create_job(sdk_job(5), token)
        assert (e.value.status, e.value.code) == (400, "IdempotentTokenMismatch")
        with pytest.raises(ClientError) as e:
            client.create_job(sdk_job(5000))
        assert (e.value.status, e.value.code) == (400, "InvalidPriority") and "Priority" in e.value.msg
        assert len(gateway.objs) == 1
        with pytest.raises(ClientError) as e:
            client.list_jobs("", 500)
        assert (e.value.status, e.value.code) == (400, "InvalidMaxItemCount")
        with pytest.raises(ClientError) as e:
            sdk("wrong secret").get_job(first)
        assert (e.value.status, e.value.code) == (401, "SignatureDoesNotMatch")

    await asyncio.to_thread(run)
