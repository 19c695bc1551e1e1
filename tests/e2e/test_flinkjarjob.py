"""FlinkJarJob end to end on the real control plane: kubectl apply → JobManager pod, TaskManager
ReplicaSet, Service, ConfigMap → DLI statuses → cleanup.

KWOK plays the pods (docs/testing.md): the sim.lakejob.io/* labels in a manifest's jobManager:
block decide whether the fake JobManager keeps running, finishes or fails. The JobManager's REST
API does not exist on KWOK, so the session operator follows pod phases; the restart test serves a
fake REST API and a notification endpoint from this process and points its own operator at them.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakejob.render.flink import job_id
from tests.e2e.kubectl import Kubectl, Operator

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def job(name: str, outcome: str | None = None, delay: str = "1s", jm: dict[str, Any] | None = None,
        **spec: Any) -> dict[str, Any]:
    jobmanager: dict[str, Any] = jm or {}
    if outcome:
        jobmanager.setdefault("labels", {})["sim.lakejob.io/outcome"] = outcome
        jobmanager.setdefault("annotations", {}).setdefault("sim.lakejob.io/delay", delay)
    body = {"name": name, "main_class": "com.example.Main", "entrypoint": "local:///opt/flink/usrlib/job.jar",
            **spec}
    if jobmanager:
        body["jobManager"] = jobmanager
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "FlinkJarJob", "metadata": {"name": name}, "spec": body}


def status(kubectl: Kubectl, name: str, ns: str) -> dict[str, Any]:
    return (kubectl.get("flinkjarjob", name, ns) or {}).get("status") or {}


def wait_status(kubectl: Kubectl, name: str, ns: str, *names: str, timeout: float = 60) -> dict[str, Any]:
    return kubectl.wait_for(lambda: (s := status(kubectl, name, ns)).get("status_name") in names and s,
                            f"FlinkJarJob {name} to reach {'/'.join(names)}", timeout=timeout, namespace=ns,
                            show=("flinkjarjob", name))


def pods(kubectl: Kubectl, ns: str, name: str, role: str) -> list[dict[str, Any]]:
    return kubectl.list("pods", ns, f"lakejob.io/name={name},lakejob.io/role={role}")


def reasons(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    return [e["reason"] for e in kubectl.list("events", ns) if e["involvedObject"]["name"] == name]


def test_the_dli_example_pasted_unchanged_runs_sized_in_cus(kubectl: Kubectl, namespace: str,
                                                             operator: Operator) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "flinkjarjob-dli.yaml"))
    st = wait_status(kubectl, "dli-test", namespace, "job_running")
    assert st["state"] == "Running" and st["name"] == "test" and st["queue_name"] == "testQueue"
    assert st["resources"] == {"parallelism": 1, "unusedCUs": 0,
                               "jobManager": {"cus": 1, "cpu": "1", "memory": "4096Mi"},
                               "taskManager": {"cus": 1, "cpu": "1", "memory": "4096Mi", "replicas": 1, "slots": 1}}
    assert len(st["job_id"]) == 32 and st["jobManagerPod"] == "dli-test-jm-1" and st["attempt"] == 1
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True", "Complete": "False", "Failed": "False", "Suspended": "False"}
    assert st["observedGeneration"] == 1
    (jm,) = pods(kubectl, namespace, "dli-test", "jobmanager")
    tms = kubectl.wait_for(lambda: (p := pods(kubectl, namespace, "dli-test", "taskmanager")) and
                           all(x["status"].get("phase") == "Running" for x in p) and p,
                           "the TaskManager pod to run", namespace=namespace)
    assert len(tms) == 1
    for pod, args0 in ((jm, "standalone-job"), (tms[0], "taskmanager")):
        assert pod["spec"]["nodeName"], "scheduled on a KWOK node"
        container = pod["spec"]["containers"][0]
        # (the apiserver writes 4096Mi in its canonical form)
        assert container["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
        assert container["resources"]["limits"] == {"memory": "4Gi"}
        assert container["args"][0] == args0 and container["image"] == "flink:2.3.0-java17"
        assert pod["metadata"]["labels"]["lakejob.io/queue"] == "testQueue"
        assert pod["metadata"]["annotations"]["lakejob.io/log-bucket"] == "bucketName"
        # The packages from the store (the operator's LAKEJOB_PACKAGES_URL), then the files to userData.
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["fetch", "dependency-files"]
        assert pod["spec"]["initContainers"][0]["args"][:2] == [
            "--map", "s3://lakejob-packages/dli/javaQueueStream.jar=/opt/lakejob/packages/javaQueueStream.jar"]
    args = jm["spec"]["containers"][0]["args"]
    assert args == ["standalone-job", "--job-id", st["job_id"], "--job-classname",
                    "org.apache.flink.examples.streaming.JavaQueueStream", "--", "-windowSize", "2000", "-rate3"]
    assert jm["metadata"]["ownerReferences"][0]["kind"] == "FlinkJarJob"
    cm = kubectl.get("configmap", "dli-test-flink-config", namespace)
    assert cm is not None
    conf = yaml.safe_load(cm["data"]["config.yaml"])
    assert conf["taskmanager.numberOfTaskSlots"] == 1 and conf["parallelism.default"] == 1
    assert conf["jobmanager.rpc.address"] == "dli-test-jobmanager"
    # The fetched jars are in usrlib (/opt/flink/usrlib/packages), on Flink's classpath without a word.
    assert conf["pipeline.classpaths"] == "file:///opt/flink/lakejob-files/"
    svc = kubectl.get("service", "dli-test-jobmanager", namespace)
    assert svc is not None and sorted(p["port"] for p in svc["spec"]["ports"]) == [6123, 6124, 8081]
    assert {"JobManagerCreated", "JobManagerRunning"} <= set(reasons(kubectl, namespace, "dli-test"))
    printed = kubectl.run("get", "fjj", "dli-test", "-n", namespace)
    assert printed.split("\n")[0].split() == ["NAME", "STATUS", "PARALLELISM", "RESTARTS", "AGE"]
    assert printed.split("\n")[1].split()[:4] == ["dli-test", "job_running", "1", "0"]
    assert "dli-test" in kubectl.run("get", "lakejob", "-n", namespace)


def test_a_finished_job_is_job_finish_and_its_taskmanagers_go(kubectl: Kubectl, namespace: str,
                                                              operator: Operator) -> None:
    kubectl.apply(job("done", "succeed", cu_number=3), namespace)
    st = wait_status(kubectl, "done", namespace, "job_finish")
    assert st["state"] == "Succeeded" and st["resources"]["taskManager"]["replicas"] == 2
    kubectl.wait_for(lambda: kubectl.get("replicaset", "done-taskmanager", namespace) is None and
                     not pods(kubectl, namespace, "done", "taskmanager"), "the TaskManagers to be removed",
                     namespace=namespace)
    assert kubectl.get("pod", "done-jm-1", namespace) is not None  # kept, for its logs


def test_failure_without_restart_is_final_job_running_exception(kubectl: Kubectl, namespace: str,
                                                                operator: Operator) -> None:
    kubectl.apply(job("boom", "fail", jm={"annotations": {"sim.lakejob.io/exit-code": "1443"}}), namespace)
    st = kubectl.wait_for(lambda: (s := status(kubectl, "boom", namespace)).get("state") == "Failed" and s,
                          "boom to fail", namespace=namespace, show=("flinkjarjob", "boom"))
    assert st["status_name"] == "job_running_exception"
    assert "the Flink job failed (the JobManager exited with 1443)" in st["status_desc"]
    assert "restart_when_exception: true" in st["status_desc"]  # the suggestion
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "False", "Complete": "False", "Failed": "True", "Suspended": "False"}


def test_stop_cancels_and_removes_every_pod_and_run_starts_it_again(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(job("forever"), namespace)
    wait_status(kubectl, "forever", namespace, "job_running")
    kubectl.run("patch", "fjj", "forever", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    st = wait_status(kubectl, "forever", namespace, "job_cancel_success")
    assert st["state"] == "Cancelled"
    assert not kubectl.list("pods", namespace, "lakejob.io/name=forever")
    for kind, name in (("replicaset", "forever-taskmanager"), ("service", "forever-jobmanager"),
                       ("configmap", "forever-flink-config")):
        assert kubectl.get(kind, name, namespace) is None, f"{kind}/{name} left behind"
    messages = [e["message"] for e in kubectl.list("events", namespace) if e["involvedObject"]["name"] == "forever"]
    assert any(m.startswith("job_canceling:") for m in messages) and \
        any(m.startswith("job_cancel_success:") for m in messages)
    # DLI's run: suspend set back to false is a new run, attempt 2, with its children made again.
    kubectl.run("patch", "fjj", "forever", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    st = wait_status(kubectl, "forever", namespace, "job_running")
    assert (st["attempt"], st["jobManagerPod"], st["runGeneration"]) == (2, "forever-jm-2", 3)
    assert kubectl.get("replicaset", "forever-taskmanager", namespace) is not None
    messages = [e["message"] for e in kubectl.list("events", namespace) if e["involvedObject"]["name"] == "forever"]
    assert any(m.startswith("job_init: new run of the spec's generation 3") for m in messages), messages


def test_an_edited_running_job_is_cancelled_and_runs_again_with_the_new_spec(
        kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(job("edited", cu_number=2), namespace)
    wait_status(kubectl, "edited", namespace, "job_running")
    kubectl.run("patch", "fjj", "edited", "-n", namespace, "--type=merge", "-p",
                '{"spec":{"cu_number":3,"entrypoint_args":"--rate 2"}}')
    st = kubectl.wait_for(lambda: (s := status(kubectl, "edited", namespace)).get("attempt") == 2
                          and s.get("status_name") == "job_running" and s, "the second run", namespace=namespace,
                          show=("flinkjarjob", "edited"))
    assert st["resources"]["taskManager"]["replicas"] == 2 and st["runGeneration"] == 2
    kubectl.wait_for(lambda: len(pods(kubectl, namespace, "edited", "taskmanager")) == 2, "2 TaskManagers",
                     namespace=namespace)
    assert kubectl.get("pod", "edited-jm-1", namespace) is None
    jm = kubectl.get("pod", "edited-jm-2", namespace)
    assert jm is not None and "--rate" in jm["spec"]["containers"][0]["args"]
    fixed = kubectl.result("patch", "fjj", "edited", "-n", namespace, "--type=merge", "-p",
                           '{"spec":{"checkpoint_path":"file:///tmp/elsewhere"}}')
    assert fixed.returncode != 0 and "checkpoint_path cannot be added to or removed" in fixed.stderr


def test_deleting_the_job_removes_every_child(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    kubectl.apply(job("tidy", cu_number=3), namespace)
    wait_status(kubectl, "tidy", namespace, "job_running")
    kubectl.wait_for(lambda: len(pods(kubectl, namespace, "tidy", "taskmanager")) == 2, "2 TaskManagers",
                     namespace=namespace)
    children = [("pod", "tidy-jm-1"), ("service", "tidy-jobmanager"), ("configmap", "tidy-flink-config"),
                ("replicaset", "tidy-taskmanager")]
    for kind, name in children:
        obj = kubectl.get(kind, name, namespace)
        assert obj is not None and obj["metadata"]["ownerReferences"][0]["name"] == "tidy", f"{kind}/{name}"
    kubectl.run("delete", "fjj", "tidy", "-n", namespace, "--wait=true", "--timeout=30s")
    kubectl.wait_for(lambda: all(kubectl.get(k, n, namespace) is None for k, n in children)
                     and not kubectl.list("pods", namespace, "lakejob.io/name=tidy"),
                     "the garbage collector to remove every child", namespace=namespace)


def test_a_second_job_with_the_same_checkpoint_path_is_rejected(kubectl: Kubectl, namespace: str,
                                                               operator: Operator) -> None:
    kubectl.apply(job("first", checkpoint_path="obs://bucket/ckpt/"), namespace)
    wait_status(kubectl, "first", namespace, "job_running")
    kubectl.apply(job("second", checkpoint_path="obs://bucket/ckpt"), namespace)
    st = wait_status(kubectl, "second", namespace, "job_submit_fail")
    assert st["reason"] == "CheckpointPathInUse" and "FlinkJarJob first" in st["status_desc"]
    assert "CheckpointPathInUse" in reasons(kubectl, namespace, "second")
    assert not kubectl.list("pods", namespace, "lakejob.io/name=second")
    assert status(kubectl, "first", namespace)["status_name"] == "job_running"


# ------------------------------------------------------------------------------------ restarts


class FakeFlink:
    """A Flink REST API (/jobs/overview, checkpoints) and a notification endpoint, in this process."""

    def __init__(self) -> None:
        self.jids: list[str] = []
        self.events: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _json(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.endswith("/jobs/overview"):
                    self._json({"jobs": [{"jid": j, "state": "RUNNING"} for j in outer.jids]})
                elif "/checkpoints" in self.path:
                    jid = self.path.split("/jobs/")[1].split("/")[0]
                    self._json({"latest": {"completed": {"external_path": f"file:/ckpt/{jid}/chk-7"}}})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.events.append({"content_type": self.headers["Content-Type"], **json.loads(body)})
                self.send_response(202)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_flink() -> Iterator[FakeFlink]:
    fake = FakeFlink()
    yield fake
    fake.close()


def test_failures_restart_resuming_from_the_checkpoint_until_resume_max_num_then_fail_and_notify(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path, fake_flink: FakeFlink, crds_installed: None) -> None:
    ns = f"solo-fjj-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", ns)
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={
        "LAKEJOB_FLINK_REST_URL_TEMPLATE": fake_flink.url + "/{namespace}/{name}",
        "LAKEJOB_NOTIFICATION_TOPICS": f"alerts={fake_flink.url}/hook",
        "LAKEJOB_FLINK_RESTART_DELAY_SECONDS": "1", "LAKEJOB_FLINK_POLL_INTERVAL_SECONDS": "1"})
    try:
        op.start()
        kubectl.wait_for(lambda: kubectl.ok("get", "serviceaccount", "default", "-n", ns), "default ServiceAccount")
        kubectl.apply(job("flaky", "fail", delay="3s", jm={"annotations": {"sim.lakejob.io/exit-code": "1443"}},
                          restart_when_exception=True, resume_checkpoint=True, resume_max_num=2,
                          checkpoint_path="file:///ckpt", smn_topic="alerts"), ns)
        uid = kubectl.wait_for(lambda: (kubectl.get("flinkjarjob", "flaky", ns) or {}).get("metadata", {}).get("uid"),
                               "the job's uid")
        fake_flink.jids = [job_id(uid, attempt) for attempt in (1, 2, 3, 4)]
        seen: dict[str, list[str]] = {}  # JobManager pod → its arguments (a restart deletes the one before)

        def failed() -> dict[str, Any] | None:
            for pod in kubectl.list("pods", ns, "lakejob.io/role=jobmanager"):
                seen[pod["metadata"]["name"]] = pod["spec"]["containers"][0]["args"]
            st = status(kubectl, "flaky", ns)
            return st if st.get("state") == "Failed" else None

        st = kubectl.wait_for(failed, "three failures, the third final", timeout=90, namespace=ns,
                              show=("flinkjarjob", "flaky"))
        assert st["status_name"] == "job_running_exception" and st["attempt"] == 3 and st["restarts"] == 2
        assert len(st["restart_times"]) == 2
        assert "not restarted: resume_max_num is 2 restart(s) per hour and 2 were made in the last hour" \
            in st["status_desc"]
        # Each restart resumed from the newest checkpoint the REST API reported for the attempt before.
        for attempt in (2, 3):
            args = seen[f"flaky-jm-{attempt}"]
            expected = f"file:/ckpt/{job_id(uid, attempt - 1)}/chk-7"
            assert args[args.index("--fromSavepoint") + 1] == expected
            assert args[args.index("--job-id") + 1] == job_id(uid, attempt)
        assert "flaky-jm-4" not in seen
        # Each restart deleted the failed attempt's pod; the last attempt's is kept for its logs.
        kubectl.wait_for(lambda: [p["metadata"]["name"] for p in kubectl.list("pods", ns, "lakejob.io/role=jobmanager")]
                         == ["flaky-jm-3"], "only the last attempt's JobManager pod left", namespace=ns)
        events = kubectl.wait_for(lambda: len(fake_flink.events) >= 3 and fake_flink.events,
                                  "three CloudEvents at the notification endpoint", namespace=ns)
        assert len(events) == 3
        assert all(e["type"] == "io.lakejob.flinkjarjob.failed" and e["specversion"] == "1.0" and
                   e["content_type"] == "application/cloudevents+json" for e in events)
        assert [e["data"]["final"] for e in events] == [False, False, True]
        assert events[-1]["data"]["status_name"] == "job_running_exception"
        assert "resume_max_num" in events[-1]["data"]["status_desc"]
        assert {"Restarted", "JobRunning"} <= set(reasons(kubectl, ns, "flaky"))
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


# ------------------------------------------------------------------------------------ admission

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no-name", {"name": None}, "spec.name: Required value"),
    ("name-58", {"name": "x" * 58}, "spec.name: Too long"),
    ("desc-513", {"desc": "x" * 513}, "spec.desc: Too long"),
    ("queue-129", {"queue_name": "q" * 129}, "spec.queue_name: Too long"),
    ("cu-one", {"cu_number": 1},
     "spec.cu_number: Invalid value: \"object\": cu_number − manager_cu_number = 1 − 1 = 0 CU(s) left"),
    ("manager-too-big", {"cu_number": 3, "manager_cu_number": 3}, "= 3 − 3 = 0 CU(s) left for TaskManagers"),
    ("tm-too-big", {"cu_number": 3, "tm_cus": 4}, "fewer than one TaskManager of tm_cus = 4"),
    ("parallel-too-big", {"cu_number": 3, "parallel_number": 5, "tm_slot_num": 2},
     "spec.parallel_number: Invalid value: \"object\": parallel_number = 5 needs 5 slots, but "
     "(cu_number − manager_cu_number) / tm_cus = (3 − 1) / 1 = 2 TaskManager(s) × 2 slot(s) = 4 slot(s)"),
    ("cu-zero", {"cu_number": 0}, "spec.cu_number: Invalid value: 0"),
    ("slots-zero", {"tm_slot_num": 0}, "spec.tm_slot_num"),
    ("resume-zero", {"resume_max_num": 0}, "resume_max_num must be -1 (unlimited) or greater than 0"),
    ("resume-minus-two", {"resume_max_num": -2}, "spec.resume_max_num"),
    ("log-no-bucket", {"log_enabled": True}, "obs_bucket is required when log_enabled is true"),
    ("jar-hdfs", {"entrypoint": "hdfs://nn/job.jar"}, "spec.entrypoint"),
    ("dep-jar-ftp", {"dependency_jars": ["ftp://h/a.jar"]}, "spec.dependency_jars[0]"),
    ("dep-file-http", {"dependency_files": ["https://x/a.csv"]}, "spec.dependency_files[0]"),
    ("checkpoint-no-scheme", {"checkpoint_path": "bucket/ckpt"}, "spec.checkpoint_path"),
    ("args-quote", {"entrypoint_args": "--name 'unterminated"}, "spec.entrypoint_args"),
    ("runtime-owned", {"runtime_config": "parallelism.default: 4"}, "runtime_config cannot set"),
    ("runtime-not-lines", {"runtime_config": "just words"}, "spec.runtime_config"),
    ("tag-prefix", {"tags": [{"key": "lakejob.io/x", "value": "y"}]}, "spec.tags[0].key"),
    ("tag-dup", {"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}, "tags must have distinct keys"),
    ("version-words", {"flink_version": "latest"}, "spec.flink_version"),
    ("unknown-field", {"colour": "blue"}, 'unknown field "spec.colour"'),
    ("toleration-op", {"taskManager": {"tolerations": [{"operator": "Maybe"}]}},
     "spec.taskManager.tolerations[0].operator"),
    ("reserved-label", {"jobManager": {"labels": {"lakejob.io/role": "x"}}}, "labels under lakejob.io/"),
]


def test_invalid_manifests_are_rejected_at_admission_naming_the_field(
        kubectl: Kubectl, namespace: str, crds_installed: None) -> None:
    failures = []
    for name, spec, expected in INVALID:
        body = {k: v for k, v in {"name": "ok", **spec}.items() if v is not None}
        manifest = {"apiVersion": "lakejob.io/v1alpha1", "kind": "FlinkJarJob", "metadata": {"name": name},
                    "spec": body}
        r = kubectl.result("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
        if r.returncode == 0 or expected not in r.stderr:
            failures.append(f"{name}: rc={r.returncode} expected {expected!r} in: {r.stderr.strip()}")
    assert not failures, "\n".join(failures)
    assert kubectl.list("flinkjarjobs", namespace) == []
    edit = kubectl.result("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job("fixed")))
    assert edit.returncode == 0
    # An edit (a new run) is checked as a creation is.
    changed = kubectl.result("patch", "fjj", "fixed", "-n", namespace, "--type=merge", "-p",
                             '{"spec":{"cu_number":0}}')
    assert changed.returncode != 0 and "spec.cu_number: Invalid value: 0" in changed.stderr
