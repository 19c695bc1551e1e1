#!/usr/bin/env python3
"""`make bench`: a burst of SparkBatch CRs against the local control plane, and the raw pod rate.

In one run, on the same apiserver:
  1. raw: N pods created by an async Python client (concurrency C) → pods/s, the physical limit
     of this machine for one object per job;
  2. operator: N SparkBatch CRs created the same way while `lakejob run` watches the namespace →
     throughput (CR/s until every driver pod exists) and CR→driver-pod latency p50/p99, timed on
     the client: from the CR's create response to the driver pod's ADDED watch event; and the
     apiserver's writes per CR in that window, by resource (its apiserver_request_total, every
     client's: the operator's, the controller-manager's, this one's CR creates), 3 s after the last
     driver pod included, so the writes a driver's creation sets off are counted too.
Driver and raw pods name a scheduler that does not exist, so both stay Pending untouched: what is
measured is the API work of creating them, not the scheduler's or KWOK's.
Results are printed and appended as JSON lines to bench/results/burst.jsonl; docs/performance.md
reports them. Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
import cluster  # noqa: E402

from lakejob.kube import Kube, register_kind  # noqa: E402

# A scheduler nobody runs: pods stay Pending untouched, so neither the scheduler's writes nor
# KWOK's enter the measurement, for the raw pods and the drivers alike.
NO_SCHEDULER = "lakejob-bench-unscheduled"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def watch_pods(kube: Kube, namespace: str, selector: str, seen: dict[str, float], total: int,
                     ready: asyncio.Event) -> None:
    """Record when each pod's ADDED event arrives (a watch from resourceVersion 0 of an empty namespace)."""
    url = f"{kube.server}/api/v1/namespaces/{namespace}/pods"
    params = {"watch": "1", "labelSelector": selector, "allowWatchBookmarks": "false"}
    async with kube.session.get(url, params=params, headers=kube._headers(),
                                timeout=None) as resp:  # type: ignore[arg-type]
        ready.set()
        async for line in resp.content:
            event = json.loads(line)
            if event["type"] == "ADDED":
                seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())
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


WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}


def writes() -> dict[str, float]:
    """The apiserver's write requests so far, by resource[/subresource] (its /metrics)."""
    out: dict[str, float] = {}
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition(" ")
        labels = dict(part.split("=", 1) for part in labels_text[len("apiserver_request_total{"):-1].split(",")
                      if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") not in WRITE_VERBS:
            continue
        what = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        out[what] = out.get(what, 0.0) + float(value)
    return out


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "raw"}},
            "spec": {"restartPolicy": "Never", "schedulerName": NO_SCHEDULER, "enableServiceLinks": False,
                     "containers": [{"name": "c", "image": "apache/spark:3.5.7",
                                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}


def sparkbatch(name: str) -> dict[str, Any]:
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": name},
            "spec": {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                     "className": "org.apache.spark.examples.SparkPi",
                     "driver": {"schedulerName": NO_SCHEDULER}}}


def kubectl(*args: str) -> str:
    return subprocess.run([str(cluster.BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path()), *args],
                          check=True, capture_output=True, text=True).stdout


async def run(n: int, concurrency: int, driver_rbac: str) -> dict[str, Any]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    register_kind("lakejob.io/v1alpha1", "SparkBatch", "sparkbatches")
    kube = await Kube.connect()
    while "bench-" in kubectl("get", "namespaces", "-o", "name"):
        # An earlier run's namespaces are still being emptied: that churn would skew this run.
        print("bench: waiting for an earlier run's namespaces to be deleted", file=sys.stderr)
        await asyncio.sleep(5)
    stamp = time.strftime("%H%M%S")
    raw_ns, op_ns = f"bench-raw-{stamp}", f"bench-op-{stamp}"
    for ns in (raw_ns, op_ns):
        kubectl("create", "namespace", ns)
    for ns in (raw_ns, op_ns):  # pods need the namespace's default ServiceAccount
        while subprocess.run([str(cluster.BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path()),
                              "get", "sa", "default", "-n", ns], capture_output=True).returncode:
            await asyncio.sleep(0.2)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "n": n, "concurrency": concurrency,
                              "driver_rbac": driver_rbac,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    try:
        # 1. raw pod creates
        objs = [pod(f"raw-{i}") | {"metadata": {"name": f"raw-{i}", "namespace": raw_ns, "labels": {"bench": "raw"}}}
                for i in range(n)]
        t0 = time.monotonic()
        await burst(kube, objs, concurrency)
        raw_s = time.monotonic() - t0
        result["raw_pods_per_s"] = round(n / raw_s, 1)

        # 2. the operator
        log = open(cluster.RUN / "logs" / "bench-operator.log", "wb")
        op = subprocess.Popen([str(Path(sys.executable).parent / "lakejob"), "run", "--namespace", op_ns],
                              env={**os.environ, "LAKEJOB_DRIVER_LOGS": "false", "LAKEJOB_DRIVER_RBAC": driver_rbac,
                                   "LAKEJOB_METRICS_PORT": "0"}, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
        try:
            await asyncio.sleep(3)  # the operator's watches are up
            seen: dict[str, float] = {}
            ready = asyncio.Event()
            watcher = asyncio.create_task(watch_pods(kube, op_ns, "lakejob.io/role=driver", seen, n, ready))
            await ready.wait()
            crs = [sparkbatch(f"sb-{i}") | {"metadata": {"name": f"sb-{i}", "namespace": op_ns}} for i in range(n)]
            before = writes()
            t0 = time.monotonic()
            created = await burst(kube, crs, concurrency)
            await asyncio.wait_for(watcher, timeout=600)
            total_s = max(seen.values()) - t0
            await asyncio.sleep(3)
            after = writes()
            per_cr = {k: round((after[k] - before.get(k, 0.0)) / n, 2) for k in after
                      if after[k] - before.get(k, 0.0) >= n / 100}  # noise: other namespaces' occasional writes
            result["writes_per_cr"] = dict(sorted(per_cr.items(), key=lambda kv: -kv[1]))
            result["writes_per_cr_total"] = round(sum(per_cr.values()), 2)
            lat = [seen[f"sb-{i}-driver-1"] - created[f"sb-{i}"] for i in range(n)]
            result.update({
                "cr_per_s": round(n / total_s, 1),
                "ratio_to_raw": round((n / total_s) / result["raw_pods_per_s"], 2),
                "latency_p50_s": round(pct(lat, 0.5), 3),
                "latency_p99_s": round(pct(lat, 0.99), 3),
                "latency_mean_s": round(statistics.mean(lat), 3),
                "seconds_until_last_driver": round(total_s, 1),
            })
        finally:
            op.terminate()
            op.wait(timeout=30)
            log.close()
    finally:
        await kube.close()
        for ns in (raw_ns, op_ns):
            kubectl("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="CRs (and raw pods) in the burst")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="client requests in flight")
    parser.add_argument("--driver-rbac", choices=["per-job", "per-namespace"], default="per-namespace",
                        help="the operator's LAKEJOB_DRIVER_RBAC for this run")
    args = parser.parse_args()
    if not cluster.running():
        print("bench: no local cluster runs (make cluster)", file=sys.stderr)
        return 1
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    result = asyncio.run(run(args.n, args.concurrency, args.driver_rbac))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "burst.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
