"""The gateway as users run it (issue 13): the chart's gateway Deployment and Service (conftest.
incluster_operator enables it, its keys file a Secret), reached with `kubectl port-forward`, driven
by pylivy. A Livy batch runs SparkPi for real on the real node; its log is the driver's own,
paged exactly as Livy pages it (the pages put together are `kubectl logs` of the driver). A Livy
session runs pyspark and sql statements for real in its own pod (its statement server, beside the
Connect server), through the apiserver's Service proxy; a running statement is cancelled. The
chart's two gateway replicas give the same answers, and one deleted (its Deployment makes another)
loses nothing.
"""
from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from livy.client import LivyClient
from livy.models import SessionKind, SessionState, SparkRuntimeError, StatementKind, StatementState
from livy.session import LivySession

from tests.e2e.kubectl import KUBECTL, Kubectl
from tests.e2e.real import GATEWAY_PASSWORD, GATEWAY_USER, REAL_NODE
from tests.e2e.gateway import free_port
from tests.e2e.test_gateway_livy import rbac

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")]
JOB_TIMEOUT = 300


@contextlib.contextmanager
def gateway_url(kubectl: Kubectl, release: str, ns: str, log: Path, target: str | None = None) -> Iterator[str]:
    """`kubectl port-forward svc/<release>-gateway 8998` (what a user outside the cluster runs), or
    to `target` (e.g. one gateway pod)."""
    port = free_port()
    with open(log, "ab") as out:
        forward = subprocess.Popen([KUBECTL, "port-forward", "-n", ns, target or f"svc/{release}-gateway",
                                    f"{port}:8998"], env=kubectl.env, stdout=out, stderr=out)
    try:
        def answers() -> bool:
            assert forward.poll() is None, f"kubectl port-forward ended: {log.read_text()[-2000:]}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                return True
            except OSError:
                return False

        kubectl.wait_for(answers, "the port-forward to the gateway", timeout=60, namespace=ns)
        yield f"http://127.0.0.1:{port}"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_a_livy_batch_runs_sparkpi_for_real_and_its_driver_log_pages_exactly(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, tmp_path: Path) -> None:
    release, op_ns = incluster_operator
    ns = real_namespace
    rbac(kubectl, ns, {"kind": "User", "name": GATEWAY_USER, "apiGroup": "rbac.authorization.k8s.io"})
    with gateway_url(kubectl, release, op_ns, tmp_path / "port-forward.log") as url:
        client = LivyClient(url + "/livy", auth=("real", GATEWAY_PASSWORD))
        batch = client.create_batch("local:///opt/spark/examples/jars/spark-examples.jar",
                                    class_name="org.apache.spark.examples.SparkPi", args=["4"],
                                    driver_memory="512M", driver_cores=1, executor_memory="512M",
                                    executor_cores=1, num_executors=1)
        name = f"livy-batch-{batch.batch_id}"
        try:
            deadline = time.monotonic() + JOB_TIMEOUT
            while (state := client.get_batch(batch.batch_id).state) not in (  # type: ignore[union-attr]
                    SessionState.SUCCESS, SessionState.DEAD, SessionState.KILLED):
                assert time.monotonic() < deadline, f"batch {batch.batch_id} still {state}"
                time.sleep(2)
            assert state == SessionState.SUCCESS
            cr = kubectl.get("sparkbatch", name, ns)
            assert cr is not None and cr["status"]["state"] == "success"
            driver = cr["status"]["driverPod"]
            whole = kubectl.run("logs", driver, "-n", ns).splitlines()
            first = client.get_batch_log(batch.batch_id, from_=0, size=7)
            assert first is not None and first.from_ == 0 and first.total == len(whole) and len(first.lines) == 7
            pages, start = [], 0
            while start < first.total:
                page = client.get_batch_log(batch.batch_id, from_=start, size=50)
                assert page is not None and page.from_ == start
                pages += page.lines
                start += 50
            assert pages == whole
            assert any("Pi is roughly 3.1" in line for line in pages)
            tail = client.get_batch_log(batch.batch_id)  # Livy's default: the last 100 lines
            assert tail is not None and tail.lines == whole[-100:] and tail.from_ == max(0, len(whole) - 100)
            client.delete_batch(batch.batch_id)
            kubectl.wait_for(lambda: kubectl.get("sparkbatch", name, ns) is None, "the batch deleted", namespace=ns)
        finally:
            kubectl.run("delete", "sparkbatch", name, "-n", ns, "--wait=false", "--ignore-not-found")
    logs = kubectl.result("logs", "-n", op_ns, "-l", "app.kubernetes.io/name=lakejob-gateway", "--tail=-1").stdout
    assert GATEWAY_PASSWORD not in logs


def test_a_livy_session_runs_pyspark_and_sql_statements_in_its_own_pod(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, tmp_path: Path) -> None:
    release, op_ns = incluster_operator
    ns = real_namespace
    rbac(kubectl, ns, {"kind": "User", "name": GATEWAY_USER, "apiGroup": "rbac.authorization.k8s.io"})
    with gateway_url(kubectl, release, op_ns, tmp_path / "port-forward.log") as url:
        session = LivySession.create(url + "/livy", auth=("real", GATEWAY_PASSWORD), kind=SessionKind.PYSPARK,
                                     driver_memory="512M", driver_cores=1, executor_memory="512M",
                                     executor_cores=1, num_executors=1, echo=False)
        name = f"livy-session-{session.session_id}"
        try:
            deadline = time.monotonic() + JOB_TIMEOUT
            while (state := session.state) in (SessionState.NOT_STARTED, SessionState.STARTING):
                assert time.monotonic() < deadline, f"session {session.session_id} still {state}"
                time.sleep(2)
            assert state == SessionState.IDLE, kubectl.get("sparksession", name, ns)
            # pyspark: one namespace across statements, prints then the last expression's value.
            session.run("total = spark.range(100).selectExpr('sum(id) AS s').first()['s']")
            out = session.run("import socket\nprint('sum', total)\nsocket.gethostname()")
            cr = kubectl.get("sparksession", name, ns)
            assert cr is not None and out.text == f"sum 4950\n'{cr['status']['driverPod']}'"  # in the session's pod
            assert cr["metadata"]["annotations"]["lakejob.io/heartbeat"]  # statements are activity
            with pytest.raises(SparkRuntimeError) as failed:
                session.run("spark.sql('SELECT * FROM no_such_table').collect()")
            assert failed.value.ename == "AnalysisException" and "no_such_table" in (failed.value.evalue or "")
            # sql: Livy's JSON answer (schema and rows).
            client = session.client
            sql = client.create_statement(session.session_id, "SELECT id, id * id AS sq FROM range(3)",
                                          StatementKind.SQL)
            while (sql := client.get_statement(session.session_id, sql.statement_id)).state != StatementState.AVAILABLE:
                time.sleep(0.5)
            assert sql.output is not None and sql.output.json is not None
            assert [f["name"] for f in sql.output.json["schema"]["fields"]] == ["id", "sq"]
            assert sql.output.json["data"] == [[0, 0], [1, 1], [2, 4]]
            # A running statement is cancelled (its Spark job interrupted), and the session goes on.
            slow = client.create_statement(
                session.session_id, "spark.range(10**12).selectExpr('sum(id)').collect()")
            while client.get_statement(session.session_id, slow.statement_id).state == StatementState.WAITING:
                time.sleep(0.2)
            answer = requests.post(f"{url}/livy/sessions/{session.session_id}/statements/{slow.statement_id}/cancel",
                                   auth=("real", GATEWAY_PASSWORD), timeout=30)
            assert (answer.status_code, answer.json()) == (200, {"msg": "canceled"})
            deadline = time.monotonic() + 60
            while (slow := client.get_statement(session.session_id, slow.statement_id)).state != StatementState.CANCELLED:
                assert time.monotonic() < deadline, slow
                time.sleep(0.5)
            assert session.run("6 * 7").text == "42"
            assert [s.statement_id for s in client.list_statements(session.session_id)] == list(range(6))
            session.close()  # DELETE /sessions/{id}
            kubectl.wait_for(lambda: kubectl.get("sparksession", name, ns) is None, "the session deleted", namespace=ns)
        finally:
            kubectl.run("delete", "sparksession", name, "-n", ns, "--wait=false", "--ignore-not-found")



def test_the_charts_two_gateway_replicas_agree_and_a_replaced_one_loses_nothing(
        kubectl: Kubectl, incluster_operator: tuple[str, str], real_namespace: str, tmp_path: Path) -> None:
    release, op_ns = incluster_operator
    ns = real_namespace
    rbac(kubectl, ns, {"kind": "User", "name": GATEWAY_USER, "apiGroup": "rbac.authorization.k8s.io"})
    selector = "app.kubernetes.io/name=lakejob-gateway"
    pods = [p["metadata"]["name"] for p in kubectl.list("pods", op_ns, selector=selector)
            if p["status"].get("phase") == "Running"]
    assert len(pods) == 2, pods
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(gateway_url(kubectl, release, op_ns, tmp_path / f"pf-{i}.log", f"pod/{pod}"))
                for i, pod in enumerate(pods)]
        one, two = (LivyClient(url + "/livy", auth=("real", GATEWAY_PASSWORD)) for url in urls)
        # A session (it never needs to start here): made through one replica, seen alike through both.
        session = one.create_session(SessionKind.SQL, driver_memory="512M", num_executors=1)
        try:
            # (Its state may move on between two calls: the rest is compared.)
            seen = [(s.session_id, s.kind, s.proxy_user) for s in (c.get_session(session.session_id) for c in (one, two))
                    if s is not None]
            assert seen == [(session.session_id, SessionKind.SQL, None)] * 2
            assert [s.session_id for s in two.list_sessions()] == [s.session_id for s in one.list_sessions()]
            two.delete_session(session.session_id)
            assert one.get_session(session.session_id) is None
        finally:
            kubectl.run("delete", "sparksession", f"livy-session-{session.session_id}", "-n", ns, "--wait=false",
                        "--ignore-not-found")
        # A batch made through the replica about to be replaced (its driver fails fast: no such jar).
        batch = one.create_batch("local:///opt/spark/examples/jars/no-such.jar", class_name="NoSuchClass",
                                 driver_memory="512M", driver_cores=1, num_executors=1)
    try:
        # A replica replaced: the Deployment's new pod answers what the old one would have.
        kubectl.run("delete", "pod", pods[0], "-n", op_ns, "--wait=true")
        kubectl.run("rollout", "status", f"deployment/{release}-gateway", "-n", op_ns, "--timeout=120s")
        with gateway_url(kubectl, release, op_ns, tmp_path / "pf-after.log") as url:
            client = LivyClient(url + "/livy", auth=("real", GATEWAY_PASSWORD))
            found = client.get_batch(batch.batch_id)
            assert found is not None and batch.batch_id in [b.batch_id for b in client.list_batches()]
            client.delete_batch(batch.batch_id)
    finally:
        kubectl.run("delete", "sparkbatch", f"livy-batch-{batch.batch_id}", "-n", ns, "--wait=false",
                    "--ignore-not-found")
