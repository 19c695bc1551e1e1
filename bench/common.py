"""What every bench script shares: the local cluster's kubectl, percentiles, a process's CPU and
memory from /proc, the operator started as a process of its own, and the JSONL results file.

Imported by bench/*.py (run as scripts from the project root: `make bench`); not a test helper.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
sys.path.insert(0, str(ROOT / "hack"))
import cluster  # noqa: E402
import render_deploy  # noqa: E402  (hack/render_deploy.py: the chart rendered)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run([str(cluster.BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path()), *args],
                          check=True, capture_output=True, text=True, input=stdin).stdout


def install_crds() -> None:
    """The CRDs, and the chart's PriorityClasses that DagJob task pods name, as a release would install them."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": render_deploy.priority_classes()}))


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used, all its threads, and its children that
    ended (kube-proxy's iptables-restore runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def apiserver_requests() -> dict[tuple[str, str, str], float]:
    """The apiserver's requests so far (its /metrics `apiserver_request_total`), by (verb,
    resource[/subresource], code)."""
    out: dict[tuple[str, str, str], float] = {}
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition(" ")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        what = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        key = (labels.get("verb", ""), what, labels.get("code", ""))
        out[key] = out.get(key, 0.0) + float(value)
    return out


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def component_pid(name: str) -> int:
    """The pid of one of the local cluster's processes (kube-apiserver, etcd, …)."""
    return int((cluster.RUN / "pids" / f"{name}.pid").read_text().split()[0])


def start_operator(namespaces: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    """`lakejob run` for `namespaces` as a process of its own (its log in the cluster's logs)."""
    log = open(cluster.RUN / "logs" / log_name, "wb")
    args = [str(Path(sys.executable).parent / "lakejob"), "run"]
    for ns in namespaces:
        args += ["--namespace", ns]
    return subprocess.Popen(args, env={**os.environ, "LAKEJOB_METRICS_PORT": "0", **env}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def record(name: str, result: dict[str, Any]) -> None:
    """Append one run's result to bench/results/<name>.jsonl and print it."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=2))


async def fresh_namespaces(*names: str) -> None:
    while "bench-" in kubectl("get", "namespaces", "-o", "name"):
        # An earlier run's namespaces are still being emptied: that churn would skew this run.
        print("bench: waiting for an earlier run's namespaces to be deleted", flush=True)
        await asyncio.sleep(5)
    for ns in names:
        kubectl("create", "namespace", ns)
    for ns in names:  # pods need the namespace's default ServiceAccount
        while subprocess.run([str(cluster.BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path()),
                              "get", "sa", "default", "-n", ns], capture_output=True).returncode:
            await asyncio.sleep(0.2)


def bench_main(name: str, parser: argparse.ArgumentParser,
               run: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]) -> int:
    """A bench's command line: its arguments, the local cluster (or a clear exit 1), the CRDs and
    PriorityClasses, one run, its result recorded under bench/results/<name>.jsonl."""
    args = parser.parse_args()
    if not cluster.running():
        print("bench: no local cluster runs (make cluster)", file=sys.stderr, flush=True)
        return 1
    install_crds()
    record(name, asyncio.run(run(args)))
    return 0


async def watch(kube: Any, path: str, selector: str, ready: asyncio.Event) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event type, object) of a watch on `path` (e.g. /api/v1/namespaces/NS/pods) with `selector`,
    `ready` set once it is open. Lines are split here, not by aiohttp's readline (it refuses lines
    over 64 KiB); a watch the apiserver ends is opened again from the last resourceVersion seen, and
    from the start after an ERROR (its version expired)."""
    version = ""
    while True:
        params = {"watch": "1", "labelSelector": selector, "allowWatchBookmarks": "true",
                  **({"resourceVersion": version} if version else {})}
        async with kube.session.get(f"{kube.server}{path}", params=params, headers=kube._headers(),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            ready.set()
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        version = ""
                        break
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        yield event["type"], event["object"]
