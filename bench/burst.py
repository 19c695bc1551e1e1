#!/usr/bin/env python3
"""`make bench`: bursts of lakejob CRs against the local control plane, and the raw pod rate.

In one run, on the same apiserver:
  1. raw: N pods created by an async Python client (concurrency C) → pods/s, the physical limit
     of this machine for one object per job;
  2. operator: N CRs of one kind (SparkBatch unless --kind) created the same way while `lakejob
     run` watches the namespace → throughput (CR/s until every CR has its first pod) and CR → first
     pod latency p50/p99, timed on the client: from the CR's create response to the pod's ADDED
     watch event; the CPU the operator, the apiserver and etcd spent per CR (/proc); and the
     apiserver's writes per CR in that window, by resource (its apiserver_request_total, every
     client's: the operator's, the controller-manager's, this one's CR creates), 3 s after the last
     first pod included, so the writes a pod's creation sets off are counted too.
With --steady RATE the CRs arrive at RATE per second instead of all at once (--seconds long):
the latency a user sees when the operator keeps up, not a burst's queueing.
Pods name a scheduler that does not exist, so they stay Pending untouched: what is measured is
the API work of creating jobs, not the scheduler's or KWOK's (a DagJob's task pods come from
its Jobs, made by the Job controller; those are scheduled onto KWOK nodes).
Results are printed and appended as JSON lines to bench/results/burst.jsonl; docs/performance.md
reports them. Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import profiles
from common import apiserver_requests, bench_main, cluster, component_pid, cpu_s, fresh_namespaces, kubectl, pct, start_operator, watch

from lakejob.kube import Kube, register_kind

# A scheduler nobody runs: pods stay Pending untouched, so neither the scheduler's writes nor
# KWOK's enter the measurement, for the raw pods and the jobs' pods alike.
NO_SCHEDULER = "lakejob-bench-unscheduled"
SPARK_JAR = "local:///opt/spark/examples/jars/spark-examples.jar"


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "raw"}},
            "spec": {"restartPolicy": "Never", "schedulerName": NO_SCHEDULER, "enableServiceLinks": False,
                     "containers": [{"name": "c", "image": "apache/spark:3.5.7",
                                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}


def sparkbatch() -> dict[str, Any]:
    return {"file": SPARK_JAR, "className": "org.apache.spark.examples.SparkPi",
            "driver": {"schedulerName": NO_SCHEDULER}}


def sparksession() -> dict[str, Any]:
    return {"kind": "spark", "cluster_name": "bench", "driver": {"schedulerName": NO_SCHEDULER}}


def flinkjarjob() -> dict[str, Any]:
    return {"name": "bench", "main_class": "com.example.Main", "entrypoint": "local:///opt/flink/usrlib/job.jar",
            "jobManager": {"schedulerName": NO_SCHEDULER}, "taskManager": {"schedulerName": NO_SCHEDULER}}


def dagjob() -> dict[str, Any]:
    return {"Name": "bench", "Priority": 500, "Type": "DAG", "JobFailOnInstanceFail": True, "DAG": {
        "Dependencies": {}, "Tasks": {"t": {"InstanceCount": 1, "Timeout": 600, "Parameters": {
            "Command": {"CommandLine": "true"},
            "StdoutRedirectPath": "oss://bench/logs/", "StderrRedirectPath": "oss://bench/logs/"}}}}}


# kind → (plural, its spec)
KINDS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "SparkBatch": ("sparkbatches", sparkbatch),
    "SparkSession": ("sparksessions", sparksession),
    "FlinkJarJob": ("flinkjarjobs", flinkjarjob),
    "DagJob": ("dagjobs", dagjob),
}


async def watch_first_pods(kube: Kube, namespace: str, kind: str, seen: dict[str, float], total: int,
                           ready: asyncio.Event) -> None:
    """Record when each CR's first pod's ADDED event arrives (by its lakejob.io/name label)."""
    async for event, pod in watch(kube, f"/api/v1/namespaces/{namespace}/pods", f"lakejob.io/kind={kind}", ready):
        if event == "ADDED":
            seen.setdefault(pod["metadata"]["labels"]["lakejob.io/name"], time.monotonic())
            if len(seen) >= total:
                return


async def burst(kube: Kube, objs: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    done: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)

    async def one(obj: dict[str, Any]) -> None:
        async with sem:
            await kube.create(obj)
            done[obj["metadata"]["name"]] = time.monotonic()

    await asyncio.gather(*(one(o) for o in objs))
    return done


async def steady(kube: Kube, objs: list[dict[str, Any]], rate: float) -> dict[str, float]:
    """Create `objs` at `rate` per second, each on its own schedule (a late one does not delay the next)."""
    done: dict[str, float] = {}
    t0 = time.monotonic()

    async def one(i: int, obj: dict[str, Any]) -> None:
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        await kube.create(obj)
        done[obj["metadata"]["name"]] = time.monotonic()

    await asyncio.gather(*(one(i, o) for i, o in enumerate(objs)))
    return done


WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}


def writes() -> dict[str, float]:
    """The apiserver's write requests so far, by resource[/subresource]."""
    out: dict[str, float] = {}
    for (verb, what, _), n in apiserver_requests().items():
        if verb in WRITE_VERBS:
            out[what] = out.get(what, 0.0) + n
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, concurrency, kind = args.n, args.concurrency, args.kind
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    plural, spec = KINDS[kind]
    register_kind("lakejob.io/v1alpha1", kind, plural)
    kube = await Kube.connect()
    stamp = time.strftime("%H%M%S")
    raw_ns, op_ns = f"bench-raw-{stamp}", f"bench-op-{stamp}"
    await fresh_namespaces(raw_ns, op_ns)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "kind": kind, "n": n,
                              "concurrency": concurrency, "driver_rbac": args.driver_rbac,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    if args.steady:
        result.update(arrival_per_s=args.steady, n=int(args.steady * args.seconds))
        n = result["n"]
    try:
        # 1. raw pod creates
        objs = [pod(f"raw-{i}") | {"metadata": {"name": f"raw-{i}", "namespace": raw_ns, "labels": {"bench": "raw"}}}
                for i in range(min(n, 1000))]
        t0 = time.monotonic()
        await burst(kube, objs, concurrency)
        result["raw_pods_per_s"] = round(len(objs) / (time.monotonic() - t0), 1)

        # 2. the operator
        op = start_operator([op_ns], {"LAKEJOB_DRIVER_LOGS": "false", "LAKEJOB_DRIVER_RBAC": args.driver_rbac},
                            "bench-operator.log")
        spy = None
        try:
            await asyncio.sleep(3)  # the operator's watches are up
            if args.profile:
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(op.pid),
                                        "--rate", "200", "--format", "raw", "--output", str(args.profile),
                                        "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1)  # attached
            seen: dict[str, float] = {}
            ready = asyncio.Event()
            watcher = asyncio.create_task(watch_first_pods(kube, op_ns, kind, seen, n, ready))
            await ready.wait()
            crs = [{"apiVersion": "lakejob.io/v1alpha1", "kind": kind,
                    "metadata": {"name": f"cr-{i}", "namespace": op_ns}, "spec": spec()} for i in range(n)]
            pids = {"operator": op.pid, "apiserver": component_pid("kube-apiserver"), "etcd": component_pid("etcd")}
            before, cpu0 = writes(), {name: cpu_s(pid) for name, pid in pids.items()}
            t0 = time.monotonic()
            if args.steady:
                created = await steady(kube, crs, args.steady)
            else:
                created = await burst(kube, crs, concurrency)
            await asyncio.wait_for(watcher, timeout=900)
            total_s = max(seen.values()) - t0
            cpu = {name: cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait(timeout=60)
                result["profile"] = profiles.summarize(args.profile)
            await asyncio.sleep(3)
            after = writes()
            per_cr = {k: round((after[k] - before.get(k, 0.0)) / n, 2) for k in after
                      if after[k] - before.get(k, 0.0) >= n / 100}  # noise: other namespaces' occasional writes
            result["writes_per_cr"] = dict(sorted(per_cr.items(), key=lambda kv: -kv[1]))
            result["writes_per_cr_total"] = round(sum(per_cr.values()), 2)
            result["cpu_ms_per_cr"] = {name: round(1000 * s / n, 2) for name, s in cpu.items()}
            result["operator_busy"] = round(cpu["operator"] / total_s, 2)  # of one core
            lat = [seen[f"cr-{i}"] - created[f"cr-{i}"] for i in range(n)]
            result.update({
                "cr_per_s": round(n / total_s, 1),
                "ratio_to_raw": round((n / total_s) / result["raw_pods_per_s"], 2),
                "latency_p50_s": round(pct(lat, 0.5), 3),
                "latency_p99_s": round(pct(lat, 0.99), 3),
                "latency_mean_s": round(statistics.mean(lat), 3),
                "seconds_until_last_pod": round(total_s, 1),
            })
        finally:
            op.terminate()
            op.wait(timeout=30)
    finally:
        await kube.close()
        for ns in (raw_ns, op_ns):
            kubectl("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="CRs (and raw pods) in the burst")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="client requests in flight")
    parser.add_argument("--kind", choices=sorted(KINDS), default="SparkBatch")
    parser.add_argument("--steady", type=float, default=0.0, metavar="RATE",
                        help="CRs arrive at RATE per second for --seconds instead of all at once")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--driver-rbac", choices=["per-job", "per-namespace"], default="per-namespace",
                        help="the operator's LAKEJOB_DRIVER_RBAC for this run")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the operator with py-spy during the burst into this file (raw stacks) "
                             "and add a summary of where its time went to the result")
    return bench_main("burst", parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
