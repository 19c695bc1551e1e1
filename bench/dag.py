#!/usr/bin/env python3
"""`make bench` (DagJob part): a 1,000-task fan-out and a 200-deep chain of command tasks.

What is measured is the operator's own overhead per DAG transition: from the moment the upstream
task's Job is seen finished (its Complete / SuccessCriteriaMet condition in a watch event) to the
moment the downstream task's Job is seen created (its ADDED event), both timed by this client on
one clock, p50/p99 over every edge, and the operator's CPU time (utime + stime from /proc) per task.

BatchCompute caps a DagJob at 16 tasks (the CRD enforces it), so one DagJob cannot hold 1,000
tasks or a 200-deep chain. The bench reaches the sizes with many DagJobs at once, which loads the
operator at least as hard as one big DAG would (every transition is the same reconcile):
  fan-out: 67 DagJobs × (1 root → 15 leaves)  = 1,005 downstream tasks started by their root;
  chain:   14 DagJobs × a 16-task chain        = 210 sequential transitions (14 × 15).
The pods are KWOK's: a Job's pod succeeds 1 s after it runs, so the Jobs really finish.
Results are printed and appended to bench/results/dag.jsonl; docs/dagjob.md reports them.
Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import bench_main, cluster, cpu_s, fresh_namespaces, kubectl, pct, watch

from lakejob.kube import Kube, register_kind  # noqa: E402
from lakejob.render.dag import child_name  # noqa: E402

MAX_TASKS = 16


def command() -> dict[str, Any]:
    return {"InstanceCount": 1, "Timeout": 600, "Parameters": {
        "Command": {"CommandLine": "python worker.py"},
        "StdoutRedirectPath": "oss://bench/logs/", "StderrRedirectPath": "oss://bench/logs/"}}


def dagjob(name: str, namespace: str, tasks: list[str], deps: dict[str, list[str]]) -> dict[str, Any]:
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "DagJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"Name": name, "Priority": 500, "Type": "DAG", "JobFailOnInstanceFail": True,
                     "DAG": {"Tasks": {t: command() for t in tasks}, "Dependencies": deps}}}


def fan_out(namespace: str, jobs: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """DagJobs of one root and 15 leaves; the edges as (upstream Job, downstream Job) names."""
    objs, edges = [], []
    leaves = [f"leaf{i:02}" for i in range(1, MAX_TASKS)]
    for j in range(jobs):
        name = f"fan-{j:03}"
        objs.append(dagjob(name, namespace, ["root", *leaves], {"root": leaves}))
        edges += [(child_name(name, "root", 1), child_name(name, leaf, 1)) for leaf in leaves]
    return objs, edges


def chain(namespace: str, jobs: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    objs, edges = [], []
    tasks = [f"step{i:02}" for i in range(MAX_TASKS)]
    for j in range(jobs):
        name = f"chain-{j:03}"
        objs.append(dagjob(name, namespace, tasks, {a: [b] for a, b in zip(tasks, tasks[1:])}))
        edges += [(child_name(name, a, 1), child_name(name, b, 1)) for a, b in zip(tasks, tasks[1:])]
    return objs, edges


async def watch_jobs(kube: Kube, namespace: str, added: dict[str, float], done: dict[str, float], total: int,
                     ready: asyncio.Event) -> None:
    """Record when each Job is first seen (ADDED) and first seen finished successfully."""
    async for event, job in watch(kube, f"/apis/batch/v1/namespaces/{namespace}/jobs", "lakejob.io/kind=DagJob", ready):
        if event not in ("ADDED", "MODIFIED"):
            continue
        now, name = time.monotonic(), job["metadata"]["name"]
        added.setdefault(name, now)
        conditions = (job.get("status") or {}).get("conditions") or []
        if any(c.get("type") in ("Complete", "SuccessCriteriaMet") and c.get("status") == "True" for c in conditions):
            done.setdefault(name, now)
            if len(done) >= total:
                return


async def phase(kube: Kube, namespace: str, objs: list[dict[str, Any]], edges: list[tuple[str, str]],
                pid: int, timeout: float) -> dict[str, Any]:
    total = len({n for e in edges for n in e})
    added: dict[str, float] = {}
    done: dict[str, float] = {}
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch_jobs(kube, namespace, added, done, total, ready))
    await ready.wait()
    cpu0, t0 = cpu_s(pid), time.monotonic()
    sem = asyncio.Semaphore(20)

    async def create(obj: dict[str, Any]) -> None:
        async with sem:
            await kube.create(obj)

    await asyncio.gather(*(create(o) for o in objs))
    await asyncio.wait_for(watcher, timeout=timeout)
    wall, cpu = time.monotonic() - t0, cpu_s(pid) - cpu0
    overhead = [added[down] - done[up] for up, down in edges]
    # A p99 is queueing when the upstream tasks finish together: how close together they finished,
    # and how long the downstream Jobs took to appear (first to last) tells which it is.
    ups, downs = [done[u] for u in {u for u, _ in edges}], [added[d] for d in {d for _, d in edges}]
    tasks = total
    return {"dagjobs": len(objs), "tasks": tasks, "transitions": len(edges),
            "overhead_p50_s": round(pct(overhead, 0.5), 3), "overhead_p99_s": round(pct(overhead, 0.99), 3),
            "overhead_max_s": round(max(overhead), 3), "wall_s": round(wall, 1),
            "upstreams_finished_within_s": round(max(ups) - min(ups), 2),
            "downstreams_created_within_s": round(max(downs) - min(downs), 2),
            "operator_cpu_s": round(cpu, 2), "operator_cpu_ms_per_task": round(1000 * cpu / tasks, 1)}


async def run(fan_jobs: int, chain_jobs: int, scale_jobs: int) -> dict[str, Any]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    register_kind("lakejob.io/v1alpha1", "DagJob", "dagjobs")
    kube = await Kube.connect()
    stamp = time.strftime("%H%M%S")
    namespaces = {"fan_out": f"bench-dagfan-{stamp}", "chain": f"bench-dagchain-{stamp}",
                  "scale": f"bench-dagscale-{stamp}"}
    await fresh_namespaces(*namespaces.values())
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"),
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    log = open(cluster.RUN / "logs" / "bench-dag-operator.log", "wb")
    args = [a for ns in namespaces.values() for a in ("--namespace", ns)]
    op = subprocess.Popen([str(Path(sys.executable).parent / "lakejob"), "run", *args],
                          env={**os.environ, "LAKEJOB_DAG_MAX_RUNNING": "10000", "LAKEJOB_DAG_PRIORITY_CLASSES": ""},
                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await asyncio.sleep(3)  # the operator's watches are up
        objs, edges = fan_out(namespaces["fan_out"], fan_jobs)
        result["fan_out"] = await phase(kube, namespaces["fan_out"], objs, edges, op.pid, timeout=1800)
        objs, edges = chain(namespaces["chain"], chain_jobs)
        result["chain"] = await phase(kube, namespaces["chain"], objs, edges, op.pid, timeout=1800)
        # Many DagJobs' tasks at once, the fan-out's shape (while the two phases' objects are still there).
        if scale_jobs:
            objs, edges = fan_out(namespaces["scale"], scale_jobs)
            result["scale"] = await phase(kube, namespaces["scale"], objs, edges, op.pid, timeout=3600)
    finally:
        op.terminate()
        op.wait(timeout=30)
        log.close()
        await kube.close()
        for ns in namespaces.values():
            kubectl("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fan-jobs", type=int, default=67, help="fan-out DagJobs (15 leaves each; 67 → 1,005)")
    parser.add_argument("--chain-jobs", type=int, default=14, help="chain DagJobs (15 transitions each; 14 → 210)")
    parser.add_argument("--scale-jobs", type=int, default=313,
                        help="fan-out DagJobs of the scale phase (16 tasks each; 313 → 5,008 tasks; 0: no scale phase)")
    return bench_main("dag", parser, lambda args: run(args.fan_jobs, args.chain_jobs, args.scale_jobs))


if __name__ == "__main__":
    sys.exit(main())
