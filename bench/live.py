#!/usr/bin/env python3
"""`make bench`: the operator with thousands of live CRs, their pods present.

One operator watches one namespace; CRs of all four kinds arrive in blocks of --block (a mix: 40 %
SparkBatch, 20 % each SparkSession, FlinkJarJob, DagJob), each block created at once and followed
until every CR of it has its first pod. Per block: the rate (CR/s from the block's first create to
its last first pod, compared with the first block's: what grows with the number of live objects
shows here), the CPU per CR of the operator and of the cluster's processes (apiserver, etcd,
controller-manager, scheduler, KWOK, the real node's kube-proxy, kubelet and containerd: which of
them grows; the apiserver's requests per CR by verb and resource: whether a job's requests grow or
their cost), and the operator's RSS after it. Then, with all of them live (nothing finishes: pods
name a scheduler that does not run, DagJob tasks run on KWOK nodes until deleted), the operator's
CPU while they sit idle, over --idle seconds, as a share of one core and in CPU-seconds per minute,
and the reconcile passes it made meanwhile (from its metrics). --resync shortens the operator's
resync interval, so that what the resync costs shows in a short run.
Results are printed and appended to bench/results/live.jsonl; docs/performance.md reports them.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import time
from typing import Any

import aiohttp
import burst
from common import apiserver_requests, bench_main, cluster, component_pid, cpu_s, fresh_namespaces, kubectl, rss_mib, start_operator, watch

from lakejob.kube import Kube, register_kind

CLUSTER_PROCESSES = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok", "kube-proxy",
                     "kubelet", "containerd")
# kind → (name prefix, share of a block)
MIX: dict[str, tuple[str, float]] = {"SparkBatch": ("sb", 0.4), "SparkSession": ("ss", 0.2),
                                     "FlinkJarJob": ("fj", 0.2), "DagJob": ("dj", 0.2)}


async def watch_first_pods(kube: Kube, namespace: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    """When each CR's first pod appears (any lakejob kind, by its lakejob.io/name label)."""
    async for event, pod in watch(kube, f"/api/v1/namespaces/{namespace}/pods", "lakejob.io/kind", ready):
        if event == "ADDED":
            seen.setdefault(pod["metadata"]["labels"]["lakejob.io/name"], time.monotonic())


def block_objects(namespace: str, block: int, size: int) -> list[dict[str, Any]]:
    objs = []
    for kind, (prefix, share) in MIX.items():
        spec = burst.KINDS[kind][1]
        for i in range(int(size * share)):
            objs.append({"apiVersion": "lakejob.io/v1alpha1", "kind": kind,
                         "metadata": {"name": f"{prefix}-{block}-{i}", "namespace": namespace}, "spec": spec()})
    return objs


async def passes(port: int) -> dict[str, int]:
    """Reconcile passes so far per kind, from the operator's lakejob_reconcile_duration_seconds."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return {m[1]: int(float(m[2])) for m in
            re.finditer(r'^lakejob_reconcile_duration_seconds_count\{kind="(\w+)"\} (\S+)$', text, re.M)}


def requests_per_cr(before: dict[tuple[str, str, str], float], crs: int) -> dict[str, float]:
    """The apiserver's requests since `before` per CR, by verb and resource (with the code when it
    is not a success), those of at least 0.02 per CR, most first: whether the requests a job costs
    grow with the live objects (retries, conflicts, someone's LISTs) or only their cost."""
    diff: dict[str, float] = {}
    for (verb, what, code), n in apiserver_requests().items():
        key = f"{verb} {what}" + ("" if code.startswith("2") else f" {code}")
        diff[key] = diff.get(key, 0.0) + (n - before.get((verb, what, code), 0.0)) / crs
    return {key: round(n, 2) for key, n in sorted(diff.items(), key=lambda kv: -kv[1]) if n >= 0.02}


def cluster_idle(others: dict[str, int], cpu0: dict[str, float], wall: float) -> dict[str, float]:
    """Each cluster process's CPU since `cpu0`, in % of one core."""
    return {name: round(100 * (cpu_s(pid) - cpu0[name]) / wall, 2) for name, pid in others.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    for kind, (plural, _) in burst.KINDS.items():
        register_kind("lakejob.io/v1alpha1", kind, plural)
    kube = await Kube.connect()
    ns = f"bench-live-{time.strftime('%H%M%S')}"
    await fresh_namespaces(ns)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "total": args.total, "block": args.block,
                              "mix": {k: share for k, (_, share) in MIX.items()},
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "blocks": []}
    env = {"LAKEJOB_DRIVER_LOGS": "false", "LAKEJOB_METRICS_PORT": str(args.metrics_port)}
    if args.resync:
        env["LAKEJOB_RESYNC_INTERVAL_SECONDS"] = str(args.resync)
    result["resync_interval_s"] = args.resync or 300.0
    op = start_operator([ns], env, "bench-live-operator.log")
    others = {name: component_pid(name) for name in CLUSTER_PROCESSES}
    seen: dict[str, float] = {}
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch_first_pods(kube, ns, seen, ready))
    try:
        await asyncio.sleep(5)  # the operator's watches are up
        await ready.wait()
        result["rss_mib_start"] = rss_mib(op.pid)
        # The cluster's own idle load before any CR, to compare with its load at the end.
        others0, t0 = {name: cpu_s(pid) for name, pid in others.items()}, time.monotonic()
        await asyncio.sleep(args.settle)
        result["cluster_idle_cpu_pct_empty"] = cluster_idle(others, others0, time.monotonic() - t0)
        for b in range(args.total // args.block):
            objs = block_objects(ns, b, args.block)
            names = [o["metadata"]["name"] for o in objs]
            print(f"live: block {b}: {len(objs)} CRs created with {b * len(objs)} live …", flush=True)
            requests0 = apiserver_requests()  # before the clock starts: the read is not the block's
            cpu0, t0 = cpu_s(op.pid), time.monotonic()
            others0 = {name: cpu_s(pid) for name, pid in others.items()}
            await burst.burst(kube, objs, args.concurrency)
            while not all(n in seen for n in names):
                if watcher.done():
                    watcher.result()  # the watch failed: say why instead of waiting out the timeout
                    raise RuntimeError("the pod watch ended")
                if time.monotonic() - t0 > 900:
                    missing = [n for n in names if n not in seen]
                    raise TimeoutError(f"block {b}: {len(missing)} CRs without a pod after 900 s, e.g. {missing[:5]}")
                await asyncio.sleep(0.2)
            wall = max(seen[n] for n in names) - t0
            entry = {"block": b, "live_crs": (b + 1) * len(objs), "cr_per_s": round(len(objs) / wall, 1),
                     "operator_cpu_ms_per_cr": round(1000 * (cpu_s(op.pid) - cpu0) / len(objs), 2),
                     # What else grows with the live objects: the cluster's processes on the same cores.
                     "cluster_cpu_ms_per_cr": {name: round(1000 * (cpu_s(pid) - others0[name]) / len(objs), 2)
                                               for name, pid in others.items()},
                     "rss_mib": rss_mib(op.pid),
                     "apiserver_requests_per_cr": requests_per_cr(requests0, len(objs))}
            result["blocks"].append(entry)
            print(f"live: {entry}", flush=True)
        first, last = result["blocks"][0], result["blocks"][-1]
        result["last_to_first_rate"] = round(last["cr_per_s"] / first["cr_per_s"], 2)
        result["rss_growth_mib_per_1000"] = round(
            (last["rss_mib"] - result["rss_mib_start"]) / (last["live_crs"] / 1000), 1)
        await asyncio.sleep(args.settle)  # the last events and passes of the burst are over
        passes0 = await passes(args.metrics_port) if args.metrics_port else {}
        cpu0, t0 = cpu_s(op.pid), time.monotonic()
        others0 = {name: cpu_s(pid) for name, pid in others.items()}
        await asyncio.sleep(args.idle)
        cpu, wall = cpu_s(op.pid) - cpu0, time.monotonic() - t0
        result["cluster_idle_cpu_pct_live"] = cluster_idle(others, others0, wall)
        result["idle_cpu_pct_of_core"] = round(100 * cpu / wall, 2)
        result["idle_cpu_s_per_min"] = round(60 * cpu / wall, 2)
        if args.metrics_port:
            now = await passes(args.metrics_port)
            result["idle_passes_per_min"] = {k: round(60 * (v - passes0.get(k, 0)) / wall, 1) for k, v in now.items()}
        result["rss_mib_idle"] = rss_mib(op.pid)
        print(f"live: idle {result['idle_cpu_s_per_min']} CPU-s/min, passes/min "
              f"{result.get('idle_passes_per_min', '(no metrics)')}", flush=True)
    finally:
        watcher.cancel()
        op.terminate()
        op.wait(timeout=60)
        await kube.close()
        kubectl("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=5000, help="live CRs in all")
    parser.add_argument("--block", type=int, default=1000, help="CRs created at once, then followed to their pods")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="client requests in flight")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the last block before idling")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds the idle CPU is measured over")
    parser.add_argument("--resync", type=float, default=0.0,
                        help="the operator's resync interval in seconds (LAKEJOB_RESYNC_INTERVAL_SECONDS; 0: its default)")
    parser.add_argument("--metrics-port", type=int, default=19391,
                        help="the operator's metrics port, read for its passes while idle (0: not read)")
    return bench_main("live", parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
