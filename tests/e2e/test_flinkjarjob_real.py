"""Real Flink (the distribution PyPI's apache-flink ships: pyflink/bin, pyflink/lib/flink-dist) runs
what the operator renders, and the operator's REST poller follows it.

1. A tiny streaming job (data/FlinkTinyJob.java) is compiled with this machine's javac against flink-dist.
2. A FlinkJarJob for it is applied; the operator (its REST poller pointed at this host by
   LAKEJOB_FLINK_REST_URL_TEMPLATE) renders the ConfigMap and the JobManager pod, which KWOK "runs".
3. The test runs them for real here: the rendered configuration (only addresses, ports and the CU
   size changed for one host) and the JobManager pod's arguments, as the image's entrypoint would
   (`standalone-job …` → `standalone-job.sh start-foreground …`), plus one `taskmanager`.
4. The operator reports job_running from the REST API, with the job's checkpoints. Killing the
   TaskManager fails the job (restart-strategy none is ours: every failure is the operator's to
   count), which the operator sees as FAILED: job_running_exception, then attempt 2 with
   --fromSavepoint <the newest checkpoint>. The test runs attempt 2 too, and Flink restores it.

On Kubernetes the JobManager would exit when its job fails (exit 1443, the KWOK tests cover
that); here the KWOK pod cannot know the local process ended, so the job's runtime_config keeps
the JobManager up (execution.shutdown-on-application-finish: false) for the REST API to say FAILED.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import store  # noqa: E402  (hack/store.py: javac into a jar)
from tests.e2e.kubectl import Kubectl, Operator  # noqa: E402
from tests.e2e.test_flinkjarjob import status

DATA = Path(__file__).parent / "data"
try:
    import pyflink

    FLINK_HOME: Path | None = Path(pyflink.__file__).parent
except ImportError:  # the `flink` extra is not installed
    FLINK_HOME = None
pytestmark = [pytest.mark.e2e, pytest.mark.flink,
              pytest.mark.skipif(FLINK_HOME is None or not (FLINK_HOME / "bin" / "standalone-job.sh").exists(),
                                 reason="real Flink needs the apache-flink distribution (pip install apache-flink)"),
              pytest.mark.skipif(shutil.which("javac") is None, reason="compiling the job needs javac")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rest(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


class LocalFlink:
    """The rendered JobManager and TaskManagers as processes on this host."""

    def __init__(self, tmp: Path, rest_port: int):
        self.tmp, self.rest_port = tmp, rest_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def configure(self, config_yaml: str, log4j: str) -> None:
        conf = yaml.safe_load(config_yaml)
        # One host instead of a Service and pod IPs; the rest is the operator's rendering.
        conf.update({"jobmanager.rpc.address": "localhost", "rest.address": "localhost",
                     "jobmanager.bind-host": "localhost", "taskmanager.bind-host": "localhost",
                     "rest.bind-address": "localhost", "rest.port": self.rest_port,
                     "jobmanager.rpc.port": free_port(), "blob.server.port": free_port(),
                     "taskmanager.rpc.port": "0", "io.tmp.dirs": str(self.tmp)})
        (self.tmp / "conf").mkdir(exist_ok=True)
        (self.tmp / "conf" / "config.yaml").write_text(yaml.safe_dump(conf))
        (self.tmp / "conf" / "log4j-console.properties").write_text(log4j)

    def start(self, name: str, container_args: list[str]) -> None:
        """What the image's docker-entrypoint.sh does with `standalone-job …` / `taskmanager …`."""
        assert FLINK_HOME is not None
        script = {"standalone-job": "standalone-job.sh", "taskmanager": "taskmanager.sh"}[container_args[0]]
        args = [a.replace("$(POD_IP)", "127.0.0.1") for a in container_args[1:]]
        env = {**os.environ, "FLINK_CONF_DIR": str(self.tmp / "conf"), "FLINK_LOG_DIR": str(self.tmp)}
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(["bash", str(FLINK_HOME / "bin" / script), "start-foreground", *args],
                                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def local_flink(tmp_path: Path) -> Iterator[LocalFlink]:
    flink = LocalFlink(tmp_path, free_port())
    yield flink
    flink.stop_all()


def compile_job(tmp: Path) -> Path:
    jar = tmp / "job.jar"
    jar.write_bytes(store.flink_jar([DATA / "FlinkTinyJob.java"], "FlinkTinyJob"))
    return jar


def test_real_flink_runs_the_rendered_cluster_and_the_operator_follows_it_through_a_restart(
        kubectl: Kubectl, kubeconfig: str, tmp_path: Path, local_flink: LocalFlink, crds_installed: None) -> None:
    jar = compile_job(tmp_path)
    ckpt = tmp_path / "ckpt"
    ns = f"solo-fjr-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", ns)
    op = Operator(kubeconfig, ["--namespace", ns], tmp_path / "op.log", env={
        "LAKEJOB_FLINK_REST_URL_TEMPLATE": f"http://127.0.0.1:{local_flink.rest_port}",
        "LAKEJOB_FLINK_CU_MEMORY_MIB": "1536",  # two JVMs on a shared 2-core test machine
        "LAKEJOB_FLINK_POLL_INTERVAL_SECONDS": "1", "LAKEJOB_FLINK_RESTART_DELAY_SECONDS": "1"})
    try:
        op.start()
        kubectl.wait_for(lambda: kubectl.ok("get", "serviceaccount", "default", "-n", ns), "default ServiceAccount")
        kubectl.apply({"apiVersion": "lakejob.io/v1alpha1", "kind": "FlinkJarJob", "metadata": {"name": "tiny"},
                       "spec": {"name": "tiny", "main_class": "FlinkTinyJob", "entrypoint": f"file://{jar}",
                                "entrypoint_args": "--tag 'hello world'", "checkpoint_path": f"file://{ckpt}",
                                "restart_when_exception": True, "resume_checkpoint": True, "resume_max_num": 3,
                                "runtime_config": "execution.checkpointing.interval: 1s\n"
                                                  "execution.shutdown-on-application-finish: false\n"
                                                  "heartbeat.interval: 1000\nheartbeat.timeout: 4000\n"}}, ns)
        pod1 = kubectl.wait_for(lambda: kubectl.get("pod", "tiny-jm-1", ns), "the JobManager pod", namespace=ns)
        cm = kubectl.wait_for(lambda: kubectl.get("configmap", "tiny-flink-config", ns), "the ConfigMap", namespace=ns)
        taskmanagers = kubectl.wait_for(lambda: kubectl.get("replicaset", "tiny-taskmanager", ns), "the TaskManagers",
                                      namespace=ns)
        local_flink.configure(cm["data"]["config.yaml"], cm["data"]["log4j-console.properties"])
        local_flink.start("jm-1", pod1["spec"]["containers"][0]["args"])
        local_flink.start("tm-1", taskmanagers["spec"]["template"]["spec"]["containers"][0]["args"])

        def reported(state: str, job: str) -> dict[str, Any] | None:
            st = status(kubectl, "tiny", ns)
            return st if st.get("flinkState") == state and st.get("job_id") == job else None

        job1 = pod1["spec"]["containers"][0]["args"][2]
        st = kubectl.wait_for(lambda: (s := reported("RUNNING", job1)) and s.get("last_checkpoint") and s,
                              "the REST poller to report the job RUNNING with a checkpoint", timeout=180,
                              namespace=ns, show=("flinkjarjob", "tiny"))
        assert st["status_name"] == "job_running", local_flink.log("jm-1")
        assert st["last_checkpoint"].startswith(f"file:{ckpt}/{job1}/chk-")

        local_flink.kill("tm-1")  # the job fails: Flink's restart strategy is none, the operator restarts
        seen: set[str] = set()

        def restarted() -> dict[str, Any] | None:
            st = status(kubectl, "tiny", ns)
            seen.add(f"{st.get('status_name')}/{st.get('flinkState')}")
            return st if st.get("attempt") == 2 else None

        st = kubectl.wait_for(restarted, "the operator to restart the failed job", timeout=120, namespace=ns,
                              show=("flinkjarjob", "tiny"))
        assert "job_running_exception/FAILED" in seen, seen
        assert st["restarts"] == 1 and len(st["restart_times"]) == 1
        savepoint = st["savepointPath"]
        assert savepoint.startswith(f"file:{ckpt}/{job1}/chk-")
        pod2 = kubectl.wait_for(lambda: kubectl.get("pod", "tiny-jm-2", ns), "attempt 2's JobManager", namespace=ns)
        args2 = pod2["spec"]["containers"][0]["args"]
        assert args2[args2.index("--fromSavepoint") + 1] == savepoint
        kubectl.wait_for(lambda: kubectl.get("pod", "tiny-jm-1", ns) is None, "attempt 1's JobManager deleted",
                         namespace=ns)

        # What Kubernetes would do with the deleted pod and the new one, here. On a loaded machine a
        # real JobMaster can fail to start; the operator then starts the next attempt (within
        # resume_max_num), from the same checkpoint, and so does this test.
        local_flink.kill("jm-1")
        attempt, args = 2, args2
        while True:
            local_flink.start(f"jm-{attempt}", args)
            local_flink.start(f"tm-{attempt}", taskmanagers["spec"]["template"]["spec"]["containers"][0]["args"])
            job2 = args[2]
            st = kubectl.wait_for(lambda: reported("RUNNING", job2) or (
                                      (s := status(kubectl, "tiny", ns)).get("attempt", 0) > attempt and s),
                                  f"attempt {attempt} RUNNING", timeout=180, namespace=ns, show=("flinkjarjob", "tiny"))
            if st.get("attempt") == attempt or attempt == 3:
                break
            local_flink.kill(f"jm-{attempt}")
            local_flink.kill(f"tm-{attempt}")
            attempt += 1
            pod = kubectl.wait_for(lambda: kubectl.get("pod", f"tiny-jm-{attempt}", ns), f"attempt {attempt}",
                                   namespace=ns)
            args = pod["spec"]["containers"][0]["args"]
            assert args[args.index("--fromSavepoint") + 1] == savepoint
        assert st["status_name"] == "job_running" and st["state"] == "Running", st
        # Flink restored attempt 2 from the checkpoint the operator chose (its checkpoint statistics
        # answer only once the job master has started, a moment after the job shows RUNNING).
        restored = kubectl.wait_for(
            lambda: (((rest(local_flink.rest_port, f"/jobs/{job2}/checkpoints") or {}).get("latest") or {})
                     .get("restored")), "Flink to report the restored checkpoint", timeout=60)
        assert restored["external_path"] == savepoint, local_flink.log(f"jm-{attempt}")
    finally:
        op.stop()
        local_flink.stop_all()
        kubectl.ok("delete", "namespace", ns, "--wait=false")
