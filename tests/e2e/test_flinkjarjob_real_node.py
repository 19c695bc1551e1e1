"""FlinkJarJob, really: the operator installed by Helm from its image runs Flink JAR jobs on the real
node, from the local Flink image (images/flink: the apache-flink wheels' distribution behind the
official image's entrypoint), with a job jar the test compiles (data/FlinkTinyJob.java).

Two ways in for the job's files. The DLI example body, pasted unchanged, names DLI packages: the
test uploads them to the package store (tests/e2e/objectstore.py, which the in-cluster operator
points at) and the pods' `fetch` init containers put them into usrlib and userData. The other tests
give the jar as a local path, `local:///opt/flink/usrlib/tinyGroup/tiny.jar`, from a ConfigMap
holding it (binaryData) mounted through the kind's own `jobManager:`/`taskManager:` volume fields:
what a user without a package store does. Checkpoints go to a hostPath PersistentVolume the test makes as cluster admin
(a pod's own hostPath volume is refused by the operator's policy) and claims in the namespace, so
they outlive the JobManager pod; the test reads the checkpoint folders on this host too.

The chart's values (hack/incluster.py) make a CU 100m and 1 GiB: a JobManager and a TaskManager
fit on the 2-core machine beside the other real-tier tests. One job at a time.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import KUBECTL, Kubectl
from tests.e2e.objectstore import KEY_ID, KEY_SECRET, ObjectStore
from tests.e2e.real import REAL_NODE, SELECTOR, TOLERATION, wait_endpoints
from tests.e2e.test_flinkjarjob import ROOT, status, wait_status
from tests.e2e.test_flinkjarjob_real import DATA, FLINK_HOME, compile_job, store

pytestmark = [pytest.mark.e2e, pytest.mark.real,
              pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node"),
              pytest.mark.skipif(FLINK_HOME is None or not (FLINK_HOME / "lib").is_dir(),
                                 reason="compiling the job needs flink-dist (pip install apache-flink-libraries)"),
              pytest.mark.skipif(shutil.which("javac") is None, reason="compiling the job needs javac")]

ON_REAL_NODE = {"nodeSelector": SELECTOR, "tolerations": [TOLERATION]}
FLINK_UID = 9999  # the image's user, the operator's LAKEJOB_FLINK_UID
START_TIMEOUT = 300  # two JVMs starting on a loaded 2-core machine
COUNT = re.compile(r"^tiny-count job=([0-9a-f]{32}) count=(\d+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def tiny_jar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return compile_job(tmp_path_factory.mktemp("tiny")).read_bytes()


def jar_configmap(kubectl: Kubectl, ns: str, name: str, jar: bytes) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                   "binaryData": {"tiny.jar": base64.b64encode(jar).decode()}}, ns)


@contextmanager
def checkpoint_claim(kubectl: Kubectl, ns: str, claim: str) -> Iterator[Path]:
    """A folder of this host as a PersistentVolume (made as cluster admin, pre-bound to `claim`) and
    the claim in `ns`; yields the folder. Owned by the Flink image's user: hostPath volumes get no
    fsGroup ownership change."""
    folder = Path(tempfile.mkdtemp(prefix="lakejob-fjj-"))
    os.chown(folder, FLINK_UID, FLINK_UID)
    folder.chmod(0o755)
    pv = f"{ns}-{claim}"
    kubectl.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                            "hostPath": {"path": str(folder), "type": "Directory"},
                            "claimRef": {"namespace": ns, "name": claim}}})
    kubectl.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                            "resources": {"requests": {"storage": "1Gi"}}}}, ns)
    try:
        yield folder
    finally:
        kubectl.ok("delete", "pvc", claim, "-n", ns, "--wait=false")
        kubectl.ok("delete", "pv", pv, "--wait=false")
        shutil.rmtree(folder, ignore_errors=True)


def flinkjarjob(name: str, jar_cm: str, claim: str | None = None, **spec: Any) -> dict[str, Any]:
    """The tiny job, its jar from the ConfigMap jar_cm, checkpoints on the claim (if any) at /checkpoints."""
    volumes: list[dict[str, Any]] = [{"name": "job", "configMap": {"name": jar_cm}}]
    mounts: list[dict[str, Any]] = [{"name": "job", "mountPath": "/opt/flink/usrlib/tinyGroup", "readOnly": True}]
    if claim:
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "checkpoints", "mountPath": "/checkpoints"})
    pods = {**ON_REAL_NODE, "volumes": volumes, "volumeMounts": mounts}
    body = {"name": name, "main_class": "FlinkTinyJob",
            "entrypoint": "local:///opt/flink/usrlib/tinyGroup/tiny.jar",
            "entrypoint_args": "--tag 'hello world'", "jobManager": pods, "taskManager": pods, **spec}
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "FlinkJarJob", "metadata": {"name": name}, "spec": body}


def job_pods(kubectl: Kubectl, ns: str, name: str, role: str | None = None) -> list[dict[str, Any]]:
    selector = f"lakejob.io/kind=FlinkJarJob,lakejob.io/name={name}" + (f",lakejob.io/role={role}" if role else "")
    return kubectl.list("pods", ns, selector)


def counts(kubectl: Kubectl, ns: str, name: str) -> dict[str, list[int]]:
    """Flink JobID → the counts its TaskManagers printed, in order (from every TaskManager's log)."""
    out: dict[str, list[int]] = {}
    for pod in job_pods(kubectl, ns, name, "taskmanager"):
        logs = kubectl.result("logs", pod["metadata"]["name"], "-n", ns).stdout
        for job, n in COUNT.findall(logs):
            out.setdefault(job, []).append(int(n))
    return out


def newest_checkpoint(folder: Path, job: str) -> str | None:
    """The newest completed checkpoint of a job in the volume (its folder on this host), as Flink
    names it (file:/checkpoints/tiny/<job>/chk-N): a chk-N folder with its _metadata, written
    last, when the checkpoint completes."""
    done = [int(p.name[4:]) for p in (folder / "tiny" / job).glob("chk-*") if (p / "_metadata").exists()]
    return f"file:/checkpoints/tiny/{job}/chk-{max(done)}" if done else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def flink_rest(kubectl: Kubectl, ns: str, pod: str) -> Iterator[str]:
    """`kubectl port-forward` to a JobManager's REST port, as a user reaches Flink's web UI; yields
    its local URL once it answers."""
    port = free_port()
    forward = subprocess.Popen([KUBECTL, "port-forward", "-n", ns, f"pod/{pod}", f"{port}:8081"], env=kubectl.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        kubectl.wait_for(lambda: get_json(url, "/config") is not None or forward.poll() is not None,
                         f"port-forward to {pod}", timeout=60)
        assert forward.poll() is None, forward.stderr and forward.stderr.read()
        yield url
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def get_json(url: str, path: str) -> Any:
    try:
        with urllib.request.urlopen(url + path, timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def running(kubectl: Kubectl, ns: str, name: str, attempt: int) -> dict[str, Any]:
    """The status once the operator reports attempt `attempt` job_running from Flink's REST API."""
    return kubectl.wait_for(
        lambda: (s := status(kubectl, name, ns)).get("attempt") == attempt and s.get("status_name") == "job_running"
        and s.get("flinkState") == "RUNNING" and s,
        f"attempt {attempt} of {name} job_running with Flink RUNNING", timeout=START_TIMEOUT, namespace=ns,
        show=("flinkjarjob", name))


def test_a_checkpointing_job_survives_a_killed_jobmanager_from_its_latest_checkpoint_and_runs_again_from_it(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str], tiny_jar: bytes) -> None:
    ns, name = real_namespace, "fjj-ckpt"
    jar_configmap(kubectl, ns, f"{name}-jar", tiny_jar)
    with checkpoint_claim(kubectl, ns, f"{name}-checkpoints") as folder:
        # A checkpoint every 20 s, far apart from the operator's 5 s REST poll: the kill below comes
        # right after the operator has seen the newest one, before the next completes.
        kubectl.apply(flinkjarjob(name, f"{name}-jar", claim=f"{name}-checkpoints",
                                  checkpoint_path="file:///checkpoints/tiny",
                                  restart_when_exception=True, resume_checkpoint=True, resume_max_num=1,
                                  runtime_config="execution.checkpointing.interval: 20s\n"), ns)
        st = running(kubectl, ns, name, 1)
        job1 = st["job_id"]
        jm1 = st["jobManagerPod"]
        assert jm1 == f"{name}-jm-1"
        pod = kubectl.get("pod", jm1, ns)
        assert pod is not None and pod["spec"]["nodeName"] == "lakejob-real"
        assert pod["spec"]["containers"][0]["image"] == "lakejob.local/flink:2.3.0"
        # The Service is headless and has no selector: the operator's Endpoints point at the
        # JobManager, and CoreDNS answers its name with their mirrored EndpointSlice (the
        # TaskManager registered and the operator polled the REST API by that name to report
        # job_running).
        svc_spec = kubectl.get("service", f"{name}-jobmanager", ns)["spec"]  # type: ignore[index]
        assert "selector" not in svc_spec and svc_spec["clusterIP"] == "None", svc_spec
        wait_endpoints(kubectl, ns, f"{name}-jobmanager", "FlinkJarJob", pod["status"]["podIP"])

        # Flink's own REST API, reached as a user would, agrees with the DLI status.
        with flink_rest(kubectl, ns, jm1) as url:
            jobs = {j["jid"]: j for j in get_json(url, "/jobs/overview")["jobs"]}
            assert jobs[job1]["state"] == "RUNNING" and jobs[job1]["name"] == "flink-tiny-job", jobs
            config = {c["key"]: c["value"] for c in get_json(url, "/jobmanager/config")}
            assert config["execution.checkpointing.dir"] == "file:///checkpoints/tiny"

        # The operator has seen the newest checkpoint in the volume: kill the JobManager's JVM now
        # (a crash: the pod fails with 137, as on an OOM kill).
        st = kubectl.wait_for(
            lambda: (s := status(kubectl, name, ns)).get("last_checkpoint")
            and s["last_checkpoint"] == newest_checkpoint(folder, job1) and s,
            "the operator to report the newest checkpoint in the volume", timeout=120, namespace=ns,
            show=("flinkjarjob", name))
        checkpoint = st["last_checkpoint"]
        kubectl.run("exec", jm1, "-n", ns, "--", "bash", "-c", "kill -9 $(ps -o pid= --ppid 1)")
        before = counts(kubectl, ns, name).get(job1, [])
        assert before, "attempt 1 printed no count"
        assert newest_checkpoint(folder, job1) == checkpoint  # none completed since

        st = running(kubectl, ns, name, 2)
        job2 = st["job_id"]
        assert job2 != job1 and st["restarts"] == 1 and len(st["restart_times"]) == 1, st
        assert st["savepointPath"] == checkpoint, st
        jm2 = kubectl.get("pod", f"{name}-jm-2", ns)
        assert jm2 is not None
        # the new JobManager only
        wait_endpoints(kubectl, ns, f"{name}-jobmanager", "FlinkJarJob", jm2["status"]["podIP"])
        args = jm2["spec"]["containers"][0]["args"]
        assert args[args.index("--fromSavepoint") + 1] == checkpoint
        events = kubectl.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
        assert "exit code 137" in events, events
        with flink_rest(kubectl, ns, f"{name}-jm-2") as url:
            # Flink itself says where attempt 2 came from (its checkpoint statistics answer a moment
            # after the job shows RUNNING).
            restored = kubectl.wait_for(
                lambda: ((get_json(url, f"/jobs/{job2}/checkpoints") or {}).get("latest") or {}).get("restored"),
                "Flink to report the restored checkpoint", timeout=60)
            assert restored["external_path"] == checkpoint, restored

        # The counter is state restored from that checkpoint: attempt 2 continues it instead of
        # starting again at 1, from no further than attempt 1 had got.
        after = kubectl.wait_for(lambda: counts(kubectl, ns, name).get(job2), "attempt 2 to count", timeout=120,
                                 namespace=ns)
        assert 1 < after[0] <= before[-1] + 1, (after[:3], before[-3:])
        assert after == list(range(after[0], after[0] + len(after))), after[:20]

        # A second failure within the hour is past resume_max_num: 1. Failed for good, with why.
        kubectl.run("delete", "pod", f"{name}-jm-2", "-n", ns, "--wait=false")
        st = wait_status(kubectl, name, ns, "job_running_exception", timeout=120)
        st = kubectl.wait_for(lambda: (s := status(kubectl, name, ns)).get("state") == "Failed" and s,
                              "the job to fail for good", timeout=60, namespace=ns, show=("flinkjarjob", name))
        assert st["attempt"] == 2 and st["restarts"] == 1, st
        assert "not restarted: resume_max_num is 1 restart(s) per hour and 1 were made" in st["status_desc"], st
        kubectl.wait_for(lambda: not job_pods(kubectl, ns, name), "every pod of the job to be gone", timeout=120,
                         namespace=ns)

        # DLI's run of the failed job (restartNonce changed): a new run, attempt 3, from the newest
        # checkpoint the operator saw (kept on the volume after both attempts ended); the count goes on.
        checkpoint = st["last_checkpoint"]
        kubectl.run("patch", "flinkjarjob", name, "-n", ns, "--type=merge", "-p", '{"spec":{"restartNonce":1}}')
        st = running(kubectl, ns, name, 3)
        assert (st["savepointPath"], st["runGeneration"], st["restarts"]) == (checkpoint, 2, 1), st
        with flink_rest(kubectl, ns, f"{name}-jm-3") as url:
            restored = kubectl.wait_for(
                lambda: ((get_json(url, f"/jobs/{st['job_id']}/checkpoints") or {}).get("latest") or {}).get("restored"),
                "Flink to report the checkpoint the new run restored", timeout=60)
            assert restored["external_path"] == checkpoint, restored
        again = kubectl.wait_for(lambda: counts(kubectl, ns, name).get(st["job_id"]), "the new run to count",
                                 timeout=120, namespace=ns)
        assert again[0] > 1, again[:3]  # state restored, not a fresh count from 1
        kubectl.run("delete", "flinkjarjob", name, "-n", ns)


def test_stopping_a_running_job_cancels_it_in_flink_and_removes_its_pods(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str], tiny_jar: bytes) -> None:
    ns, name = real_namespace, "fjj-stop"
    jar_configmap(kubectl, ns, f"{name}-jar", tiny_jar)
    kubectl.apply(flinkjarjob(name, f"{name}-jar"), ns)
    st = running(kubectl, ns, name, 1)
    kubectl.wait_for(lambda: counts(kubectl, ns, name).get(st["job_id"]), "the job to count", timeout=120,
                     namespace=ns)
    t0 = time.monotonic()
    kubectl.run("patch", "flinkjarjob", name, "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    st = wait_status(kubectl, name, ns, "job_cancel_success", timeout=120)
    assert st["state"] == "Cancelled" and st["reason"] == "Suspended", st
    # Flink cancelled the job (the REST poll saw CANCELED, or the application's JobManager exited 0
    # after it) before the pods were deleted: not a JobManager killed mid-flight.
    events = kubectl.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    assert re.search(r"stopping: (Flink reports the job CANCELED|its JobManager ended with exit code 0);", events), \
        events
    assert not job_pods(kubectl, ns, name)
    for kind, child in (("replicaset", f"{name}-taskmanager"), ("service", f"{name}-jobmanager"),
                        ("endpoints", f"{name}-jobmanager"), ("configmap", f"{name}-flink-config")):
        assert kubectl.get(kind, child, ns) is None, (kind, child)
    print(f"stopped in {time.monotonic() - t0:.1f}s", end=" ")
    kubectl.run("delete", "flinkjarjob", name, "-n", ns)
    kubectl.run("delete", "configmap", f"{name}-jar", "-n", ns)


def java_jar(tmp: Path, name: str, sources: dict[str, str]) -> bytes:
    """Java sources (path → text) compiled against flink-dist into one jar's bytes."""
    src = tmp / f"{name}-src"
    for path, text in sources.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text)
    return store.flink_jar([src / p for p in sources], name)


def dependency_jar(tmp: Path, name: str, cls: str) -> bytes:
    """A jar of one class `dli.<cls>` whose hello() names the jar: proof of which jar it came from."""
    return java_jar(tmp, name, {f"dli/{cls}.java": f'package dli;\npublic class {cls} {{\n'
                                                   f'    public static String hello() {{ return "{name}"; }}\n}}\n'})


DEPS = re.compile(r"^dli-deps (jobmanager|taskmanager) (.*)$", re.MULTILINE)
CSV = {"myGroup/test.csv": "id,word\n1,flink\n", "myGroup/test1.csv": "id,word\n2,dli\n"}


def test_the_dli_example_pasted_unchanged_runs_from_the_package_store_with_its_dependencies(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str], object_store: ObjectStore,
        tmp_path: Path) -> None:
    """examples/flinkjarjob-dli.yaml as it is. What the example leaves to its user is the packages'
    content: the store gets a javaQueueStream.jar whose org.apache.flink.examples.streaming.JavaQueueStream
    (data/JavaQueueStream.java) takes the example's "-windowSize 2000 -rate3", two dependency jars of
    one class each and two small CSV files, under the example's names. (FlinkTinyJob would have
    needed another main_class and other arguments.) The chart's workload placement puts the pods
    on the real node; its CU (100m, 1 GiB) sizes them."""
    ns = real_namespace
    body = yaml.safe_load((ROOT / "examples" / "flinkjarjob-dli.yaml").read_text())
    spec, name = body["spec"], body["metadata"]["name"]
    main = "org/apache/flink/examples/streaming/JavaQueueStream.java"
    object_store.put_package(spec["entrypoint"], java_jar(tmp_path, "javaQueueStream.jar",
                                                          {main: (DATA / "JavaQueueStream.java").read_text()}))
    for package, cls in zip(spec["dependency_jars"], ("Test", "Test1")):
        object_store.put_package(package, dependency_jar(tmp_path, package.split("/")[-1], cls))
    for package in spec["dependency_files"]:
        object_store.put_package(package, CSV[package].encode())
    t0 = time.monotonic()
    kubectl.apply(body, ns)
    try:
        st = running(kubectl, ns, name, 1)
        took = time.monotonic() - t0
        assert st["name"] == "test" and st["resources"]["taskManager"]["replicas"] == 1, st
        jm = kubectl.get("pod", st["jobManagerPod"], ns)
        tms = job_pods(kubectl, ns, name, "taskmanager")
        assert jm is not None and len(tms) == 1
        for pod in (jm, tms[0]):
            assert pod["spec"]["nodeName"] == "lakejob-real"  # the operator's workload placement
            fetch, copy = pod["spec"]["initContainers"]
            assert (fetch["name"], copy["name"]) == ("fetch", "dependency-files")
            assert len(fetch["args"]) == 2 * 5  # the entrypoint, two jars, two files

        # Flink's own REST API, reached as a user would, agrees: our JobID, RUNNING.
        with flink_rest(kubectl, ns, jm["metadata"]["name"]) as url:
            jobs = {j["jid"]: j for j in get_json(url, "/jobs/overview")["jobs"]}
            assert jobs[st["job_id"]]["state"] == "RUNNING" and jobs[st["job_id"]]["name"] == "java-queue-stream", jobs

        # The files are where the job reads them, in both roles: the packages inside usrlib (Flink's
        # classpath), the dependency files also as userData/<name> in a folder on the classpath.
        for pod in (jm, tms[0]):
            listing = kubectl.run("exec", pod["metadata"]["name"], "-n", ns, "-c", "flink-main-container", "--",
                                  "sh", "-c", "cd /opt/flink && find usrlib/packages lakejob-files -type f | sort")
            assert listing.split() == [
                "lakejob-files/userData/test.csv", "lakejob-files/userData/test1.csv",
                "usrlib/packages/javaQueueStream.jar", "usrlib/packages/myGroup/test.csv",
                "usrlib/packages/myGroup/test.jar", "usrlib/packages/myGroup/test1.csv",
                "usrlib/packages/myGroup/test1.jar"], listing
        # …and the job itself found them: the JobManager ran main(), the TaskManager the map function.
        expected = "dli.Test=test.jar dli.Test1=test1.jar test.csv=id,word;1,flink test1.csv=id,word;2,dli"

        def reports() -> dict[str, str] | None:
            logs = kubectl.result("logs", jm["metadata"]["name"], "-n", ns).stdout + \
                kubectl.result("logs", tms[0]["metadata"]["name"], "-n", ns).stdout
            found = dict(DEPS.findall(logs))
            return found if len(found) == 2 else None

        found = kubectl.wait_for(reports, "both roles to report the dependencies", timeout=120, namespace=ns)
        assert found == {"jobmanager": expected, "taskmanager": expected}, found
        # The store's keys reach the fetcher as secretKeyRefs only.
        fetch_env = json.dumps(jm["spec"]["initContainers"][0]["env"])
        assert KEY_ID not in fetch_env and KEY_SECRET not in fetch_env and "secretKeyRef" in fetch_env
        print(f"job_running in {took:.0f}s", end=" ")
    finally:
        kubectl.run("delete", "flinkjarjob", name, "-n", ns, "--wait=false")
        kubectl.wait_for(lambda: not job_pods(kubectl, ns, name), "the job's pods to go", timeout=120, namespace=ns)


def test_a_package_missing_from_the_store_is_job_submit_fail_naming_it_before_flink_starts(
        kubectl: Kubectl, real_namespace: str, incluster_operator: tuple[str, str], object_store: ObjectStore,
        tmp_path: Path) -> None:
    ns, name = real_namespace, "fjj-missing"
    object_store.put_package("present/job.jar", dependency_jar(tmp_path, "job.jar", "Job"))
    kubectl.apply({"apiVersion": "lakejob.io/v1alpha1", "kind": "FlinkJarJob", "metadata": {"name": name},
                   "spec": {"name": name, "main_class": "dli.Job", "entrypoint": "present/job.jar",
                            "dependency_jars": ["nowhere/absent-1.0.jar"]}}, ns)
    try:
        st = wait_status(kubectl, name, ns, "job_submit_fail", "job_running", timeout=START_TIMEOUT)
        assert (st["status_name"], st["reason"]) == ("job_submit_fail", "FetchFailed"), st
        # Both roles fetch; whichever failure the operator sees first is reported.
        assert re.match(rf"(JobManager pod {name}-jm-1|TaskManager pod {name}-taskmanager-\S+): the job's files "
                        r"could not be fetched before Flink started: dependency_jars\[0\] 'nowhere/absent-1.0.jar' "
                        r"\(s3://lakejob-packages/dli/nowhere/absent-1.0.jar\): NoSuchKey", st["status_desc"]), st
        assert st["attempt"] == 1 and st["state"] == "Failed"
        events = kubectl.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
        assert any(e["reason"] == "FetchFailed" and "'nowhere/absent-1.0.jar'" in e["message"]
                   for e in json.loads(events)["items"]), events
        # Flink never started: no pod of the job ran its Flink container.
        for pod in job_pods(kubectl, ns, name):
            states = [c.get("state", {}) for c in pod["status"].get("containerStatuses", [])]
            assert all("running" not in x and "terminated" not in x for x in states), pod["status"]
        for text in (json.dumps(st), events):
            assert KEY_ID not in text and KEY_SECRET not in text
    finally:
        kubectl.run("delete", "flinkjarjob", name, "-n", ns, "--wait=false")
