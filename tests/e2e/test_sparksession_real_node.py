"""SparkSession, really: the operator installed by Helm from its image runs sessions on the real node.
Each session's driver is a Spark Connect server in the local Spark image, with one real executor
that the driver makes through the ServiceAccount the operator gave it. This test process is the
user: it reaches the driver as docs/sparksession.md tells users to, with `kubectl port-forward` to
the session's driver pod (status.driverPod), and runs queries through pyspark's Connect client (a subprocess: the client
warns about pandas versions, which pytest would turn into errors). The operator reads idle/busy
from the driver's real Spark REST API, through the Service's cluster DNS name (its default
LAKEJOB_SPARK_REST_URL_TEMPLATE): CoreDNS answers it from the EndpointSlice mirrored from the
Endpoints the operator writes (the Service has no selector), which the test also checks follow
the driver of each attempt.

Small CPU requests (the machine has two cores) and one session at a time (each JVM is ~1 GiB);
every test deletes its session when it ends, so the next one has the node to itself.
"""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import KUBECTL, Kubectl
from tests.e2e.real import REAL_NODE, wait_endpoints
from tests.e2e.test_sparksession import reasons, status, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")]

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "real" / "sparksession.yaml"
# A driver and its executor start in 1-3 minutes on the loaded 2-core machine (the Connect server
# listens only after the executor has registered).
START_TIMEOUT = 420
CLIENT_TIMEOUT = 240  # the first query of a fresh JVM took 15-100 s here
IDLE_TIMEOUT = 20  # heartbeatTimeoutInSecond of the session that ends
SUM_CLIENT = """
import sys
from pyspark.sql import SparkSession, functions as F
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
print("server", spark.version)
print("sum", spark.range(100).agg(F.sum("id")).first()[0], flush=True)
"""


def sparksession(name: str, **spec: Any) -> dict[str, Any]:
    """examples/real/sparksession.yaml (what `make demo` runs) named `name`, with `spec`'s fields."""
    example = yaml.safe_load(EXAMPLE.read_text())
    return {**example, "metadata": {"name": name}, "spec": {**example["spec"], **spec}}


def pods(kubectl: Kubectl, ns: str, name: str, role: str | None = None) -> list[dict[str, Any]]:
    selector = f"lakejob.io/kind=SparkSession,lakejob.io/name={name}" + (f",lakejob.io/role={role}" if role else "")
    return kubectl.list("pods", ns, selector)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def port_forward(kubectl: Kubectl, ns: str, name: str, log: Path) -> Iterator[tuple[str, str]]:
    """What docs/sparksession.md tells a user outside the cluster to run: `kubectl port-forward
    pod/<status.driverPod> 15002 4040` (the Service has no selector, so not `svc/`); yields
    (connect URL, REST base URL)."""
    connect, ui = free_port(), free_port()
    driver = kubectl.run("get", "sparksession", name, "-n", ns, "-o", "jsonpath={.status.driverPod}").strip()
    with open(log, "ab") as out:
        forward = subprocess.Popen([KUBECTL, "port-forward", "-n", ns, f"pod/{driver}",
                                    f"{connect}:15002", f"{ui}:4040"], env=kubectl.env, stdout=out, stderr=out)
    try:
        def answers() -> bool:
            assert forward.poll() is None, f"kubectl port-forward ended: {log.read_text()[-2000:]}"
            try:
                return isinstance(get_json(f"http://127.0.0.1:{ui}/api/v1/applications"), list)
            except OSError:
                return False

        kubectl.wait_for(answers, "the port-forward to the driver's REST API", timeout=60, namespace=ns)
        yield f"sc://127.0.0.1:{connect}", f"http://127.0.0.1:{ui}/api/v1"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def run_client(code_or_script: list[str], timeout: float = CLIENT_TIMEOUT) -> str:
    r = subprocess.run([sys.executable, *code_or_script], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


def event_messages(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    return [e["message"] for e in kubectl.list("events", ns) if e["involvedObject"].get("name") == name]


def delete_and_wait_gone(kubectl: Kubectl, ns: str, name: str) -> None:
    kubectl.ok("delete", "sparksession", name, "-n", ns, "--wait=false")
    kubectl.wait_for(lambda: not pods(kubectl, ns, name), f"the pods of session {name} to be gone", timeout=120,
                     namespace=ns)


def test_a_connect_client_sums_on_a_real_executor_and_the_session_reads_busy_then_idle(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str], tmp_path: Path) -> None:
    ns, name = real_namespace, "conn"
    kubectl.apply(sparksession(name, heartbeatTimeoutInSecond=0), ns)
    try:
        started = time.monotonic()
        st = wait_state(kubectl, name, ns, "idle", timeout=START_TIMEOUT)
        print(f"session {name} idle after {time.monotonic() - started:.0f}s")
        assert st["connectUrl"] == f"sc://{name}-session-svc.{ns}.svc:15002" and st["attempt"] == 1
        # Idle means the Connect server listens: the driver pod is Ready (its probe on 15002).
        (driver,) = pods(kubectl, ns, name, "driver")
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in driver["status"]["conditions"])
        assert driver["spec"]["nodeName"] == "lakejob-real"
        assert driver["spec"]["serviceAccountName"] == "lakejob-spark-driver"  # the namespace's, the operator's
        # The Service has no selector: the operator's Endpoints point at the driver (CoreDNS answered
        # the operator's REST polls from their mirrored EndpointSlice: the session read the REST API).
        assert "selector" not in kubectl.get("service", f"{name}-session-svc", ns)["spec"]  # type: ignore[index]
        wait_endpoints(kubectl, ns, f"{name}-session-svc", "SparkSession", driver["status"]["podIP"])

        with port_forward(kubectl, ns, name, tmp_path / "port-forward.log") as (url, rest):
            t0 = time.monotonic()
            out = run_client(["-c", SUM_CLIENT, url])
            print(f"sum query: {time.monotonic() - t0:.1f}s")
            assert "sum 4950" in out and "server 4.0.1" in out, out
            # The work ran on the real executor: its tasks in the driver's own REST API, at the
            # address of the executor pod that the driver made (owned by it).
            executors = {e["id"]: e for e in get_json(f"{rest}/applications/{st['appId']}/executors")}
            (pod,) = pods(kubectl, ns, name, "executor")
            assert pod["spec"]["nodeName"] == "lakejob-real" and pod["status"]["phase"] == "Running"
            (ref,) = pod["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["uid"]) == ("Pod", driver["metadata"]["uid"])
            (mine,) = [e for i, e in executors.items() if i != "driver"]
            assert mine["hostPort"].split(":")[0] == pod["status"]["podIP"]
            assert mine["completedTasks"] > 0 and executors["driver"]["completedTasks"] == 0, executors

            # A long query: two tasks sleeping 15 s each on the executor's one core (~30 s).
            client = subprocess.Popen([sys.executable, str(DATA / "sparksession_busy_client.py"), url, "15"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                st = wait_state(kubectl, name, ns, "busy", timeout=90)
                assert st["runningJobs"] >= 1 and st.get("idleSince") is None
                out, _ = client.communicate(timeout=CLIENT_TIMEOUT)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            assert client.returncode == 0 and "ran 2 tasks" in out, out[-2000:]
        st = wait_state(kubectl, name, ns, "idle", timeout=60)
        assert st["runningJobs"] == 0 and st["idleSince"] >= st["lastActivityTime"]
    finally:
        delete_and_wait_gone(kubectl, ns, name)


def test_a_killed_driver_recovers_and_serves_again_then_idle_past_its_timeout_the_session_ends_with_its_pods(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str], tmp_path: Path) -> None:
    ns, name = real_namespace, "phoenix"
    kubectl.apply(sparksession(name, heartbeatTimeoutInSecond=0, auto_recovery=True, max_retry_times=2), ns)
    try:
        wait_state(kubectl, name, ns, "idle", timeout=START_TIMEOUT)
        with port_forward(kubectl, ns, name, tmp_path / "port-forward-1.log") as (url, _):
            assert "sum 4950" in run_client(["-c", SUM_CLIENT, url])
        # SIGKILL to every process of the driver's container but its init (tini), as the kernel's
        # OOM killer or a crash would: the JVM dies, tini exits with its status, the pod fails.
        kubectl.result("exec", f"{name}-session-1", "-n", ns, "--", "kill", "-KILL", "-1")
        killed = time.monotonic()

        def failed() -> dict[str, Any] | None:
            pod = kubectl.get("pod", f"{name}-session-1", ns)
            return pod if pod is not None and pod["status"]["phase"] == "Failed" else None

        first = kubectl.wait_for(failed, "the killed driver pod to fail", timeout=60, namespace=ns)
        (term,) = [c["state"]["terminated"] for c in first["status"]["containerStatuses"]]
        assert term["exitCode"] == 137, term

        def second() -> dict[str, Any] | None:
            s = status(kubectl, name, ns)
            return s if s.get("attempt") == 2 and s.get("state") in ("idle", "error") else None

        st = kubectl.wait_for(second, "the second driver to serve", timeout=START_TIMEOUT, namespace=ns,
                              show=("sparksession", name))
        print(f"session {name} idle again {time.monotonic() - killed:.0f}s after its driver was killed")
        assert st["state"] == "idle" and st["driverPod"] == f"{name}-session-2", st
        assert "Recovering" in reasons(kubectl, name, ns)
        (driver,) = [p for p in pods(kubectl, ns, name, "driver") if p["metadata"]["name"] == st["driverPod"]]
        # the new driver only
        wait_endpoints(kubectl, ns, f"{name}-session-svc", "SparkSession", driver["status"]["podIP"])
        # The same Service name, now in front of the new driver: a client reconnects (a new port-forward).
        with port_forward(kubectl, ns, name, tmp_path / "port-forward-2.log") as (url, rest):
            assert "sum 4950" in run_client(["-c", SUM_CLIENT, url])
            assert [a["id"] for a in get_json(f"{rest}/applications")] == [st["appId"]]

        # Idle past heartbeatTimeoutInSecond (0 so far, so that the slow steps above could not end it;
        # it may change at any time): the session ends, and with it every pod of both attempts.
        idle = wait_state(kubectl, name, ns, "idle", timeout=60)
        kubectl.run("patch", "sparksession", name, "-n", ns, "--type=merge", "-p",
                    json.dumps({"spec": {"heartbeatTimeoutInSecond": IDLE_TIMEOUT}}))
        st = wait_state(kubectl, name, ns, "dead", timeout=IDLE_TIMEOUT + 90)
        assert st["reason"] == "IdleTimeout" and st.get("connectUrl") is None and st.get("idleSince") is None
        assert f"longer than heartbeatTimeoutInSecond ({IDLE_TIMEOUT}s)" in st["message"]
        idle_since = datetime.fromisoformat(idle["idleSince"].replace("Z", "+00:00")).timestamp()
        assert st["update_time"] / 1000 - idle_since >= IDLE_TIMEOUT  # it was idle that long, at least
        assert any(m.startswith("shutting_down: ") for m in event_messages(kubectl, ns, name))

        def leftovers() -> list[str]:
            out = [f"pod/{p['metadata']['name']}" for p in pods(kubectl, ns, name)]
            for kind, child in (("service", f"{name}-session-svc"), ("endpoints", f"{name}-session-svc")):
                out += [f"{kind}/{child}"] if kubectl.get(kind, child, ns) is not None else []
            return out

        kubectl.wait_for(lambda: not leftovers(), "the pods of both drivers and the Service (and its "
                         "Endpoints) of the ended session to be gone", timeout=120, namespace=ns)
        assert status(kubectl, name, ns)["state"] == "dead"  # only the record remains
    finally:
        delete_and_wait_gone(kubectl, ns, name)
