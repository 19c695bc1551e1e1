#!/usr/bin/env python3
"""`make bench`: N queued SparkBatches drained through Kueue's queues in priority order (issue 16).

Kueue's manager runs out of cluster (tests/e2e/kueue.py `running`: built once, one at a time per
cluster by the lock beside the kubeconfig, its CRDs deleted when it stops) with --queues
ClusterQueues of --cus CUs each (+ a LocalQueue apiece, `local_queue`, preempting lower priorities)
in one bench namespace. The operator runs out of cluster on that namespace. N SparkBatches of 2 CUs
(a 1-core driver + one 1-core executor) are created all at once, spread round-robin over the queues,
each driver naming one of the chart's PriorityClasses (low/medium/high/urgent, seeded random), KWOK
playing the driver (sim.lakejob.io/outcome=succeed after --delay): with --cus 6 three jobs of a
queue run at a time and the rest queue.

Watched (bench/common.watch; every event's arrival timed with the monotonic clock, not the
conditions' lastTransitionTime, which has one-second resolution):
- the drain: from the first create to the last SparkBatch in a final state → jobs/s;
- priority order per queue: admissions of a Workload while a Workload of higher priority in the
  same queue was already pending (QuotaReserved=False seen, i.e. Kueue had it and found no room) —
  0 expected with BestEffortFIFO, every job being the same size; preemptions (Evicted) counted;
- quota freed → next admitted: from a Workload's Finished=True event to the next Admitted=True
  event in the same ClusterQueue, for finishes while that queue had Workloads pending (p50/p99/max).
Prints one table, appends a JSON line to bench/results/queues.jsonl; docs/performance.md reports it.
Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, bench_main, cluster, fresh_namespaces, kubectl, pct, start_operator, watch

from lakejob.kube import Kube, register_kind

sys.path.insert(0, str(ROOT))
from tests.e2e import kueue  # noqa: E402
from tests.e2e.kubectl import Kubectl  # noqa: E402

PRIORITIES = {"lakejob-priority-low": 1000, "lakejob-priority-medium": 2000,
              "lakejob-priority-high": 3000, "lakejob-priority-urgent": 4000}  # the chart's
FINAL = ("success", "dead")


def sparkbatch(name: str, namespace: str, queue: str, priority_class: str, delay: str) -> dict[str, Any]:
    return {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                     "className": "org.apache.spark.examples.SparkPi", "queue": queue,
                     "driverCores": 1, "driverMemory": "2g", "executorCores": 1, "executorMemory": "2g",
                     "numExecutors": 1,
                     "driver": {"priorityClassName": priority_class,
                                "labels": {"sim.lakejob.io/outcome": "succeed"},
                                "annotations": {"sim.lakejob.io/delay": delay}}}}


def cond(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


class Workloads:
    """What the Workload watch saw, per queue, timed on arrival."""

    def __init__(self) -> None:
        self.admitted: dict[str, bool] = {}
        self.finished: set[str] = set()
        self.pending_seen: dict[str, float] = {}  # Kueue found no room for it (QuotaReserved=False), since
        self.priority: dict[str, int] = {}
        self.queue: dict[str, str] = {}
        self.admissions: list[tuple[float, str, str]] = []  # (time, queue, workload)
        self.finishes: list[tuple[float, str, int]] = []  # (time, queue, Workloads pending then)
        self.inversions: dict[str, int] = {}
        self.inverted: list[tuple[float, str, str, int, list[int], int]] = []  # (time, queue, admitted, its priority, higher ones pending, of them once preempted)
        self.evicted: set[str] = set()
        self.ever_evicted: set[str] = set()
        self.preemptions = 0

    def pending(self, queue: str) -> list[str]:
        return [w for w, q in self.queue.items()
                if q == queue and not self.admitted.get(w) and w not in self.finished]

    def see(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        q = self.queue.setdefault(name, obj["spec"].get("queueName", ""))
        prio = self.priority.setdefault(name, int(obj["spec"].get("priority") or 0))
        # Kueue's admission decision is its quota reservation (Admitted follows it, there being no admission checks)
        reserved = cond(obj, "QuotaReserved")
        admitted = reserved.get("status") == "True"
        if reserved.get("status") == "False" and cond(obj, "Requeued").get("status") != "False":
            self.pending_seen.setdefault(name, now)
        evicted = cond(obj, "Evicted").get("status") == "True"
        if evicted and name not in self.evicted:
            self.preemptions += 1
            self.evicted.add(name)
            self.ever_evicted.add(name)
        elif not evicted:
            self.evicted.discard(name)
        if admitted and not self.admitted.get(name):
            higher = [w for w in self.pending(q) if w != name and self.priority[w] > prio
                      and self.pending_seen.get(w, now) < now]
            self.inversions[q] = self.inversions.get(q, 0) + (1 if higher else 0)
            if higher:
                self.inverted.append((now, q, name, prio, sorted({self.priority[w] for w in higher}),
                                      sum(1 for w in higher if w in self.ever_evicted)))
            self.admissions.append((now, q, name))
        if not admitted and self.admitted.get(name):
            self.pending_seen.pop(name, None)  # evicted: pending afresh once Kueue says so
        self.admitted[name] = admitted
        if cond(obj, "Finished").get("status") == "True" and name not in self.finished:
            self.finished.add(name)
            self.finishes.append((now, q, len(self.pending(q))))

    def freed_to_admitted(self) -> list[float]:
        """Per Finished with Workloads pending in its queue: the time to that queue's next admission."""
        out = []
        for t, q, waiting in self.finishes:
            if waiting:
                nxt = [a for a, aq, _ in self.admissions if aq == q and a >= t]
                if nxt:
                    out.append(min(nxt) - t)
        return out


async def watch_workloads(kube: Kube, namespace: str, seen: Workloads, ready: asyncio.Event) -> None:
    async for event, obj in watch(kube, f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads", "", ready):
        if event != "DELETED":
            seen.see(obj, time.monotonic())


async def watch_batches(kube: Kube, namespace: str, final: dict[str, float], states: dict[str, str], n: int,
                        ready: asyncio.Event) -> None:
    async for event, obj in watch(kube, f"/apis/lakejob.io/v1alpha1/namespaces/{namespace}/sparkbatches", "", ready):
        name, state = obj["metadata"]["name"], (obj.get("status") or {}).get("state", "")
        states[name] = state
        if state in FINAL:
            final.setdefault(name, time.monotonic())
            if len(final) >= n:
                return


async def create_all(kube: Kube, objs: list[dict[str, Any]], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(obj: dict[str, Any]) -> None:
        async with sem:
            await kube.create(obj)

    await asyncio.gather(*(one(o) for o in objs))


def ms(values: list[float], q: float) -> float:
    return round(1000 * pct(values, q)) if values else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, queues = args.n, args.queues
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    register_kind("lakejob.io/v1alpha1", "SparkBatch", "sparkbatches")
    ns = f"bench-queues-{time.strftime('%H%M%S')}"
    await fresh_namespaces(ns)
    k = Kubectl(str(cluster.kubeconfig_path()))
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "n": n, "queues": queues,
                              "cus_per_queue": args.cus, "job_cus": 2, "delay": args.delay,
                              "strategy": args.strategy,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    kube = await Kube.connect()
    try:
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-kueue-") as workdir:
            stack.enter_context(kueue.running(k, Path(workdir)))
            names = [f"bench-q{i}" for i in range(queues)]
            for name in names:
                stack.enter_context(contextlib.contextmanager(kueue.local_queue)(
                    k, ns, {"cpu": str(args.cus), "memory": f"{4 * args.cus}Gi"}, name=name,
                    cluster_queue=f"{ns}-{name}", strategy=args.strategy))
            op = start_operator([ns], {"LAKEJOB_DRIVER_LOGS": "false"}, "bench-queues-operator.log")
            stack.callback(op.wait, timeout=30)
            stack.callback(op.terminate)
            await asyncio.sleep(3)  # the operator's watches are up
            seen, final, states = Workloads(), {}, {}
            ready_w, ready_b = asyncio.Event(), asyncio.Event()
            wl_task = asyncio.create_task(watch_workloads(kube, ns, seen, ready_w))
            batches = asyncio.create_task(watch_batches(kube, ns, final, states, n, ready_b))
            await ready_w.wait()
            await ready_b.wait()
            rng = random.Random(16)
            objs = [sparkbatch(f"sb-{i}", ns, names[i % queues].replace("-", "_"), rng.choice(list(PRIORITIES)),
                               args.delay) for i in range(n)]
            t0 = time.monotonic()
            await create_all(kube, objs, args.concurrency)
            created_s = time.monotonic() - t0
            while not batches.done():  # until all are final, or none became final for --stall seconds
                last = max(final.values(), default=t0)
                if time.monotonic() - max(last, t0 + created_s) > args.stall:
                    batches.cancel()
                    stuck = sorted(name for name in states if states[name] not in FINAL)
                    result["stalled"] = f"{len(final)} of {n} final, none for {args.stall:.0f} s"
                    result["stuck"] = {name: states[name] for name in stuck[:20]}
                    break
                await asyncio.sleep(1)
            await asyncio.sleep(1)  # the last Finished events
            wl_task.cancel()
            if seen.inverted:
                result["inversions_after_created_s"] = [round(t - t0 - created_s, 1) for t, *_ in seen.inverted][:20]
                result["inversions_sample"] = [list(x[1:]) for x in seen.inverted[:5]]
            drain = (max(final.values()) - t0) if final else 0.0
            lat = seen.freed_to_admitted()
            result.update({
                "created_s": round(created_s, 1),
                "drain_s": round(drain, 1),
                "jobs_per_s": round(len(final) / drain, 2) if drain else 0.0,
                "succeeded": sum(1 for s in states.values() if s == "success"),
                "dead": sum(1 for s in states.values() if s == "dead"),
                "admissions": len(seen.admissions),
                "preemptions": seen.preemptions,
                "priority_inversions": {q: seen.inversions.get(q, 0) for q in names},
                "freed_to_admitted_n": len(lat),
                "freed_to_admitted_p50_ms": ms(lat, 0.5),
                "freed_to_admitted_p99_ms": ms(lat, 0.99),
                "freed_to_admitted_max_ms": round(1000 * max(lat)) if lat else 0.0,
                "timing": "watch event arrival, monotonic clock",
            })
    finally:
        await kube.close()
        kubectl("delete", "namespace", ns, "--wait=false")
    table(result)
    return result


def table(r: dict[str, Any]) -> None:
    rows = [("jobs", f"{r['n']} over {r['queues']} queues of {r['cus_per_queue']} CUs (2-CU jobs, {r['delay']}, "
                     f"{r.get('strategy', 'BestEffortFIFO')})"),
            ("created in", f"{r['created_s']} s"), ("drained in", f"{r['drain_s']} s"),
            ("jobs/s", r["jobs_per_s"]), ("succeeded / dead", f"{r['succeeded']} / {r['dead']}"),
            ("admissions / preemptions", f"{r['admissions']} / {r['preemptions']}"),
            ("priority inversions", " ".join(f"{q}={v}" for q, v in r["priority_inversions"].items())),
            ("freed → admitted p50/p99/max", f"{r['freed_to_admitted_p50_ms']} / {r['freed_to_admitted_p99_ms']} / "
                                             f"{r['freed_to_admitted_max_ms']} ms (n={r['freed_to_admitted_n']})")]
    if "stalled" in r:
        rows.append(("STALLED", f"{r['stalled']}: {' '.join(r['stuck'])}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="SparkBatches, created at once")
    parser.add_argument("--queues", type=int, default=4, help="ClusterQueues (+ LocalQueues) they are spread over")
    parser.add_argument("--cus", type=int, default=6, help="each queue's quota in CUs (a job takes 2)")
    parser.add_argument("--delay", default="2s", help="how long KWOK runs each driver")
    parser.add_argument("--strategy", choices=["BestEffortFIFO", "StrictFIFO"], default="BestEffortFIFO",
                        help="the ClusterQueues' queueingStrategy (Kueue's default BestEffortFIFO)")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="client creates in flight")
    parser.add_argument("--stall", type=float, default=120,
                        help="give up when no SparkBatch became final for this many seconds (stuck ones listed)")
    return bench_main("queues", parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
