#!/usr/bin/env python3
"""`make bench`: SparkPi (2 executors) as a SparkBatch on the real node, next to the same program
run by pyspark's own `spark-submit --master local[2]` on this host, in one run.

1. host: SparkPi.java (images/spark/examples) compiled against the venv's pyspark jars, run with
   `spark-submit --master local[2] --class org.apache.spark.examples.SparkPi <jar> SLICES`; wall
   time from start to exit.
2. cluster: the chart installed from the local images (hack/incluster.py), a SparkBatch of the
   same class and slices with 2 executors; from the CR's creation to status `success`, split by
   the pods' own timestamps: CR → driver pod created (operator), → driver container started
   (scheduling, sandbox, image), → first executor created (driver JVM start, SparkContext),
   → executors running, → driver finished (the job and shutdown), → success (operator observes).
The ratio cluster/host is the operator + Kubernetes overhead on one job. Results are printed and
appended to bench/results/real_sparkpi.jsonl; docs/performance.md reports them. Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ROOT, cluster, install_crds, kubectl

sys.path.insert(0, str(ROOT / "hack"))
import incluster  # noqa: E402

CLASS = "org.apache.spark.examples.SparkPi"


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def host_run(slices: int) -> float:
    """Seconds for spark-submit --master local[2] of SparkPi on this host (a JVM, 2 threads)."""
    import pyspark

    home = Path(pyspark.__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        classes = Path(tmp) / "classes"
        sources = sorted(str(p) for p in (ROOT / "images" / "spark" / "examples").rglob("*.java"))
        subprocess.run(["javac", "--release", "17", "-cp", f"{home}/jars/*", "-d", str(classes), *sources],
                       check=True, capture_output=True)
        jar = Path(tmp) / "spark-examples.jar"
        with zipfile.ZipFile(jar, "w") as z:
            for f in classes.rglob("*.class"):
                z.write(f, f.relative_to(classes).as_posix())
        t0 = time.monotonic()
        r = subprocess.run([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
                            "--class", CLASS, str(jar), str(slices)], capture_output=True, text=True,
                           env={**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
                                "PYSPARK_PYTHON": sys.executable})
        took = time.monotonic() - t0
    if "Pi is roughly" not in r.stdout:
        raise SystemExit(f"host SparkPi failed: {r.stderr[-2000:]}")
    return took


def cluster_run(namespace: str, slices: int) -> dict[str, float]:
    name = "bench-pi"
    on_node = {"nodeSelector": incluster.SELECTOR, "tolerations": [incluster.TOLERATION]}
    body = {"apiVersion": "lakejob.io/v1alpha1", "kind": "SparkBatch", "metadata": {"name": name},
            "spec": {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": CLASS,
                     "args": [str(slices)], "numExecutors": 2, "driverMemory": "512M", "executorMemory": "512M",
                     "conf": {"spark.kubernetes.driver.request.cores": "100m",
                              "spark.kubernetes.executor.request.cores": "100m"},
                     "driver": on_node, "executor": on_node}}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    executors: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 600
    while True:
        for pod in json.loads(kubectl("get", "pods", "-n", namespace, "-l", "spark-role=executor", "-o", "json"))["items"]:
            executors[pod["metadata"]["name"]] = pod
        cr = json.loads(kubectl("get", "sparkbatch", name, "-n", namespace, "-o", "json"))
        state = (cr.get("status") or {}).get("state")
        if state in ("success", "dead"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"SparkBatch {name} did not finish in 600s (state {state})")
        time.sleep(0.5)
    if state != "success":
        raise SystemExit(f"SparkBatch {name} ended {state}: {cr['status'].get('log')}")
    driver = json.loads(kubectl("get", "pod", f"{name}-driver-1", "-n", namespace, "-o", "json"))
    term = driver["status"]["containerStatuses"][0]["state"]["terminated"]
    created = ts(cr["metadata"]["creationTimestamp"])

    def started(pod: dict[str, Any]) -> float:
        st = pod["status"].get("containerStatuses", [{}])[0].get("state", {})
        return ts((st.get("running") or st.get("terminated") or {}).get("startedAt") or pod["metadata"]["creationTimestamp"])

    marks = {
        "driver_pod_created": ts(driver["metadata"]["creationTimestamp"]),
        "driver_started": ts(term["startedAt"]),
        "first_executor_created": min(ts(p["metadata"]["creationTimestamp"]) for p in executors.values()),
        "executors_running": max(started(p) for p in executors.values()),
        "driver_finished": ts(term["finishedAt"]),
        "success": cr["status"]["update_time"] / 1000,
    }
    # Finer steps from the driver's own log (log4j's yy/MM/dd HH:mm:ss, in UTC in the image).
    log = kubectl("logs", f"{name}-driver-1", "-n", namespace)
    for key, needle in (("driver_sparkcontext_starting", "Running Spark version"),
                        ("executors_requested", "Going to request"),
                        ("last_executor_registered", "Registered executor"),
                        ("job_finished", "DAGScheduler: Job "),
                        ("sparkcontext_stopped", "Successfully stopped SparkContext")):
        lines = [line for line in log.splitlines() if needle in line and line[:2].isdigit()
                 and (key != "job_finished" or " finished: " in line)]
        if lines:
            line = lines[-1] if key in ("last_executor_registered", "job_finished") else lines[0]
            marks[key] = datetime.strptime(line[:17] + " +0000", "%y/%m/%d %H:%M:%S %z").timestamp()
    return dict(sorted(((k, round(v - created, 2)) for k, v in marks.items()), key=lambda kv: kv[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=8)
    args = parser.parse_args()
    if not cluster.running() or not cluster.REAL_NODE:
        print("bench: needs the local cluster with its real node (make cluster)", file=sys.stderr)
        return 1
    kubeconfig = str(cluster.kubeconfig_path())
    ns, system = f"bench-real-{uuid.uuid4().hex[:5]}", f"bench-sys-{uuid.uuid4().hex[:5]}"
    install_crds()
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=lakejob")
    kubectl("create", "namespace", ns)
    release = "bench-lakejob"
    try:
        incluster.install(kubeconfig, release, system, incluster.values([ns]))
        host_s = host_run(args.slices)
        marks = cluster_run(ns, args.slices)
    finally:
        incluster.uninstall(kubeconfig, release, system)
        kubectl("delete", "namespace", ns, system, "--wait=false")
    result = {"bench": "real_sparkpi", "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
              "cpus": os.cpu_count(), "slices": args.slices, "host_local2_s": round(host_s, 2),
              "cluster_s": marks["success"], "ratio": round(marks["success"] / host_s, 2), "marks_s": marks}
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results" / "real_sparkpi.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
