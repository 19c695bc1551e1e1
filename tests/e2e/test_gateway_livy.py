"""Livy's batch API served by `lakejob gateway` (issue 13), driven by pylivy — the `livy` package,
unmodified — against the local control plane, with the operator running the batches on KWOK.

- A Livy key (basic auth) mapped to a Kubernetes user: create, watch to success, get, state, log,
  list, delete, with every answer compared to the SparkBatch `kubectl` sees; ids 0, 1, … per
  namespace, in the CR's name and label.
- RBAC decides: that user is refused (403, Livy's shape) in a namespace it has no Role in; a
  ServiceAccount's bearer token works where its Role is and is refused elsewhere; a wrong
  password, no credentials and an unknown scheme are 401 before any Kubernetes call.
- A bad body is refused naming the field, and nothing is created.
- Two gateway replicas give the same list; a gateway restarted between create and get loses nothing.
- Interactive sessions: pylivy creates, lists, reads and deletes them as SparkSessions (Livy's
  defaults made explicit); statements wait for an idle session (KWOK's has no Spark: statements
  running for real are test_gateway_real_node.py's).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from livy.client import LivyClient
from livy.models import SessionKind, SessionState

from tests.e2e.gateway import Gateway, running
from tests.e2e.kubectl import Kubectl, Operator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
USER = "livy:alice"  # the Kubernetes user alice's Livy key stands for
PASSWORD = "alice-password-do-not-print"
BODY = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi",
        "args": ["10"], "driverMemory": "512M", "numExecutors": 1,
        # KWOK's pods run no code: the simulated driver succeeds after a second.
        "driver": {"labels": {"sim.lakejob.io/outcome": "succeed"}, "annotations": {"sim.lakejob.io/delay": "1s"}}}


def rbac(kubectl: Kubectl, ns: str, subject: dict[str, str]) -> None:
    """What a Livy user needs in `ns` (docs/gateway.md): SparkBatches and SparkSessions, the logs of
    their pods, and the sessions' statement servers (patch: a statement marks its session active)."""
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "livy-user"},
                   "rules": [{"apiGroups": ["lakejob.io"], "resources": ["sparkbatches"],
                              "verbs": ["get", "list", "watch", "create", "delete"]},
                             {"apiGroups": ["lakejob.io"], "resources": ["sparksessions"],
                              "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
                             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                             {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]}]}, ns)
    kubectl.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": f"livy-user-{subject['name'].replace(':', '-')}"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "livy-user"},
                   "subjects": [subject]}, ns)


@pytest.fixture
def other_namespace(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    ns = f"{namespace}-b"  # under the session's prefix: the operator watches it too
    kubectl.run("create", "namespace", ns)
    yield ns
    kubectl.ok("delete", "namespace", ns, "--wait=false")


@pytest.fixture
def keys(tmp_path: Path, namespace: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"livy": [{"user": "alice", "password": PASSWORD,
                                               "as": {"user": USER, "groups": ["livy-users"], "namespace": namespace}}]}))
    return path


@pytest.fixture
def gateway(kubeconfig: str, keys: Path, tmp_path: Path) -> Iterator[Gateway]:
    with running(kubeconfig, keys, tmp_path / "gateway.log", PASSWORD) as gw:
        yield gw


def livy(gw: Gateway, path: str = "/livy", auth: Any = ("alice", PASSWORD)) -> LivyClient:
    return LivyClient(gw.url + path, auth=auth)


def wait_batch(client: LivyClient, batch_id: int, *states: SessionState, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.get_batch(batch_id)
        if batch is not None and batch.state in states:
            return batch
        time.sleep(0.5)
    raise AssertionError(f"batch {batch_id} never reached {states}: {client.get_batch(batch_id)}")


def call(gw: Gateway, method: str, path: str, body: Any = None, auth: Any = ("alice", PASSWORD),
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    r = requests.request(method, gw.url + path, json=body, auth=auth, headers=headers, timeout=30)
    return r.status_code, r.json()


def test_pylivy_creates_watches_reads_lists_and_deletes_batches_as_the_keys_user(
        kubectl: Kubectl, namespace: str, operator: Operator, gateway: Gateway) -> None:
    rbac(kubectl, namespace, {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"})
    client = livy(gateway)
    first = client.create_batch(BODY["file"], class_name=BODY["className"], args=BODY["args"],
                                driver_memory="512M", num_executors=1)
    assert first.batch_id == 0 and first.state in (SessionState.STARTING, SessionState.RUNNING)
    cr = kubectl.get("sparkbatch", "livy-batch-0", namespace)
    assert cr is not None and cr["metadata"]["labels"]["lakejob.io/livy-id"] == "0"
    assert cr["spec"] == {"file": BODY["file"], "className": BODY["className"], "args": ["10"],
                          "driverMemory": "512M", "numExecutors": 1}
    # pylivy cannot send lakejob's own fields; a raw Livy request can (here: KWOK's simulated outcome).
    status, second = call(gateway, "POST", "/livy/batches", BODY)
    assert status == 200 and second["id"] == 1, second
    done = wait_batch(client, 1, SessionState.SUCCESS)
    cr = kubectl.get("sparkbatch", "livy-batch-1", namespace)
    assert cr is not None and cr["status"]["state"] == "success" and done.app_id == cr["status"]["appId"]
    assert client.get_batch(1).log == cr["status"].get("log", [])  # type: ignore[union-attr]
    log = client.get_batch_log(1)
    assert log is not None and log.batch_id == 1 and log.total == len(log.lines)
    status, state = call(gateway, "GET", "/livy/batches/1/state")
    assert (status, state) == (200, {"id": 1, "state": "success"})
    assert [b.batch_id for b in client.list_batches()] == [0, 1]
    status, listed = call(gateway, "GET", f"/namespaces/{namespace}/livy/batches?from=1&size=5")
    assert status == 200 and listed["from"] == 1 and listed["total"] == 2 and [b["id"] for b in listed["sessions"]] == [1]
    client.delete_batch(0)
    kubectl.wait_for(lambda: kubectl.get("sparkbatch", "livy-batch-0", namespace) is None, "batch 0 deleted",
                     namespace=namespace)
    assert client.get_batch(0) is None
    assert call(gateway, "GET", "/livy/batches/0")[0] == 404
    third = client.create_batch(BODY["file"], class_name=BODY["className"])
    assert third.batch_id == 2  # the next after the largest in use


def test_rbac_decides_what_each_caller_may_do(
        kubectl: Kubectl, namespace: str, other_namespace: str, gateway: Gateway) -> None:
    rbac(kubectl, namespace, {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"})
    kubectl.run("create", "serviceaccount", "bob", "-n", other_namespace)
    rbac(kubectl, other_namespace, {"kind": "ServiceAccount", "name": "bob", "namespace": other_namespace})
    token = kubectl.run("create", "token", "bob", "-n", other_namespace).strip()
    bearer = {"Authorization": f"Bearer {token}"}
    # alice (a Livy key) has no Role in the other namespace: the apiserver's refusal, in Livy's shape.
    status, body = call(gateway, "POST", f"/namespaces/{other_namespace}/livy/batches", BODY)
    assert status == 403 and USER in body["msg"] and "sparkbatches" in body["msg"], body
    # bob (a bearer token) works where his Role is, and nowhere else.
    status, body = call(gateway, "POST", f"/namespaces/{other_namespace}/livy/batches", BODY, auth=None, headers=bearer)
    assert status == 200 and body["id"] == 0, body
    status, body = call(gateway, "GET", f"/namespaces/{namespace}/livy/batches", auth=None, headers=bearer)
    assert status == 403 and f"system:serviceaccount:{other_namespace}:bob" in body["msg"], body
    # No credential grants anything by itself.
    for auth, headers in ((("alice", "wrong"), None), (None, None), (None, {"Authorization": "Digest x"}),
                          (("mallory", PASSWORD), None)):
        status, body = call(gateway, "GET", "/livy/batches", auth=auth, headers=headers)
        assert status == 401 and body["msg"].startswith("not authenticated"), body
    assert kubectl.list("sparkbatches", namespace) == []


def test_a_bad_body_is_refused_naming_the_field_and_nothing_is_created(
        kubectl: Kubectl, namespace: str, gateway: Gateway) -> None:
    rbac(kubectl, namespace, {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"})
    status, body = call(gateway, "POST", "/livy/batches", {**BODY, "numExecutors": -3})
    assert status == 400 and "numExecutors" in body["msg"], body
    status, body = call(gateway, "POST", "/livy/batches", {"className": "A"})
    assert status == 400 and "file" in body["msg"], body
    assert kubectl.list("sparkbatches", namespace) == []


def test_two_replicas_agree_and_a_restart_loses_nothing(
        kubectl: Kubectl, namespace: str, gateway: Gateway, kubeconfig: str, keys: Path, tmp_path: Path) -> None:
    rbac(kubectl, namespace, {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"})
    other = Gateway(kubeconfig, keys, tmp_path / "gateway-2.log")
    other.start()
    try:
        ids = [call(gw, "POST", "/livy/batches", BODY)[1]["id"] for gw in (gateway, other, gateway, other)]
        assert ids == [0, 1, 2, 3]
        # The same list from either (ids: the states move on between two calls while an operator runs).
        lists = [call(gw, "GET", "/livy/batches")[1] for gw in (gateway, other)]
        assert [[b["id"] for b in one["sessions"]] for one in lists] == [[0, 1, 2, 3]] * 2
    finally:
        other.stop()
    gateway.stop()
    gateway.start()
    status, body = call(gateway, "GET", "/livy/batches/3")
    assert status == 200 and body["id"] == 3, json.dumps(body)


def test_pylivy_sessions_are_sparksessions_and_statements_wait_for_them_to_be_idle(
        kubectl: Kubectl, namespace: str, gateway: Gateway) -> None:
    rbac(kubectl, namespace, {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"})
    client = livy(gateway)
    assert client.server_version().major == "0" and not client.legacy_server()  # GET /version
    session = client.create_session(SessionKind.PYSPARK, driver_memory="512M", num_executors=1, name="notebook")
    assert session.session_id == 0 and session.kind == SessionKind.PYSPARK and session.state in (
        SessionState.NOT_STARTED, SessionState.STARTING)
    cr = kubectl.get("sparksession", "livy-session-0", namespace)
    assert cr is not None and cr["metadata"]["labels"]["lakejob.io/livy-id"] == "0"
    assert cr["metadata"]["annotations"]["lakejob.io/owner"] == USER
    # Livy's defaults, made explicit: YARN's default queue.
    assert cr["spec"] == {"kind": "pyspark", "driverMemory": "512M", "numExecutors": 1, "name": "notebook",
                          "queue": "default"}
    # Session ids and batch ids are separate, as in Livy.
    assert call(gateway, "POST", "/livy/batches", BODY)[1]["id"] == 0
    status, second = call(gateway, "POST", "/livy/sessions", {"queue": "q1"})
    assert status == 201 and second["id"] == 1 and second["kind"] == "pyspark", second
    assert [s.session_id for s in client.list_sessions()] == [0, 1]
    status, page = call(gateway, "GET", f"/namespaces/{namespace}/livy/sessions?from=1&size=1")
    assert status == 200 and page["total"] == 2 and [s["id"] for s in page["sessions"]] == [1]
    status, state = call(gateway, "GET", "/livy/sessions/1/state")
    assert status == 200 and state["id"] == 1 and state["state"] in ("not_started", "starting"), state
    # No statement before the session is idle (KWOK's driver runs no Spark: it never is).
    status, body = call(gateway, "POST", "/livy/sessions/0/statements", {"code": "1 + 1"})
    assert status == 400 and body["msg"].startswith("Session 0 is ") and "while it is idle or busy" in body["msg"]
    assert call(gateway, "GET", "/livy/sessions/7/statements")[0] == 404
    status, body = call(gateway, "POST", "/livy/sessions", {"kind": "scala"})
    assert status == 400 and "kind" in body["msg"], body
    client.delete_session(0)
    kubectl.wait_for(lambda: kubectl.get("sparksession", "livy-session-0", namespace) is None, "session 0 deleted",
                     namespace=namespace)
    assert client.get_session(0) is None and [s.session_id for s in client.list_sessions()] == [1]
