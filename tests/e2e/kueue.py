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

The manager's namespace is made by start() and deleted by stop(); the CRDs, cluster-scoped, stay.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "kueue" / "build.sh"
SECRET = "kueue-webhook-server-cert"  # Kueue's default internalCertManagement.webhookSecretName
SERVICE = "kueue-webhook-service"  # its default webhookServiceName (only a name in the certificate here)
# The CRDs with a conversion webhook in upstream's config/components/crd/kustomization.yaml, which are
# also the ones Kueue's rotator injects its CA into (pkg/util/cert/cert.go).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")


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
        k.run("apply", "--server-side", "--force-conflicts", "-f", "-",
              stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        k.wait_established(*[c["metadata"]["name"] for c in items])
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
