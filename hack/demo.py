#!/usr/bin/env python3
"""`make demo`: CRDs installed, the operator running, examples/ applied, their states shown live.

Runs after `make cluster` (the Makefile orders it). The operator is left running in the
background with its PID in the cluster's run directory, so `make cluster-down` stops it too;
the cluster is left up and the last line says how to point kubectl at it.

KWOK's pods run no code, so the demo stands in for the one thing they cannot answer: a Spark
driver's REST API, which SparkSession reads idle/busy from. A static server in the run directory
answers "no running job" (the payload recorded from a real Spark Connect server, tests/e2e/data).
Flink JobManagers are read from their pods' phases instead of their REST API, as documented.
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
sys.path.insert(0, str(ROOT / "hack"))
import render_argocd  # noqa: E402  (the state → health table of every kind)

REST_PORT = cluster.PORT_BASE + 9


def kubectl(*args: str) -> str:
    return subprocess.run([KUBECTL, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())}).stdout


def _background(name: str, cmd: list[str], env: dict[str, str]) -> None:
    """Start a process that outlives the demo; its PID goes where `make cluster-down` finds it."""
    pid = cluster.alive(name)
    if pid is not None:
        print(f"demo: {name} already runs (pid {pid})")
        return
    pid = cluster.spawn(name, cmd, {**os.environ, **env, "LAKEJOB_RUN_DIR": str(cluster.RUN)})
    print(f"demo: {name} started (pid {pid}, log {cluster.RUN / 'logs' / f'{name}.log'})")


def start_operator() -> None:
    recorded = json.loads((ROOT / "tests" / "e2e" / "data" / "sparksession_rest.json").read_text())
    rest = cluster.RUN / "spark-rest"
    rest.mkdir(exist_ok=True)
    (rest / "jobs.json").write_text(json.dumps(recorded["jobs_idle"]))
    _background("spark-rest", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(rest),
                               str(REST_PORT)], {})
    _background("operator", [str(Path(sys.executable).parent / "lakejob"), "run", "--all-namespaces"], {
        "KUBECONFIG": str(cluster.kubeconfig_path()),
        "LAKEJOB_DRIVER_LOGS": "false",  # fake KWOK pods have no kubelet to read logs from
        "LAKEJOB_SPARK_REST_URL_TEMPLATE": f"http://127.0.0.1:{REST_PORT}/jobs.json",
        "LAKEJOB_FLINK_REST_URL_TEMPLATE": f"http://127.0.0.1:{REST_PORT}/no-flink-here",
    })


def health(item: dict[str, object]) -> str:
    field, table, _ = render_argocd.HEALTH[str(item["kind"])]
    state = ((item.get("status") or {}) or {}).get(field)  # type: ignore[union-attr]
    return table.get(str(state), "Progressing") if state else "Progressing"


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
    deadline = time.monotonic() + 180
    calm = 0  # settled means: nothing Progressing (Argo CD's view) three looks in a row
    while True:
        items = json.loads(kubectl("get", "lakejob", "-n", "default", "-o", "json"))["items"]
        print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
        print(time.strftime("%H:%M:%S"), "kubectl get lakejob -n default")
        print(kubectl("get", "lakejob", "-n", "default"), end="")
        print(kubectl("get", "pods,jobs", "-n", "default", "-l", "app.kubernetes.io/managed-by=lakejob"), end="")
        calm = calm + 1 if items and all(health(i) != "Progressing" for i in items) else 0
        if calm >= 3:
            break
        if time.monotonic() > deadline:
            print("demo: not every example settled within 180s; see `kubectl describe lakejob -n default`")
            break
        time.sleep(2)
    print("\ndemo: the examples settled; events:")
    events = kubectl("get", "events", "-n", "default", "--sort-by=.lastTimestamp")
    print("\n".join(line for line in events.splitlines() if "lakejob" in line or "LAST SEEN" in line
                     or any(k in line for k in ("sparkbatch/", "sparksession/", "flinkjarjob/", "dagjob/")))[-6000:])
    print(f"\nThe cluster and the operator keep running (`make cluster-down` stops both). Try:\n"
          f"  export KUBECONFIG={cluster.kubeconfig_path()}\n  kubectl get lakejob -o wide")
    return 0


if __name__ == "__main__":
    sys.exit(main())
