#!/usr/bin/env python3
"""`make bench`: the gateway's cost, next to the same operations on the Kubernetes API directly.

In one run, on the same apiserver (no operator: the CRs only sit there, what is measured is the
API work):
  1. admin: N SparkBatch creates, then N gets, then L lists of the namespace, by an async Python
     client with the admin kubeconfig (concurrency C): system:masters, which the apiserver
     authorizes without evaluating RBAC;
  2. user: the same with a ServiceAccount's token, its Role the gateway's Livy user's (RBAC
     evaluated): a user of the Kubernetes API, the baseline of the goal's ratio;
  3. gateway: the same through `lakejob gateway`'s Livy API (POST /livy/batches, GET
     /livy/batches/{id}, GET /livy/batches), as a Livy user the gateway impersonates, in a
     namespace of its own.
The creates are made once each; the gets and the lists in R rounds, direct and gateway in turn,
and each figure is the median of its rounds: on a machine the client, the gateway and the
control plane share, one short pass each was moved more by the machine than by the gateway.
Each: requests/s, the p50/p99 latency per request, and the CPU each process spent per request
(the apiserver, the gateway, this client: from /proc, so where the time goes is a number). The
ratios gateway/direct are the figures (issue 13's goal: a get costs ≤ 20 % more; creates keep up
with the operator's own rate).
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from common import ROOT, cluster, cpu_s, install_crds, kubectl, pct

from lakejob.kube import Kube, path, register_kind  # noqa: E402

GV, KIND = "lakejob.io/v1alpha1", "SparkBatch"
USER, PASSWORD = "bench:livy", "bench-password"
BODY = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi"}


# The processes whose CPU is counted per request: name → pid (run() fills it).
PIDS: dict[str, int] = {}


async def timed(calls: list[Callable[[], Awaitable[None]]], concurrency: int) -> dict[str, Any]:
    """Run the calls, `concurrency` at a time: requests/s, p50 and p99 latency (ms), and the CPU ms
    per request of each process in PIDS and of this client."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            t = time.monotonic()
            await call()
            lat.append(time.monotonic() - t)

    before = {name: cpu_s(pid) for name, pid in PIDS.items()}
    client0, t0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(one(c) for c in calls))
    wall, client = time.monotonic() - t0, time.process_time() - client0
    used = {name: cpu_s(pid) - before[name] for name, pid in PIDS.items()} | {"client": client}
    return {"per_s": round(len(calls) / wall, 1), "p50_ms": round(pct(lat, 0.5) * 1000, 1),
            "p99_ms": round(pct(lat, 0.99) * 1000, 1),
            "cpu_ms": {name: round(1000 * s / len(calls), 2) for name, s in used.items()}}


Calls = list[Callable[[], Awaitable[None]]]


def direct(kube: Kube, ns: str, n: int, lists: int, token: str | None = None) -> dict[str, Calls]:
    """The calls on the apiserver itself: as the admin (kube's client certificate), or with a
    ServiceAccount's bearer `token` (on kube.bare: no certificate beside it)."""
    client = kube if token is None or kube.bare is None else kube.bare
    auth = [("Authorization", f"Bearer {token}")] if token else []

    async def create(i: int) -> None:
        status, body = await client.request("POST", path(GV, KIND, ns), {
            "apiVersion": GV, "kind": KIND, "metadata": {"name": f"sb-{i}", "namespace": ns}, "spec": BODY},
            headers=auth)
        assert status == 201, body

    async def get(i: int) -> None:
        assert (await client.request("GET", path(GV, KIND, ns, f"sb-{i}"), headers=auth))[0] == 200

    async def list_() -> None:
        assert (await client.request("GET", path(GV, KIND, ns), headers=auth))[0] == 200

    return {"create": [lambda i=i: create(i) for i in range(n)],  # type: ignore[misc]
            "get": [lambda i=i: get(i) for i in range(n)],  # type: ignore[misc]
            "list": [list_ for _ in range(lists)]}


def through_gateway(http: aiohttp.ClientSession, url: str, ns: str, n: int, lists: int) -> dict[str, Calls]:
    """The same calls through the gateway's Livy API; the gets find the ids the creates were given
    (Livy's, from 0 in a fresh namespace), so they are made after the creates."""
    base = f"{url}/namespaces/{ns}/livy/batches"

    async def create() -> None:
        async with http.post(base, json=BODY) as r:
            assert r.status == 200, await r.text()

    async def get(i: int) -> None:
        async with http.get(f"{base}/{i}") as r:
            assert r.status == 200, await r.text()
            await r.read()

    async def list_() -> None:
        async with http.get(base, params={"size": "-1"}) as r:
            assert r.status == 200, await r.text()
            await r.read()

    return {"create": [create for _ in range(n)], "get": [lambda i=i: get(i) for i in range(n)],  # type: ignore[misc]
            "list": [list_ for _ in range(lists)]}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over rounds (the CPU figures too)."""
    med = statistics.median
    return {"per_s": round(med(r["per_s"] for r in runs), 1), "p50_ms": round(med(r["p50_ms"] for r in runs), 1),
            "p99_ms": round(med(r["p99_ms"] for r in runs), 1), "rounds": len(runs),
            "cpu_ms": {k: round(med(r["cpu_ms"][k] for r in runs), 2) for k in runs[0]["cpu_ms"]}}


async def paired(sides: dict[str, dict[str, Calls]], c: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Creates once each; then gets and lists in `rounds` rounds, the sides in turn, so a drift of
    the machine (another process, the apiserver's own background work) falls on all of them."""
    out: dict[str, dict[str, Any]] = {side: {} for side in sides}
    for side, calls in sides.items():
        out[side]["create"] = await timed(calls["create"], c)
    for op in ("get", "list"):
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for _ in range(rounds):
            for side, calls in sides.items():
                runs[side].append(await timed(calls[op], min(c, len(calls[op]))))
        for side in runs:
            out[side][op] = median_of(runs[side])
    return out


# admin: the admin kubeconfig's client certificate (system:masters); user: a ServiceAccount's token
# with the Role the gateway's Livy user has; gateway: that Livy user through `lakejob gateway`.
SIDES = ("admin", "user", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(n: int, lists: int, c: int, rounds: int) -> dict[str, Any]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    register_kind(GV, KIND, "sparkbatches")
    stamp = time.strftime("%H%M%S")
    spaces = {side: f"bench-gw{side[0]}-{stamp}" for side in SIDES}
    for ns in spaces.values():
        kubectl("create", "namespace", ns)
    # The same Role for the gateway's Livy user and for the "user" side's own ServiceAccount.
    for ns, subject in ((spaces["gateway"], f"--user={USER}"),
                        (spaces["user"], f"--serviceaccount={spaces['user']}:bench-user")):
        kubectl("create", "role", "bench-livy", "--verb=get,list,create", "--resource=sparkbatches.lakejob.io", "-n", ns)
        kubectl("create", "rolebinding", "bench-livy", "--role=bench-livy", subject, "-n", ns)
    kubectl("create", "serviceaccount", "bench-user", "-n", spaces["user"])
    token = kubectl("create", "token", "bench-user", "-n", spaces["user"], "--duration=1h").strip()
    keys = Path(tempfile.mkdtemp()) / "keys.yaml"
    keys.write_text(yaml.safe_dump({"livy": [{"user": "bench", "password": PASSWORD, "as": {"user": USER}}]}))
    port = free_port()
    log = open(cluster.RUN / "logs" / "bench-gateway.log", "wb")
    gw = subprocess.Popen([str(Path(sys.executable).parent / "lakejob"), "gateway", "--port", str(port),
                           "--keys", str(keys)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    kube = await Kube.connect()
    PIDS.update(apiserver=cluster.alive("kube-apiserver") or 0, gateway=gw.pid)
    if not PIDS["apiserver"]:
        del PIDS["apiserver"]  # a cluster this bench did not start: its apiserver is not counted
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "n": n, "lists": lists, "concurrency": c,
                              "rounds": rounds,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    try:
        for _ in range(100):
            try:
                async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()}
        async with aiohttp.ClientSession(headers=auth, connector=aiohttp.TCPConnector(limit=c)) as http:
            result.update(await paired({
                "admin": direct(kube, spaces["admin"], n, lists),
                "user": direct(kube, spaces["user"], n, lists, token),
                "gateway": through_gateway(http, f"http://127.0.0.1:{port}", spaces["gateway"], n, lists)}, c, rounds))
        # The goal's ratio is against the user's own direct calls (RBAC evaluated, as through the
        # gateway); the admin's (system:masters: the apiserver authorizes it without RBAC) is shown too.
        result["ratio"] = {base: {op: {"per_s": round(result["gateway"][op]["per_s"] / result[base][op]["per_s"], 2),
                                       "p99": round(result["gateway"][op]["p99_ms"] / result[base][op]["p99_ms"], 2)}
                                  for op in ("create", "get", "list")} for base in ("user", "admin")}
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        log.close()
        await kube.close()
        for ns in spaces.values():
            kubectl("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="creates and gets of each kind")
    parser.add_argument("--lists", type=int, default=20, help="lists of the namespace (N items each)")
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of gets and of lists, the three sides in turn")
    args = parser.parse_args()
    if not cluster.running():
        print("bench: no local cluster runs (make cluster)", file=sys.stderr)
        return 1
    install_crds()
    result = asyncio.run(run(args.n, args.lists, args.concurrency, args.rounds))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "gateway.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(f"{'':8} " + " | ".join(f"{side + ' /s':>12} {'p50 ms':>7} {'p99 ms':>7}" for side in SIDES)
          + f" | {'gw/user /s':>10} {'gw/user p99':>11} {'gw/admin /s':>11}")
    for op in ("create", "get", "list"):
        r = result["ratio"]
        print(f"{op:8} " + " | ".join(f"{result[side][op]['per_s']:>12} {result[side][op]['p50_ms']:>7} "
                                      f"{result[side][op]['p99_ms']:>7}" for side in SIDES)
              + f" | {r['user'][op]['per_s']:>10} {r['user'][op]['p99']:>11} {r['admin'][op]['per_s']:>11}")
    print("CPU ms per request, apiserver / gateway / client:")
    for op in ("create", "get", "list"):
        print(f"{op:8} " + "   ".join(f"{side} {result[side][op]['cpu_ms'].get('apiserver', '-')} / "
                                       f"{result[side][op]['cpu_ms'].get('gateway', 0)} / {result[side][op]['cpu_ms']['client']}"
                                       for side in SIDES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
