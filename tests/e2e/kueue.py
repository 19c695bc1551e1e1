"""Kueue's manager out of cluster against the local cluster, for tests/e2e/test_kueue.py (issue 16).

The binary is hack/kueue/build.sh's (v0.17.0 built from Go modules, cached; the same version's CRDs
beside it). It runs as a process of this machine with the admin kubeconfig and a `--config` of its own
(docs/queues.md, "Running Kueue here", says why each setting):

- Kueue's internal certificate management, its default: its rotator fills the Secret
  `kueue-webhook-server-cert` (made here, empty, as upstream's manifests make it) with a CA and a
  serving certificate and waits for the certificate to appear in `webhook.certDir`. In a pod the
  kubelet mounts the Secret there; here `_mount_certs` copies it. (With the internal management off,
  the manager insists on a metrics certificate at the fixed path /etc/kueue/metrics/certs.)
- The five CRDs that upstream's kustomization gives a conversion webhook get the same stanza here:
  the rotator injects its CA into them and waits until it could. Nothing calls that webhook while
  every client uses v1beta2, the storage version.
- No webhook configuration is registered with the apiserver, so Kueue's webhooks are never called:
  Workloads are written whole by their makers (lakejob, later), with nothing left for a defaulter.
- VisibilityOnDemand is off (its server would write certificates to /visibility), metrics are off,
  leader election is off, the health probes and the webhook server listen on loopback ports.

The manager's namespace is made by start() and deleted by stop(), and so are Kueue's CRDs: the
operators of the test session treat a job naming a queue as queued only while Kueue's Workload API
is served (LAKEJOB_QUEUEING=auto), and the other tests' jobs name queues with no LocalQueue.

Behind conftest's fixtures `kueue` (one manager per test module that asks for it: `serve`, on
`running`, which bench/queues.py uses too) and
`queue` (a 4-CU queue: `local_queue`, a ClusterQueue, its flavor and a LocalQueue `dli-queue` in the
test's namespace, with `Queue`'s helpers to read the Workloads in it).
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "kueue" / "build.sh"
SECRET = "kueue-webhook-server-cert"  # Kueue's default internalCertManagement.webhookSecretName
SERVICE = "kueue-webhook-service"  # its default webhookServiceName (only a name in the certificate here)
# The CRDs with a conversion webhook in upstream's config/components/crd/kustomization.yaml, which are
# also the ones Kueue's rotator injects its CA into (pkg/util/cert/cert.go).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
API = "kueue.x-k8s.io/v1beta2"


class KueueError(RuntimeError):
    pass


def build() -> Path:
    """Kueue's manager, built once (minutes) and cached by hack/kueue/build.sh."""
    r = subprocess.run(["bash", str(BUILD)], check=False, capture_output=True, text=True)
    if r.returncode:
        raise KueueError(f"hack/kueue/build.sh failed:\n{r.stderr[-3000:]}")
    return Path(r.stdout.split()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def crds(folder: Path, namespace: str) -> list[dict[str, Any]]:
    """The CRDs of folder, the CONVERTED ones with the conversion webhook upstream's kustomization adds."""
    out = []
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["plural"] in CONVERTED:
            crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                "clientConfig": {"service": {"namespace": namespace, "name": SERVICE, "path": "/convert"}},
                "conversionReviewVersions": ["v1"]}}
        out.append(crd)
    return out


class Kueue:
    def __init__(self, binary: Path, kubectl: Kubectl, namespace: str, workdir: Path):
        self.binary, self.kubectl, self.namespace, self.workdir = binary, kubectl, namespace, workdir
        self.certs = workdir / "certs"
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.crds: list[str] = []

    def start(self, timeout: float = 120) -> None:
        self._install()
        self.certs.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
            "namespace": self.namespace,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"host": "127.0.0.1", "port": free_port(), "certDir": str(self.certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": True},
            "manageJobsWithoutQueueName": False,
            "integrations": {"frameworks": ["batch/job"]},
            "featureGates": {"VisibilityOnDemand": False},
        }
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        with open(self.workdir / "kueue.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([str(self.binary), "--config", str(path), "--zap-log-level=2"],
                                         env={**os.environ, "KUBECONFIG": self.kubectl.kubeconfig},
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while not self._mount_certs():
            self._alive_until(deadline, "its certificate in the Secret " + SECRET)
        while not self.ready():
            self._alive_until(deadline, "/readyz")

    def _install(self) -> None:
        k = self.kubectl
        k.run("create", "namespace", self.namespace)
        items = crds(self.binary.parent / "crds", self.namespace)
        names = [c["metadata"]["name"] for c in items]
        # An earlier module's Kueue CRDs may still be going (stop() deletes them): applied to now, they vanish after.
        terminating = [n for n in names if (k.get("crd", n, "default") or {}).get("metadata", {}).get("deletionTimestamp")]
        if terminating:
            k.ok("wait", "--for=delete", "crd", *terminating, "--timeout=120s")
        k.run("apply", "--server-side", "--force-conflicts", "-f", "-",
              stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        self.crds = names
        k.wait_established(*self.crds)
        k.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": self.namespace}},
                self.namespace)

    def _mount_certs(self) -> bool:
        """What the kubelet does with the Secret in a pod: its tls.crt and tls.key as files in certDir."""
        secret = self.kubectl.get("secret", SECRET, self.namespace) or {}
        data = secret.get("data") or {}
        if not data.get("tls.crt") or not data.get("tls.key"):
            return False
        for name in ("tls.key", "tls.crt"):  # the key first: the rotator waits for tls.crt
            tmp = self.certs / f".{name}"
            tmp.write_bytes(base64.b64decode(data[name]))
            tmp.chmod(0o600)
            tmp.rename(self.certs / name)
        return True

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _alive_until(self, deadline: float, what: str) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise KueueError(f"Kueue's manager exited with {self.proc.returncode} waiting for {what}:\n{self.log()}")
        if time.monotonic() > deadline:
            raise KueueError(f"Kueue's manager gave no {what} in time:\n{self.log()}")
        time.sleep(0.5)

    def log(self) -> str:
        path = self.workdir / "kueue.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.kubectl.ok("delete", "namespace", self.namespace, "--wait=false")
        if self.crds:  # Kueue gone: jobs naming queues run unqueued again (see the module's docstring)
            self._release_leftovers()
            self.kubectl.ok("delete", "crd", *self.crds, "--ignore-not-found", "--wait=false")
            self.kubectl.ok("wait", "--for=delete", "crd", *self.crds, "--timeout=60s")

    def _release_leftovers(self) -> None:
        """Kueue's objects still there once its manager is gone, their finalizers (Kueue's
        `resource-in-use`, which only the manager removes) cleared: else a ClusterQueue deleted while
        Kueue still counted a Workload in it would hold its CRD's deletion forever."""
        for crd in self.crds:
            r = self.kubectl.result("get", crd, "-A", "-o", "json")
            for item in json.loads(r.stdout).get("items", []) if r.returncode == 0 else []:
                meta = item["metadata"]
                if meta.get("finalizers"):
                    self.kubectl.ok("patch", crd, meta["name"], *(["-n", meta["namespace"]] if "namespace" in meta else []),
                                    "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


@contextlib.contextmanager
def running(kubectl: Kubectl, workdir: Path) -> Iterator[Kueue]:
    """Kueue's manager built, started in its own namespace (state in `workdir`) and stopped after.

    One at a time per cluster, across test sessions and benches too (a lock file beside the
    kubeconfig): a stop() deletes Kueue's CRDs, which would pull the queues from under another's
    tests. Raises KueueError when it cannot be built or started (stopped first)."""
    binary = build()
    with open(Path(kubectl.kubeconfig).parent / "kueue.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Outside the session operator's e2eXXXX-* namespaces: Kueue's own Secret is not lakejob's business.
        k = Kueue(binary, kubectl, f"kueue-{uuid.uuid4().hex[:6]}", workdir)
        try:
            k.start()
            yield k
        finally:
            k.stop()


def serve(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kueue]:
    """Kueue's manager for a test module (conftest's `kueue` fixture): `running`, a failure to build
    or start it the test's failure."""
    try:
        with running(kubectl, tmp_path_factory.mktemp("kueue")) as k:
            yield k
    except KueueError as e:
        pytest.fail(str(e), pytrace=False)


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Queue:
    """A LocalQueue in a namespace, on a ClusterQueue (and ResourceFlavor) of its own."""
    kubectl: Kubectl
    namespace: str
    cluster_queue: str  # also the flavor's name
    name: str = "dli-queue"

    def get(self, workload: str) -> dict[str, Any] | None:
        return self.kubectl.get("workloads.kueue.x-k8s.io", workload, self.namespace)

    def condition(self, workload: str, kind: str) -> dict[str, Any]:
        return condition(self.get(workload), kind)

    def admitted(self, workload: str) -> bool:
        return self.condition(workload, "Admitted").get("status") == "True"

    def pending(self, workload: str) -> bool:
        """Waiting for quota: QuotaReserved False with Kueue's reason Pending."""
        return self.condition(workload, "QuotaReserved").get("reason") == "Pending"

    def wait(self, check: Callable[[], object], what: str, workload: str) -> None:
        self.kubectl.wait_for(check, what, 30, self.namespace, ("workloads.kueue.x-k8s.io", workload))


def local_queue(kubectl: Kubectl, namespace: str, quota: dict[str, str], name: str = "dli-queue",
                cluster_queue: str = "", strategy: str = "BestEffortFIFO") -> Iterator[Queue]:
    """A LocalQueue `name` in `namespace` on a ClusterQueue of `quota` (preempting lower priorities,
    Kueue's queueingStrategy `strategy`), named `cluster_queue` (default lakejob-<namespace>: one
    per namespace)."""
    q = Queue(kubectl, namespace, cluster_queue or f"lakejob-{namespace}"[:63].rstrip("-"), name)  # cluster-scoped
    cq = q.cluster_queue
    try:
        kubectl.apply({"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": cq}})
        kubectl.apply({"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"}, "queueingStrategy": strategy,
            "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": cq, "resources": [
                {"name": r, "nominalQuota": v} for r, v in quota.items()]}]}]}})
        kubectl.apply({"apiVersion": API, "kind": "LocalQueue", "metadata": {"name": q.name},
                       "spec": {"clusterQueue": cq}}, namespace)
        kubectl.wait_for(lambda: condition(kubectl.get("localqueues.kueue.x-k8s.io", q.name, namespace),
                                           "Active").get("status") == "True",
                         "the LocalQueue to be Active", 30, namespace, ("localqueues.kueue.x-k8s.io", q.name))
        yield q
    finally:
        # While Kueue still runs (it removes their finalizers): the namespace's Workloads and LocalQueue,
        # then the cluster-scoped queue and flavor; the namespace fixture deletes the namespace after.
        kubectl.ok("delete", "workloads.kueue.x-k8s.io,localqueues.kueue.x-k8s.io", "--all", "-n", namespace,
                   "--timeout=30s")
        for kind in ("clusterqueues.kueue.x-k8s.io", "resourceflavors.kueue.x-k8s.io"):
            kubectl.ok("delete", kind, cq, "--ignore-not-found", "--timeout=30s")
