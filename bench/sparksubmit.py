#!/usr/bin/env python3
"""`make bench`: lakejob's submission path next to the Kubeflow Spark Operator's, in one run.

The Kubeflow Spark Operator submits every SparkApplication by running `spark-submit --deploy-mode
cluster` (a JVM) for it, --controller-threads (default 10) at a time. Here the same: N
applications submitted by pyspark's own `spark-submit` against the local apiserver, 10 at a time,
each with `spark.kubernetes.submission.waitAppCompletion=false` (the operator's JVM exits once the
driver pod exists); then N SparkBatch CRs for the same program, created at once, while `lakejob run`
watches their namespace. Per side: applications/s from the first submission to the last driver
pod's ADDED event, and CPU-seconds per application of the submitting side (spark-submit's JVMs, from
this process's waited-for children; the operator, from /proc) and of the apiserver.
Driver pods name a scheduler that does not run, so they stay Pending: the submission is measured,
not Spark. Results are printed and appended to bench/results/sparksubmit.jsonl.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import burst
import pyspark
from common import bench_main, cluster, component_pid, cpu_s, fresh_namespaces, kubectl, start_operator

from lakejob.kube import Kube, register_kind

# pyspark's own distribution: its bin/spark-submit, run as Spark runs it (SPARK_HOME set).
SPARK_HOME = Path(pyspark.__file__).parent
SPARK_SUBMIT = SPARK_HOME / "bin" / "spark-submit"
KUBEFLOW_CONTROLLER_THREADS = 10  # the Kubeflow Spark Operator's --controller-threads default


async def watch_drivers(kube: Kube, namespace: str, seen: dict[str, float], total: int, ready: asyncio.Event) -> None:
    url = f"{kube.server}/api/v1/namespaces/{namespace}/pods"
    params = {"watch": "1", "labelSelector": "spark-role=driver", "allowWatchBookmarks": "false"}
    async with kube.session.get(url, params=params, headers=kube._headers(),
                                timeout=None) as resp:  # type: ignore[arg-type]
        ready.set()
        async for line in resp.content:
            event = json.loads(line)
            if event["type"] == "ADDED":
                seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())
                if len(seen) >= total:
                    return


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def spark_submit(namespace: str, name: str, log: Path) -> int:
    args = [str(SPARK_SUBMIT), "--master", f"k8s://{cluster_server()}", "--deploy-mode", "cluster",
            "--name", name, "--class", "org.apache.spark.examples.SparkPi",
            "--conf", f"spark.kubernetes.namespace={namespace}",
            "--conf", "spark.kubernetes.container.image=apache/spark:3.5.7",
            "--conf", "spark.kubernetes.submission.waitAppCompletion=false",
            "--conf", f"spark.kubernetes.scheduler.name={burst.NO_SCHEDULER}",
            "--conf", "spark.kubernetes.authenticate.driver.serviceAccountName=default",
            "--conf", f"spark.kubernetes.driver.pod.name={name}-driver",
            burst.SPARK_JAR]
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(*args, stdout=out, stderr=out,
                                                    env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path()),
                                                         "SPARK_HOME": str(SPARK_HOME)})
        return await proc.wait()


def cluster_server() -> str:
    return kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")


async def side(kube: Kube, namespace: str, n: int, submit: Any, pids: dict[str, int],
               own_cpu: Any) -> dict[str, Any]:
    seen: dict[str, float] = {}
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch_drivers(kube, namespace, seen, n, ready))
    await ready.wait()
    cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
    own0, t0 = own_cpu(), time.monotonic()
    await submit()
    await asyncio.wait_for(watcher, timeout=1800)
    wall = max(seen.values()) - t0
    return {"apps_per_s": round(n / wall, 2), "seconds": round(wall, 1),
            "submitter_cpu_s_per_app": round((own_cpu() - own0) / n, 3),
            "apiserver_cpu_s_per_app": round((cpu_s(pids["apiserver"]) - cpu0["apiserver"]) / n, 4)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path())
    register_kind("lakejob.io/v1alpha1", "SparkBatch", "sparkbatches")
    kube = await Kube.connect()
    stamp = time.strftime("%H%M%S")
    submit_ns, op_ns = f"bench-submit-{stamp}", f"bench-lakejob-{stamp}"
    await fresh_namespaces(submit_ns, op_ns)
    n = args.n
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "n": n,
                              "spark_submit_concurrency": KUBEFLOW_CONTROLLER_THREADS,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    apiserver = {"apiserver": component_pid("kube-apiserver")}
    log = cluster.RUN / "logs" / "bench-spark-submit.log"
    try:
        sem = asyncio.Semaphore(KUBEFLOW_CONTROLLER_THREADS)
        codes: list[int] = []

        async def one(i: int) -> None:
            async with sem:
                codes.append(await spark_submit(submit_ns, f"app-{i}", log))

        async def submit_all() -> None:
            await asyncio.gather(*(one(i) for i in range(n)))

        result["spark_submit"] = await side(kube, submit_ns, n, submit_all, apiserver, children_cpu_s)
        if any(codes):
            raise RuntimeError(f"spark-submit failed {sum(1 for c in codes if c)} times: see {log}")

        op = start_operator([op_ns], {"LAKEJOB_DRIVER_LOGS": "false"}, "bench-sparksubmit-operator.log")
        try:
            await asyncio.sleep(3)  # the operator's watches are up
            crs = [{"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch",
                    "metadata": {"name": f"app-{i}", "namespace": op_ns}, "spec": burst.sparkbatch()} for i in range(n)]

            async def create_all() -> None:
                await burst.burst(kube, crs, 50)

            result["lakejob"] = await side(kube, op_ns, n, create_all, {**apiserver, "operator": op.pid},
                                           lambda: cpu_s(op.pid))
        finally:
            op.terminate()
            op.wait(timeout=30)
        result["lakejob_to_spark_submit_rate"] = round(
            result["lakejob"]["apps_per_s"] / result["spark_submit"]["apps_per_s"], 1)
        result["spark_submit_to_lakejob_cpu"] = round(
            result["spark_submit"]["submitter_cpu_s_per_app"] / result["lakejob"]["submitter_cpu_s_per_app"], 1)
    finally:
        await kube.close()
        kubectl("delete", "namespace", submit_ns, op_ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="applications per side")
    return bench_main("sparksubmit", parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
