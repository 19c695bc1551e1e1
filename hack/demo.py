#!/usr/bin/env python3
"""`make demo`: CRDs installed, the operator running, examples applied, their states shown live.

Runs after `make cluster` (the Makefile orders it). Two halves:
- real: the chart installed with Helm from the locally built operator image (namespace
  lakejob-demo-operator), running on the cluster's real node and watching namespace lakejob-demo, where
  examples/real/ run for real (SparkPi, a PySpark job, a failing job retried once, a Spark Connect
  session, a streaming Flink job, a DAG of commands) and so does the DLI example body, pasted
  unchanged (examples/sparkbatch-dli.yaml), its packages fetched from a package store: moto's S3
  server on the real node's bridge address, filled by hack/store.py, which is also the DagJob's OSS.
  The demo ends with what the jobs printed (status.log, the Flink TaskManager's counts, the DAG
  tasks' stdout read back from the store) and a query the session answers through `kubectl
  port-forward`.
- simulated: examples/*.yaml in namespace default, on KWOK's nodes, whose pods run no code,
  handled by an operator process on this host. KWOK cannot answer a Spark driver's REST API, which
  SparkSession reads idle/busy from, so a static server in the run directory answers "no running
  job" (the payload recorded from a real Spark Connect server, tests/e2e/data). Flink JobManagers
  are read from their pods' phases instead of their REST API, as documented.
Everything is left running (`make cluster-down` stops it all); the last lines say how to look further.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
import cluster  # noqa: E402  (hack/cluster/cluster.py)

KUBECTL = str(cluster.BIN / "kubectl")
sys.path.insert(0, str(ROOT / "hack"))
import render_argocd  # noqa: E402  (Argo CD's state → health table of every kind)
import incluster  # noqa: E402  (hack/incluster.py: the chart from the local images, on the real node)
import store  # noqa: E402  (hack/store.py: the packages the DLI example names)

REST_PORT = cluster.PORT_BASE + 9
STORE_PORT = cluster.PORT_BASE + 10
BRIDGE = "10.244.0.1"  # the real node's bridge: this machine's own address on the pods' network
BUCKET, PREFIX, STORE_SECRET = "lakejob-demo-packages", "dli/", "lakejob-store"
DAG_BUCKET = "lakejob-demo"  # examples/real/dagjob.yaml's OSS bucket
FLINK_PACKAGE = "flinkDemo/tiny-count.jar"  # examples/real/flinkjarjob.yaml's entrypoint
DEMO_KEY_ID, DEMO_KEY_SECRET = "demo", "demo-secret"  # moto takes any keys; a real store's go in the Secret
# Its own operator namespace: lakejob-system may hold another install (the kustomize base, a test's).
REAL_NS, SYSTEM_NS, RELEASE = "lakejob-demo", "lakejob-demo-operator", "lakejob-demo"
T0 = time.monotonic()


def step(text: str) -> None:
    print(f"demo [{time.monotonic() - T0:5.0f}s] {text}", flush=True)


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run([KUBECTL, *args], check=True, capture_output=True, text=True, input=stdin,
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
    _background("operator", [str(Path(sys.executable).parent / "lakejob"), "run", "--namespace", "default"], {
        "KUBECONFIG": str(cluster.kubeconfig_path()),
        "LAKEJOB_DRIVER_LOGS": "false",  # fake KWOK pods have no kubelet to read logs from
        "LAKEJOB_SPARK_REST_URL_TEMPLATE": f"http://127.0.0.1:{REST_PORT}/jobs.json",
        "LAKEJOB_FLINK_REST_URL_TEMPLATE": f"http://127.0.0.1:{REST_PORT}/no-flink-here",
        # The vendors' example bodies name DLI packages: a store to resolve them (KWOK fetches nothing).
        "LAKEJOB_PACKAGES_URL": "s3://lakejob-demo-packages/",
    })


def start_store() -> dict[str, object]:
    """moto's S3 server on the bridge address (pods reach it, nothing outside does), holding the
    packages examples/sparkbatch-dli.yaml and examples/real/flinkjarjob.yaml name and the bucket of
    examples/real/dagjob.yaml; the chart's `stores` values for it."""
    import yaml

    endpoint = f"http://{BRIDGE}:{STORE_PORT}"
    _background("object-store", [sys.executable, "-m", "moto.server", "-H", BRIDGE, "-p", str(STORE_PORT)], {})
    s3 = store_client()
    for bucket in (BUCKET, DAG_BUCKET):
        for _ in range(50):
            try:
                s3.create_bucket(Bucket=bucket)
                break
            except Exception:  # not listening yet (or the bucket exists: create_bucket then says so)
                if any(b["Name"] == bucket for b in _buckets(s3)):
                    break
                time.sleep(0.2)
    spec = yaml.safe_load((ROOT / "examples" / "sparkbatch-dli.yaml").read_text())["spec"]
    step(f"package store {endpoint}: compiling SparkPi and uploading what examples/sparkbatch-dli.yaml names")
    for name, content in store.dli_batch_packages(spec, store.spark_examples_jar()):
        s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=content)
        print(f"  s3://{BUCKET}/{PREFIX}{name} ({len(content)} bytes)")
    step(f"package store: compiling the Flink job of examples/real/flinkjarjob.yaml as {FLINK_PACKAGE}")
    jar = store.flink_jar([ROOT / "tests" / "e2e" / "data" / "FlinkTinyJob.java"], "FlinkTinyJob")
    s3.put_object(Bucket=BUCKET, Key=PREFIX + FLINK_PACKAGE, Body=jar)
    print(f"  s3://{BUCKET}/{PREFIX}{FLINK_PACKAGE} ({len(jar)} bytes)")
    # One server is both stores: S3 (packages, obs://) and OSS (the DagJob's oss:// paths).
    where = {"endpoint": endpoint, "addressingStyle": "path", "region": "us-east-1"}
    return {"packagesUrl": f"s3://{BUCKET}/{PREFIX}", "secretName": STORE_SECRET, "s3": where, "oss": where}


def store_client() -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=f"http://{BRIDGE}:{STORE_PORT}", region_name="us-east-1",
                        aws_access_key_id=DEMO_KEY_ID, aws_secret_access_key=DEMO_KEY_SECRET)


def _buckets(s3: object) -> list[dict[str, str]]:
    try:
        return list(s3.list_buckets()["Buckets"])  # type: ignore[attr-defined]
    except Exception:
        return []


def ask_the_session(name: str) -> None:
    """What a notebook user does: port-forward to the session's Connect port, run a query."""
    forward = subprocess.Popen([KUBECTL, "port-forward", "-n", REAL_NS, f"svc/{name}-session-svc", "15002:15002"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())})
    try:
        time.sleep(3)
        query = ("from pyspark.sql import SparkSession, functions as F\n"
                 "spark = SparkSession.builder.remote('sc://127.0.0.1:15002').getOrCreate()\n"
                 "print(spark.range(100).agg(F.sum('id')).first()[0])")
        r = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True, timeout=300)
        answer = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else \
            f"no answer: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
        print(f"  spark.range(100) summed by session {name}'s executor, asked through port-forward: {answer}")
    finally:
        forward.terminate()


def install_real_operator(stores: dict[str, object]) -> None:
    """The chart, from the local operator image, on the real node, watching REAL_NS."""
    # The DagJob example names the chart's PriorityClasses: this release makes them unless present.
    have_classes = subprocess.run([KUBECTL, "get", "priorityclass", "lakejob-priority-low"], capture_output=True,
                                  env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())}).returncode == 0
    values = incluster.values([REAL_NS], priority_classes=not have_classes, retries={"backoffSeconds": 3},
                              stores=stores)
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": REAL_NS}}))
    kubectl("apply", "-n", REAL_NS, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": STORE_SECRET}, "type": "Opaque",
        "stringData": {"S3_ACCESS_KEY_ID": DEMO_KEY_ID, "S3_ACCESS_KEY_SECRET": DEMO_KEY_SECRET,
                       "OSS_ACCESS_KEY_ID": DEMO_KEY_ID, "OSS_ACCESS_KEY_SECRET": DEMO_KEY_SECRET}}))
    step(f"helm upgrade --install {RELEASE} charts/lakejob -n {SYSTEM_NS} "
         f"(image {values['image']['repository']}:{values['image']['tag']}), waiting for the operator to be ready")
    incluster.install(str(cluster.kubeconfig_path()), RELEASE, SYSTEM_NS, values)


def settled(item: dict[str, Any]) -> bool:
    """A real example has shown what it does: a batch job or a DAG has ended, the Flink job runs
    (it never ends by itself), the session is up (it waits for queries)."""
    st = item.get("status") or {}
    return {"SparkBatch": st.get("state") in ("success", "dead", "killed"),
            "DagJob": st.get("State") in ("Finished", "Failed", "Stopped"),
            "FlinkJarJob": st.get("status_name") not in (None, "job_init", "job_submitting"),
            }.get(item["kind"], True)


def show_flink_and_dag() -> None:
    """The Flink job's state and its TaskManager's last counts; each DAG task's stdout, read back
    from the store under BatchCompute's names."""
    for item in json.loads(kubectl("get", "flinkjarjob", "-n", REAL_NS, "-o", "json"))["items"]:
        name, st = item["metadata"]["name"], item.get("status") or {}
        print(f"  FlinkJarJob {name} ({st.get('status_name')}), its TaskManager's last lines:")
        logs = kubectl("logs", "-n", REAL_NS, "-l", f"lakejob.io/name={name},lakejob.io/role=taskmanager",
                       "--tail=200")
        for line in [x for x in logs.splitlines() if x.startswith("tiny-count ")][-3:]:
            print(f"      {line}")
    s3 = store_client()
    for item in json.loads(kubectl("get", "dagjob", "-n", REAL_NS, "-o", "json"))["items"]:
        name, st = item["metadata"]["name"], item.get("status") or {}
        print(f"  DagJob {name} ({st.get('State')}); its tasks' stdout, from s3://{DAG_BUCKET}/{name}/logs/:")
        listed = s3.list_objects_v2(Bucket=DAG_BUCKET, Prefix=f"{name}/logs/stdout.").get("Contents", [])
        for obj in sorted(listed, key=lambda o: o["LastModified"]):
            text = s3.get_object(Bucket=DAG_BUCKET, Key=obj["Key"])["Body"].read().decode(errors="replace").strip()
            print(f"      {obj['Key'].rsplit('/', 1)[-1]}: {text}")


ARGOCD_KINDS = {k.name: k for k in render_argocd.KINDS}


def health(item: dict[str, Any]) -> str:
    """Argo CD's health of an object, as docs/argocd's health.lua has it (its table, read in Python)."""
    k = ARGOCD_KINDS[str(item["kind"])]
    status = item.get("status") or {}
    state = status.get(k.field)
    if not state:
        return "Progressing"
    by_reason = (k.by_reason or {}).get((state, status.get("reason") or ""))
    return by_reason[0] if by_reason else k.health.get(state, "Progressing")


def main() -> int:
    if not cluster.running():
        print("demo: no local cluster runs; `make demo` starts one (or run `make cluster`)", file=sys.stderr)
        return 1
    real = cluster.REAL_NODE
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd",
            "-l", "app.kubernetes.io/part-of=lakejob")
    step("CRDs installed: " + ", ".join(kubectl("get", "crd", "-o", "name").split()))
    if real:
        try:
            install_real_operator(start_store())
        except (incluster.InstallError, RuntimeError) as e:
            print(f"demo: {e}", file=sys.stderr)
            return 1
        step(f"operator running in-cluster; applying examples/real/ and the DLI example body to namespace "
             f"{REAL_NS} (real pods)")
        print(kubectl("apply", "-n", REAL_NS, "-f", str(ROOT / "examples" / "real")), end="")
        print(kubectl("apply", "-n", REAL_NS, "-f", str(ROOT / "examples" / "sparkbatch-dli.yaml")), end="")
    else:
        step("LAKEJOB_REAL_NODE=0: no real node, only the simulated examples run")
    start_operator()
    step("applying examples/ to namespace default (SIMULATED: KWOK pods run no code)")
    print(kubectl("apply", "-n", "default", "-f", str(ROOT / "examples")), end="")
    namespaces = ([REAL_NS] if real else []) + ["default"]
    deadline = time.monotonic() + 600
    calm = 0  # settled means: nothing Progressing (Argo CD's view) three looks in a row
    while True:
        items = [i for ns in namespaces for i in json.loads(kubectl("get", "lakejob", "-n", ns, "-o", "json"))["items"]]
        print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
        for ns in namespaces:
            what = "REAL, on node lakejob-real" if ns == REAL_NS else "SIMULATED, on KWOK nodes"
            print(f"{time.strftime('%H:%M:%S')} ({time.monotonic() - T0:.0f}s) kubectl get lakejob -n {ns}   # {what}")
            print(kubectl("get", "lakejob", "-n", ns), end="")
            print(kubectl("get", "pods", "-n", ns, "-o", "wide"), end="" if ns == REAL_NS else "\n")
        real_done = all(settled(i) for i in items if i["metadata"]["namespace"] == REAL_NS)
        calm = calm + 1 if items and real_done and all(health(i) != "Progressing" for i in items) else 0
        if calm >= 3:
            step("every example settled")
            break
        if time.monotonic() > deadline:
            step("not every example settled within 600s; see `kubectl describe lakejob -A`")
            break
        time.sleep(3)
    if real:
        print(f"\nWhat the real jobs printed (status.log of each SparkBatch in {REAL_NS}):")
        for item in json.loads(kubectl("get", "sparkbatch", "-n", REAL_NS, "-o", "json"))["items"]:
            st = item.get("status") or {}
            print(f"  {item['metadata']['name']} ({st.get('state')}, attempt {st.get('attempt')}):")
            for line in (st.get("log") or [])[-4:]:
                print(f"      {line}")
        show_flink_and_dag()
        for item in json.loads(kubectl("get", "sparksession", "-n", REAL_NS, "-o", "json"))["items"]:
            if (item.get("status") or {}).get("state") in ("idle", "busy"):
                ask_the_session(item["metadata"]["name"])
    events = kubectl("get", "events", "-n", namespaces[0], "--sort-by=.lastTimestamp")
    print("\nRecent events:\n" + "\n".join(events.splitlines()[-12:]))
    print(f"\nThe cluster and both operators keep running (`make cluster-down` stops all). Look further:\n"
          f"  export KUBECONFIG={cluster.kubeconfig_path()}\n"
          f"  kubectl get sb,ss -n {REAL_NS}                 # the real jobs and the session\n"
          f"  kubectl logs -n {REAL_NS} spark-pi-driver-1     # a real driver's whole log\n"
          f"  kubectl logs -n {SYSTEM_NS} deploy/{RELEASE} # the operator\n"
          f"  kubectl get lakejob -o wide                     # the simulated examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
