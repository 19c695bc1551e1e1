"""`lakejob gateway` as the e2e tests run it: a subprocess on this host with the admin kubeconfig
(which may impersonate: the gateway acts as each key's identity), its keys file a path."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """`lakejob gateway` as a subprocess with the admin kubeconfig (it impersonates key holders)."""

    def __init__(self, kubeconfig: str, keys: Path, log: Path) -> None:
        self.kubeconfig, self.keys, self.log = kubeconfig, keys, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = str(Path(sys.executable).parent / "lakejob")
        self.proc = subprocess.Popen([exe, "gateway", "--port", str(self.port), "--keys", str(self.keys)],
                                     env={**os.environ, "KUBECONFIG": self.kubeconfig}, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.2)
        raise AssertionError(f"the gateway did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)


@contextlib.contextmanager
def running(kubeconfig: str, keys: Path, log: Path, secret: str) -> Iterator[Gateway]:
    """A gateway for the length of a test; its log must never show `secret`."""
    gw = Gateway(kubeconfig, keys, log)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
    assert secret not in gw.log.read_text()
