"""Test helpers: the real kubectl against the local cluster, the operator as a subprocess, waits.

A wait that times out fails with the object and the namespace's recent Events in the message,
so a red test says what the cluster looked like, not just "timed out".
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
CACHE = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob"))
KUBECTL = str(CACHE / "bin" / "kubectl")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
# `helm template` checks Chart.yaml's kubeVersion against this (not the helm binary's assumption).
from render_deploy import KUBE_VERSION  # noqa: E402  (hack/render_deploy.py)


class Kubectl:
    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "KUBECONFIG": kubeconfig}

    def result(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=120)

    def run(self, *args: str, stdin: str | None = None) -> str:
        r = self.result(*args, stdin=stdin)
        if r.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def ok(self, *args: str) -> bool:
        return self.result(*args).returncode == 0

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None) -> str:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", *(["-n", namespace] if namespace else []), "-f", "-", stdin=text)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        r = self.result("get", kind, name, "-n", namespace, "-o", "json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        return list(json.loads(self.run(*args))["items"])

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Wait until the CRDs (names, or `-l selector`) are Established. `kubectl wait --for=condition`
        fails outright ("accessor error: <nil>") when it reads a CRD before the apiserver gave it any
        conditions, so a freshly applied CRD is polled instead."""
        def established() -> bool:
            r = self.result("get", "crd", *crds, "-o", "json")
            got = json.loads(r.stdout) if r.returncode == 0 else {"items": []}
            items = got["items"] if "items" in got else [got]  # one CRD by name comes back as itself
            return bool(items) and all(
                any(c["type"] == "Established" and c["status"] == "True" for c in i.get("status", {}).get("conditions") or [])
                for i in items)
        self.wait_for(established, f"CRDs {' '.join(crds)} to be Established", timeout)

    def fresh_namespace(self, prefix: str = "solo") -> str:
        """A new namespace with its default ServiceAccount in place (pods need it). `solo-*` ones are
        outside the session operator's namespaces: for tests that run an operator of their own."""
        ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.run("create", "namespace", ns)
        self.wait_for(lambda: self.ok("get", "serviceaccount", "default", "-n", ns), "default ServiceAccount")
        return ns

    def events(self, namespace: str) -> str:
        return self.result("get", "events", "-n", namespace, "--sort-by=.lastTimestamp").stdout[-3000:]

    def wait_for(self, check: Callable[[], T], what: str, timeout: float = 60, namespace: str | None = None,
                 show: tuple[str, str] | None = None) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                detail = ""
                if show and namespace:
                    detail += f"\n--- {show[0]}/{show[1]}:\n" + self.result(
                        "get", show[0], show[1], "-n", namespace, "-o", "yaml").stdout[-4000:]
                if namespace:
                    pods = self.result("get", "pods", "-n", namespace, "-o", "wide").stdout[-4000:]
                    detail += f"\n--- pods in {namespace}:\n{pods}\n--- events in {namespace}:\n{self.events(namespace)}"
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
            time.sleep(0.3)


class Operator:
    """`lakejob run` as a subprocess against the local cluster (as a user runs it)."""

    def __init__(self, kubeconfig: str, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.kubeconfig, self.args, self.log = kubeconfig, args, log
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "LAKEJOB_DRIVER_LOGS": "false",
                    "LAKEJOB_RETRY_BACKOFF_SECONDS": "1",
                    "LAKEJOB_NOTIFY_ALLOWED_HOSTS": "127.0.0.1",  # the tests' notification hooks
                    # The vendors' example bodies name DLI packages (KWOK runs no fetch: any store will do).
                    "LAKEJOB_PACKAGES_URL": "s3://lakejob-packages/dli/",
                    "LAKEJOB_METRICS_PORT": "0", **(env or {})}  # many operators run at once in tests
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = str(Path(sys.executable).parent / "lakejob")
        self.proc = subprocess.Popen([exe, "run", *self.args], env=self.env, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL: the operator dies mid-flight with no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def state(self) -> str:
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        return f"running (pid {self.proc.pid})" if code is None else f"exited with {code}"
