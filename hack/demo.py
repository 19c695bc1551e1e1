#!/usr/bin/env python3
"""`make demo`: CRDs installed, the operator running, examples/ applied, their states shown live.

Runs after `make cluster` (the Makefile orders it). The operator is left running in the
background with its PID in the cluster's run directory, so `make cluster-down` stops it too;
the cluster is left up and the last line says how to point kubectl at it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
import cluster  # noqa: E402  (hack/cluster/cluster.py)

KUBECTL = str(cluster.BIN / "kubectl")
SETTLED = {"running", "success", "dead", "killed"}


def kubectl(*args: str) -> str:
    return subprocess.run([KUBECTL, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())}).stdout


def start_operator() -> None:
    pidfile = cluster.RUN / "pids" / "operator.pid"
    if pidfile.exists() and cluster._ours(int(pidfile.read_text())):
        print(f"demo: the operator already runs (pid {pidfile.read_text()})")
        return
    log = open(cluster.RUN / "logs" / "operator.log", "ab")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path()), "LAKEJOB_RUN_DIR": str(cluster.RUN),
           "LAKEJOB_DRIVER_LOGS": "false"}  # fake KWOK pods have no kubelet to read logs from
    proc = subprocess.Popen([str(Path(sys.executable).parent / "lakejob"), "run", "--all-namespaces"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    print(f"demo: operator started (pid {proc.pid}, log {cluster.RUN / 'logs' / 'operator.log'})")


def main() -> int:
    if not cluster.running():
        print("demo: no local cluster runs; `make demo` starts one (or run `make cluster`)", file=sys.stderr)
        return 1
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd",
                "-l", "app.kubernetes.io/part-of=lakejob")
    print("demo: CRDs installed:", ", ".join(kubectl("get", "crd", "-o", "name").split()))
    start_operator()
    print(kubectl("apply", "-n", "default", "-f", str(ROOT / "examples")), end="")
    deadline = time.monotonic() + 120
    while True:
        items = json.loads(kubectl("get", "lakejob", "-n", "default", "-o", "json"))["items"]
        states = {i["metadata"]["name"]: (i.get("status") or {}).get("state") for i in items}
        print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
        print(time.strftime("%H:%M:%S"), "kubectl get lakejob -n default")
        print(kubectl("get", "lakejob", "-n", "default"), end="")
        print(kubectl("get", "pods", "-n", "default", "-l", "app.kubernetes.io/managed-by=lakejob"), end="")
        if items and all(s in SETTLED for s in states.values()):
            # the retrying example ends dead; wait for it, the others settle earlier
            if all(s in {"success", "dead", "killed"} for n, s in states.items() if n in ("pyspark-pi", "flaky-etl")):
                break
        if time.monotonic() > deadline:
            print("demo: not every example settled within 120s; see `kubectl describe lakejob -n default`")
            break
        time.sleep(2)
    print("\ndemo: the examples settled; events:")
    print(kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.kind=SparkBatch",
                  "--sort-by=.lastTimestamp"), end="")
    print(f"\nThe cluster and the operator keep running (`make cluster-down` stops both). Try:\n"
          f"  export KUBECONFIG={cluster.kubeconfig_path()}\n  kubectl get sb -o wide")
    return 0


if __name__ == "__main__":
    sys.exit(main())
