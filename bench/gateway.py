#!/usr/bin/env python3
"""`make bench`: the gateway's cost, next to the same operations on the Kubernetes API directly.

In one run, on the same apiserver (no operator: the CRs only sit there, what is measured is the
API work):
  1. direct: N SparkBatch creates, then N gets, then L lists of the namespace, by an async Python
     client with the admin kubeconfig (concurrency C);
  2. gateway: the same through `lakejob gateway`'s Livy API (POST /livy/batches, GET
     /livy/batches/{id}, GET /livy/batches), as a Livy user the gateway impersonates, in a
     namespace of its own.
Each: requests/s and the p50/p99 latency per request. The ratios gateway/direct are the figures
(issue 13's goal: a get costs ≤ 20 % more; creates keep up with the operator's own rate).
Printed, and appended as JSON lines to bench/results/gateway.jsonl. Not a test: nothing asserts.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
import cluster  # noqa: E402

from lakejob.kube import Kube, path, register_kind  # noqa: E402

GV, KIND = "lakejob.io/v1alpha1", "SparkBatch"
USER, PASSWORD = "bench:livy", "bench-password"
BODY = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi"}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run([str(cluster.BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path()), *args],
                          check=True, capture_output=True, text=True, input=stdin).stdout


async def timed(calls: list[Callable[[], Awaitable[None]]], concurrency: int) -> dict[str, float]:
    """Run the calls, `concurrency` at a time: requests/s, p50 and p99 latency (ms)."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            t = time.monotonic()
            await call()
            lat.append(time.monotonic() - t)

    t0 = time.monotonic()
    await asyncio.gather(*(one(c) for c in calls))
    wall = time.monotonic() - t0
    return {"per_s": round(len(calls) / wall, 1), "p50_ms": round(pct(lat, 0.5) * 1000, 1),
            "p99_ms": round(pct(lat, 0.99) * 1000, 1)}


async def direct(kube: Kube, ns: str, n: int, lists: int, c: int) -> dict[str, Any]:
    async def create(i: int) -> None:
        status, body = await kube.request("POST", path(GV, KIND, ns), {
            "apiVersion": GV, "kind": KIND, "metadata": {"name": f"sb-{i}", "namespace": ns}, "spec": BODY})
        assert status == 201, body

    async def get(i: int) -> None:
        assert (await kube.request("GET", path(GV, KIND, ns, f"sb-{i}")))[0] == 200

    async def list_() -> None:
        assert (await kube.request("GET", path(GV, KIND, ns)))[0] == 200

    return {"create": await timed([lambda i=i: create(i) for i in range(n)], c),  # type: ignore[misc]
            "get": await timed([lambda i=i: get(i) for i in range(n)], c),  # type: ignore[misc]
            "list": await timed([list_ for _ in range(lists)], min(c, lists))}


async def through_gateway(url: str, ns: str, n: int, lists: int, c: int) -> dict[str, Any]:
    auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()}
    base = f"{url}/namespaces/{ns}/livy/batches"
    async with aiohttp.ClientSession(headers=auth, connector=aiohttp.TCPConnector(limit=c)) as http:
        ids: list[int] = []

        async def create() -> None:
            async with http.post(base, json=BODY) as r:
                assert r.status == 200, await r.text()
                ids.append((await r.json())["id"])

        async def get(i: int) -> None:
            async with http.get(f"{base}/{i}") as r:
                assert r.status == 200, await r.text()
                await r.read()

        async def list_() -> None:
            async with http.get(base, params={"size": "-1"}) as r:
                assert r.status == 200, await r.text()
                await r.read()

        out = {"create": await timed([create for _ in range(n)], c)}
        out["get"] = await timed([lambda i=i: get(i) for i in ids], c)  # type: ignore[misc]
        out["list"] = await timed([list_ for _ in range(lists)], min(c, lists))
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(n: int, lists: int, c: int) -> dict[str, Any]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    register_kind(GV, KIND, "sparkbatches")
    stamp = time.strftime("%H%M%S")
    direct_ns, gw_ns = f"bench-gwd-{stamp}", f"bench-gw-{stamp}"
    for ns in (direct_ns, gw_ns):
        kubectl("create", "namespace", ns)
    kubectl("create", "role", "bench-livy", "--verb=get,list,create", "--resource=sparkbatches.lakejob.io", "-n", gw_ns)
    kubectl("create", "rolebinding", "bench-livy", "--role=bench-livy", f"--user={USER}", "-n", gw_ns)
    keys = Path(tempfile.mkdtemp()) / "keys.yaml"
    keys.write_text(yaml.safe_dump({"livy": [{"user": "bench", "password": PASSWORD, "as": {"user": USER}}]}))
    port = free_port()
    log = open(cluster.RUN / "logs" / "bench-gateway.log", "wb")
    gw = subprocess.Popen([str(Path(sys.executable).parent / "lakejob"), "gateway", "--port", str(port),
                           "--keys", str(keys)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    kube = await Kube.connect()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "n": n, "lists": lists, "concurrency": c,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    try:
        for _ in range(100):
            try:
                async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        result["direct"] = await direct(kube, direct_ns, n, lists, c)
        result["gateway"] = await through_gateway(f"http://127.0.0.1:{port}", gw_ns, n, lists, c)
        result["ratio"] = {op: {"per_s": round(result["gateway"][op]["per_s"] / result["direct"][op]["per_s"], 2),
                                "p99": round(result["gateway"][op]["p99_ms"] / result["direct"][op]["p99_ms"], 2)}
                           for op in ("create", "get", "list")}
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        log.close()
        await kube.close()
        for ns in (direct_ns, gw_ns):
            kubectl("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="creates and gets of each kind")
    parser.add_argument("--lists", type=int, default=20, help="lists of the namespace (N items each)")
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    args = parser.parse_args()
    if not cluster.running():
        print("bench: no local cluster runs (make cluster)", file=sys.stderr)
        return 1
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    result = asyncio.run(run(args.n, args.lists, args.concurrency))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "gateway.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(f"{'':8} {'direct /s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'gateway /s':>10} {'p50 ms':>8} {'p99 ms':>8} | "
          f"{'ratio /s':>8} {'ratio p99':>9}")
    for op in ("create", "get", "list"):
        d, g, r = result["direct"][op], result["gateway"][op], result["ratio"][op]
        print(f"{op:8} {d['per_s']:>10} {d['p50_ms']:>8} {d['p99_ms']:>8} | {g['per_s']:>10} {g['p50_ms']:>8} "
              f"{g['p99_ms']:>8} | {r['per_s']:>8} {r['p99']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
