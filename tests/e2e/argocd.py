"""A real Argo CD against the local cluster, for tests/e2e/test_argocd_real.py.

The binary is hack/argocd/build.sh's (built from Go modules, cached; the CRDs of the same version beside
it). Its application controller and repo server run as processes of this machine, as upstream's own
Procfile runs them for development (ARGOCD_FAKE_IN_CLUSTER: the in-cluster destination is the
kubeconfig's cluster), with a redis-server of their own; the CRDs, argocd-cm (holding lakejob's
docs/argocd/argocd-cm.yaml), argocd-secret and the `default` AppProject go into a namespace of its own.
No API server, UI or Dex: the controller syncs and judges health by itself.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "argocd" / "build.sh"
PART_OF = {"app.kubernetes.io/part-of": "argocd"}  # Argo CD reads only its labelled ConfigMaps and Secrets


class ArgoCDError(RuntimeError):
    pass


def build() -> Path:
    """The Argo CD binary, built once (minutes) and cached by hack/argocd/build.sh."""
    r = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True)
    if r.returncode:
        raise ArgoCDError(f"hack/argocd/build.sh failed:\n{r.stderr[-3000:]}")
    return Path(r.stdout.split()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ArgoCD:
    def __init__(self, binary: Path, kubectl: Kubectl, namespace: str, workdir: Path):
        self.binary, self.kubectl, self.namespace, self.workdir = binary, kubectl, namespace, workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise ArgoCDError("redis-server is not on PATH: `apt-get install redis-server` (.ci/run installs it)")
        redis_port, repo_port = free_port(), free_port()
        self._spawn("redis", [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], {})
        self._wait_port(redis_port, "redis")
        self._install()
        data = {name: self.workdir / name for name in ("tls", "ssh", "gpg-keys", "gpg-source", "plugins", "tmp")}
        for path in data.values():
            path.mkdir(parents=True, exist_ok=True)
        common = {"ARGOCD_FAKE_IN_CLUSTER": "true", "TMPDIR": str(data["tmp"]),
                  "ARGOCD_TLS_DATA_PATH": str(data["tls"]), "ARGOCD_SSH_DATA_PATH": str(data["ssh"])}
        self._spawn("repo-server", [
            str(self.binary), "--address", "127.0.0.1", "--port", str(repo_port), "--metrics-port", str(free_port()),
            "--redis", f"127.0.0.1:{redis_port}", "--disable-tls", "--loglevel", "info"],
            {**common, "ARGOCD_BINARY_NAME": "argocd-repo-server", "ARGOCD_GPG_ENABLED": "false",
             "ARGOCD_GNUPGHOME": str(data["gpg-keys"]), "ARGOCD_GPG_DATA_PATH": str(data["gpg-source"]),
             "ARGOCD_PLUGINSOCKFILEPATH": str(data["plugins"])})
        self._wait_port(repo_port, "repo-server")
        # Resync every 5 s (a user's default is 3 minutes): git changes are picked up within the test's waits.
        self._spawn("application-controller", [
            str(self.binary), "--kubeconfig", self.kubectl.kubeconfig, "--namespace", self.namespace,
            "--redis", f"127.0.0.1:{redis_port}", "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext",
            "--metrics-port", str(free_port()), "--app-resync", "5", "--status-processors", "2",
            "--operation-processors", "2", "--loglevel", "info"],
            {**common, "ARGOCD_BINARY_NAME": "argocd-application-controller"})

    def _install(self) -> None:
        k = self.kubectl
        k.run("apply", "--server-side", "--force-conflicts", "-f", str(self.binary.parent / "crds"))
        k.wait_established("applications.argoproj.io", "appprojects.argoproj.io")
        k.run("create", "namespace", self.namespace)
        # lakejob's health checks and actions exactly as a user installs them (docs/argocd/README.md).
        lakejob = yaml.safe_load((ROOT / "docs" / "argocd" / "argocd-cm.yaml").read_text())["data"]
        k.apply({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "argocd-cm", "namespace": self.namespace, "labels": PART_OF},
                 "data": lakejob}, self.namespace)
        k.apply({"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "argocd-secret", "namespace": self.namespace, "labels": PART_OF},
                 "stringData": {"server.secretkey": secrets.token_hex(16)}}, self.namespace)
        # argocd-server would make the default project; without it, it is applied here.
        k.apply({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                 "metadata": {"name": "default", "namespace": self.namespace},
                 "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                          "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}, self.namespace)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(args, env={**os.environ, "KUBECONFIG": self.kubectl.kubeconfig, **env},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=self.workdir)

    def _wait_port(self, port: int, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise ArgoCDError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise ArgoCDError(f"{name} did not listen on {port} within {timeout:.0f}s:\n{self.log(name)}")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def application(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl.run("get", "applications.argoproj.io", name, "-n", self.namespace,
                                                "-o", "json")))

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.kubectl.ok("delete", "namespace", self.namespace, "--wait=false")
