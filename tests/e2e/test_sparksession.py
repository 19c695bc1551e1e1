"""SparkSession end to end on the real control plane, with KWOK playing the driver pod.

KWOK's driver has no Spark inside, so the operator's REST poller is pointed (LAKEJOB_SPARK_REST_URL_TEMPLATE,
as a user would point it) at a small HTTP server in this test that answers, per session, with the
payloads recorded from a real Spark Connect server (data/sparksession_rest.json). The test
switches a session's answer between idle and busy the way a real driver's would change.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import Kubectl, Operator

ROOT = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).parent / "data" / "sparksession_rest.json").read_text())
RUN = f"ss{uuid.uuid4().hex[:4]}"  # this module's namespaces: ssXXXX-*, watched by its own operator
pytestmark = pytest.mark.e2e


class FakeRest:
    """Answers GET /<namespace>/<name>/<appId> with the payload set for that session (default: idle)."""

    def __init__(self) -> None:
        self.payloads: dict[tuple[str, str], Any] = {}
        self.hits: dict[tuple[str, str], int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                ns, name, _app = self.path.strip("/").split("/")
                fake.hits[(ns, name)] = fake.hits.get((ns, name), 0) + 1
                body = json.dumps(fake.payloads.get((ns, name), RECORDED["jobs_idle"])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def rest() -> Iterator[FakeRest]:
    fake = FakeRest()
    yield fake
    fake.server.shutdown()


def rest_operator(kubeconfig: str, namespaces: str, log: Path, rest: FakeRest) -> Operator:
    """An operator (not started yet) watching `namespaces` whose REST poller asks `rest` every 0.5 s:
    KWOK's drivers answer through it (also tests/e2e/test_kueue_sparksession.py)."""
    return Operator(kubeconfig, ["--namespace", namespaces], log,
                    env={"LAKEJOB_SPARK_REST_URL_TEMPLATE": f"http://127.0.0.1:{rest.port}/{{namespace}}/{{name}}/{{appId}}",
                         "LAKEJOB_SESSION_POLL_INTERVAL_SECONDS": "0.5", "LAKEJOB_METRICS_PORT": "0"})


@pytest.fixture(scope="module")
def session_operator(kubeconfig: str, crds_installed: None, rest: FakeRest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = rest_operator(kubeconfig, f"{RUN}-*", tmp_path_factory.mktemp("ss-operator") / "operator.log", rest)
    op.start()
    yield op
    op.stop()


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = kubectl.fresh_namespace(RUN)
    yield name
    kubectl.ok("delete", "namespace", name, "--wait=false")


def session(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkSession", "metadata": {"name": name},
            "spec": {"kind": "spark", "cluster_name": "c1", **spec}}


def status(kubectl: Kubectl, name: str, ns: str) -> dict[str, Any]:
    return (kubectl.get("sparksession", name, ns) or {}).get("status") or {}


def wait_state(kubectl: Kubectl, name: str, ns: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    return kubectl.wait_for(lambda: (s := status(kubectl, name, ns)).get("state") in states and s,
                            f"SparkSession {name} to reach {'/'.join(states)}", timeout=timeout,
                            namespace=ns, show=("sparksession", name))


def children(name: str) -> list[tuple[str, str]]:
    """What a session makes (its driver runs as the namespace's shared account, which outlives it)."""
    return [("pod", f"{name}-session-1"), ("service", f"{name}-session-svc")]


def gone(kubectl: Kubectl, name: str, ns: str) -> bool:
    return all(kubectl.get(kind, child, ns) is None for kind, child in children(name))


def reasons(kubectl: Kubectl, name: str, ns: str) -> list[str]:
    return [e["reason"] for e in kubectl.list("events", ns) if e["involvedObject"]["name"] == name]


def test_lifecycle_idle_busy_idle_then_the_idle_timeout_deletes_everything(
        kubectl: Kubectl, ns: str, session_operator: Operator, rest: FakeRest) -> None:
    kubectl.apply(session("nb", heartbeatTimeoutInSecond=5), ns)
    st = wait_state(kubectl, "nb", ns, "idle")
    # The way there (faster than kubectl can look): one Event per transition.
    kubectl.wait_for(lambda: sorted(reasons(kubectl, "nb", ns)) == ["DriverCreated", "DriverRunning", "Idle"],
                     "the Events of not_started, starting and idle", namespace=ns)
    assert st["connectUrl"] == f"sc://nb-session-svc.{ns}.svc:15002"
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True", "Complete": "False", "Failed": "False", "Suspended": "False", "RestReachable": "True"}
    for kind, child in children("nb"):
        obj = kubectl.get(kind, child, ns)
        assert obj is not None and obj["metadata"]["ownerReferences"][0]["kind"] == "SparkSession", (kind, child)
    svc = kubectl.get("service", "nb-session-svc", ns)
    assert svc is not None and 15002 in [p["port"] for p in svc["spec"]["ports"]]
    printed = kubectl.run("get", "ss", "nb", "-n", ns)
    assert "URL" in printed and "sc://nb-session-svc" in printed and "idle" in printed

    rest.payloads[(ns, "nb")] = RECORDED["jobs_busy"]
    st = wait_state(kubectl, "nb", ns, "busy", timeout=20)
    assert st["runningJobs"] == 1 and "idleSince" not in st
    rest.payloads[(ns, "nb")] = RECORDED["jobs_idle_after"]
    st = wait_state(kubectl, "nb", ns, "idle", timeout=20)
    assert st["idleSince"]

    st = wait_state(kubectl, "nb", ns, "dead", timeout=30)
    assert st["reason"] == "IdleTimeout" and "connectUrl" not in st
    kubectl.wait_for(lambda: gone(kubectl, "nb", ns), "the idle session's pod, Service and RBAC to go",
                     namespace=ns)
    assert {"DriverCreated", "DriverRunning", "Idle", "JobsRunning", "IdleTimeout"} <= set(reasons(kubectl, "nb", ns))


def test_the_dli_example_runs_and_deleting_it_mid_session_removes_everything(
        kubectl: Kubectl, ns: str, session_operator: Operator) -> None:
    kubectl.run("apply", "-n", ns, "-f", str(ROOT / "examples" / "sparksession-dli.yaml"))
    name = yaml.safe_load((ROOT / "examples" / "sparksession-dli.yaml").read_text())["metadata"]["name"]
    st = wait_state(kubectl, name, ns, "idle")
    assert st["sc_type"] == "A" and st["cluster_name"] == "test_cluster" and st["kind"] == "spark"
    assert st["resources"]["numExecutors"] == 6
    pod = kubectl.get("pod", f"{name}-session-1", ns)
    assert pod is not None
    assert "org.apache.spark.sql.connect.service.SparkConnectServer" in pod["spec"]["containers"][0]["args"]
    kubectl.run("delete", "ss", name, "-n", ns, "--wait=true", "--timeout=30s")
    kubectl.wait_for(lambda: gone(kubectl, name, ns), "the garbage collector to remove the session's objects",
                     namespace=ns)


def test_stopping_a_session_shuts_it_down_to_success(kubectl: Kubectl, ns: str, session_operator: Operator) -> None:
    kubectl.apply(session("stopme", heartbeatTimeoutInSecond=0), ns)
    wait_state(kubectl, "stopme", ns, "idle")
    kubectl.run("patch", "ss", "stopme", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    st = wait_state(kubectl, "stopme", ns, "success", timeout=30)
    assert st["reason"] == "Stopped"
    kubectl.wait_for(lambda: gone(kubectl, "stopme", ns), "the stopped session's objects to go", namespace=ns)
    back = kubectl.result("patch", "ss", "stopme", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    assert back.returncode != 0 and "suspend cannot go back to false" in back.stderr


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no-kind", {"kind": None}, "spec.kind: Required value"),
    ("kind-r", {"kind": "sparkr"}, 'spec.kind: Unsupported value: "sparkr"'),
    ("no-cluster", {"cluster_name": None}, "cluster_name is required"),
    ("queue-and-cluster", {"queue": "q"}, "queue and cluster_name cannot coexist"),
    ("old-spark", {"spark_version": "3.3.2"}, "needs spark_version 3.4 or later"),
    ("mem-bare", {"driverMemory": "2048"}, "must include the unit"),
    ("exec-mem-bare", {"executorMemory": "4096"}, "must include the unit"),
    ("hb-negative", {"heartbeatTimeoutInSecond": -1}, "spec.heartbeatTimeoutInSecond"),
    ("name-long", {"name": "x" * 129}, "spec.name: Too long"),
    ("sc-d", {"sc_type": "D"}, 'spec.sc_type: Unsupported value: "D"'),
    ("image-basic", {"image": "me/spark:4"}, "image is valid only when feature is custom"),
    ("batch-field", {"file": "app.jar"}, 'unknown field "spec.file"'),
]


def test_invalid_sessions_are_rejected_at_admission(kubectl: Kubectl, ns: str, crds_installed: None) -> None:
    failures = []
    for name, fields, expected in INVALID:
        body = {k: v for k, v in {"kind": "spark", "cluster_name": "c1", **fields}.items() if v is not None}
        manifest = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkSession", "metadata": {"name": name},
                    "spec": body}
        r = kubectl.result("apply", "-n", ns, "-f", "-", stdin=json.dumps(manifest))
        if r.returncode == 0 or expected not in r.stderr:
            failures.append(f"{name}: rc={r.returncode} expected {expected!r} in: {r.stderr.strip()}")
    assert not failures, "\n".join(failures)
    assert kubectl.list("sparksessions", ns) == []


def test_heartbeat_annotation_keeps_an_idle_session_alive(
        kubectl: Kubectl, ns: str, session_operator: Operator, rest: FakeRest) -> None:
    """A client bumps lakejob.io/heartbeat while it works without running Spark jobs: no shutdown;
    once it stops, the idle clock runs out."""
    kubectl.apply(session("kept", heartbeatTimeoutInSecond=4), ns)
    wait_state(kubectl, "kept", ns, "idle")
    for beat in range(6):  # 6 × 1.5 s = 9 s, over twice the timeout
        kubectl.run("annotate", "--overwrite", "sparksession", "kept", "-n", ns, f"lakejob.io/heartbeat=beat-{beat}")
        time.sleep(1.5)
        assert status(kubectl, "kept", ns)["state"] == "idle", status(kubectl, "kept", ns)
    st = wait_state(kubectl, "kept", ns, "dead", timeout=30)
    assert st["reason"] == "IdleTimeout"


def test_a_failed_driver_is_recovered_with_auto_recovery_then_errors_past_its_retries(
        kubectl: Kubectl, ns: str, session_operator: Operator) -> None:
    """recovering on the real control plane: KWOK fails each driver after 2 s with exit code 3."""
    sim = {"labels": {"sim.lakejob.io/outcome": "fail"},
           "annotations": {"sim.lakejob.io/delay": "2s", "sim.lakejob.io/exit-code": "3"}}
    kubectl.apply(session("rc", auto_recovery=True, max_retry_times=1, driver=sim), ns)
    st = wait_state(kubectl, "rc", ns, "error", timeout=90)
    assert st["attempt"] == 2 and st["driverPod"] == "rc-session-2"
    assert "exit code 3" in st["message"] and "after 1 recoveries" in st["message"]
    # The way there, one Event per transition: the first driver's failure sent it to recovering,
    # and recovering made the second driver.
    events = [(e["reason"], e["message"]) for e in kubectl.list("events", ns) if e["involvedObject"]["name"] == "rc"]
    assert any("new driver 1 of 1" in message for _, message in events), events
    assert "Recovering" in [reason for reason, _ in events]
    first = kubectl.get("pod", "rc-session-1", ns)  # kept for its logs, as the docs say
    assert first is not None and first["status"]["phase"] == "Failed"
