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
Both halves' DagJobs name the chart's PriorityClasses: the release makes them (and keeps them on a
second run), or they are made from the chart when another owner's are missing or there is no release.
Everything is left running (`make cluster-down` stops it all); the lines before the end say how to
look further, the last one or few are the verdict, computed once from the last look at the examples:
OK, or FAILED naming each example that did not settle (exit status 1).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
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
import progress  # noqa: E402  (hack/progress.py: step lines and a heartbeat)
import render_deploy  # noqa: E402  (hack/render_deploy.py: the chart's PriorityClasses)

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
STEPS = 5 if cluster.REAL_NODE else 2  # the demo's [i/n]: CRDs, (the store's two jars, helm), the examples
SETTLE_S = 600  # how long the examples get to settle before the demo says it failed
# The chart's PriorityClasses: the DagJob examples' Priority maps to them (LAKEJOB_DAG_PRIORITY_CLASSES,
# by default the same names), and a task pod naming a class that does not exist is never created.
HELM_OWNER = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")


def step(text: str) -> None:
    print(f"demo [{time.monotonic() - T0:5.0f}s] {text}", flush=True)


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run([KUBECTL, *args], check=True, capture_output=True, text=True, input=stdin,
                          env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())}).stdout


def wait_established(*crds: str, timeout: float = 60) -> None:
    """`kubectl wait --for=condition=Established` fails at once ("accessor error: <nil>") on a CRD the
    apiserver has not yet given conditions; until the deadline that is retried, not reported."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kubectl("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", "crd", *crds)
            return
        except subprocess.CalledProcessError as e:
            if "accessor error" not in (e.stderr or "") or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


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
    with progress.step("demo", f"package store {endpoint}: compiling SparkPi, uploading what "
                               "examples/sparkbatch-dli.yaml names", (2, STEPS)):
        for name, content in store.dli_batch_packages(spec, store.spark_examples_jar()):
            s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=content)
            print(f"  s3://{BUCKET}/{PREFIX}{name} ({len(content)} bytes)")
    with progress.step("demo", f"package store: compiling the Flink job of examples/real/flinkjarjob.yaml as "
                               f"{FLINK_PACKAGE}", (3, STEPS)):
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
    """What a notebook user does: port-forward to the session driver's Connect port, run a query."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())}
    driver = subprocess.run([KUBECTL, "get", "sparksession", name, "-n", REAL_NS, "-o",
                             "jsonpath={.status.driverPod}"], capture_output=True, text=True, env=env).stdout.strip()
    forward = subprocess.Popen([KUBECTL, "port-forward", "-n", REAL_NS, f"pod/{driver}", "15002:15002"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
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
    own = owns_priority_classes(RELEASE, SYSTEM_NS, priority_classes())
    values = incluster.values([REAL_NS], priority_classes=own, retries={"backoffSeconds": 3}, stores=stores)
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": REAL_NS}}))
    kubectl("apply", "-n", REAL_NS, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": STORE_SECRET}, "type": "Opaque",
        "stringData": {"S3_ACCESS_KEY_ID": DEMO_KEY_ID, "S3_ACCESS_KEY_SECRET": DEMO_KEY_SECRET,
                       "OSS_ACCESS_KEY_ID": DEMO_KEY_ID, "OSS_ACCESS_KEY_SECRET": DEMO_KEY_SECRET}}))
    with progress.step("demo", f"helm upgrade --install {RELEASE} charts/lakejob -n {SYSTEM_NS} (image "
                               f"{values['image']['repository']}:{values['image']['tag']}"
                               f"{', with its PriorityClasses' if own else ''}), waiting for the operator", (4, STEPS)):
        incluster.install(str(cluster.kubeconfig_path()), RELEASE, SYSTEM_NS, values)


def priority_classes() -> dict[str, dict[str, str]]:
    """name → annotations of each of the chart's PriorityClasses that exists."""
    import yaml

    names = {c["name"] for c in yaml.safe_load((ROOT / "charts" / "lakejob" / "values.yaml").read_text())
             ["dag"]["priorityClasses"]["classes"]}
    return {i["metadata"]["name"]: i["metadata"].get("annotations") or {}
            for i in json.loads(kubectl("get", "priorityclass", "-o", "json"))["items"] if i["metadata"]["name"] in names}


def owns_priority_classes(release: str, namespace: str, existing: dict[str, dict[str, str]]) -> bool:
    """Whether the release makes the chart's PriorityClasses: when none exists, and when those that
    exist are its own from an earlier run — an upgrade that stops listing them deletes them, which
    left a second `make demo` with none. Another owner's (an e2e run's, another release's) are used."""
    return all(tuple(annotations.get(k) for k in HELM_OWNER) == (release, namespace)
               for annotations in existing.values())


def create_missing_priority_classes() -> None:
    """The chart's PriorityClasses that do not exist, from the chart itself, owned by no release (as
    the e2e tests make them): the operator on this host has no release to make them, and a class
    another release made goes when that release is uninstalled."""
    have = priority_classes()
    missing = [doc for doc in render_deploy.priority_classes() if doc["metadata"]["name"] not in have]
    if missing:
        kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": missing}))
        step("created the PriorityClasses " + ", ".join(d["metadata"]["name"] for d in missing))


def settled(item: dict[str, Any]) -> bool:
    """A real example has shown what it does: a batch job or a DAG has ended, the Flink job runs
    (it never ends by itself), the session is up (it waits for queries)."""
    st = item.get("status") or {}
    return {"SparkBatch": st.get("state") in ("success", "dead", "killed"),
            "DagJob": st.get("State") in ("Finished", "Failed", "Stopped"),
            "FlinkJarJob": st.get("status_name") not in (None, "job_init", "job_submitting"),
            }.get(item["kind"], True)


def runs_on_kwok(item: dict[str, Any]) -> bool:
    """A simulated batch has shown all KWOK can show once it runs: a fake driver pod without a
    sim.lakejob.io/outcome label (the vendors' examples are applied unchanged) runs no code and
    never ends, so the batch stays `running` (Progressing to Argo CD) until it is deleted."""
    return item["kind"] == "SparkBatch" and (item.get("status") or {}).get("state") == "running"


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


@dataclass(frozen=True)
class Example:
    """One applied example at the last look: where it runs, its state and why, and whether it settled."""

    namespace: str
    kind: str
    name: str
    state: str
    reason: str
    message: str
    settled: bool


def example(item: dict[str, Any]) -> Example:
    """An example as the verdict sees it: settled when Argo CD would not call it Progressing and, in
    the real namespace, when it has shown what it does (settled()); a simulated batch also when it
    runs (runs_on_kwok())."""
    k = ARGOCD_KINDS[str(item["kind"])]
    st = item.get("status") or {}
    # A DagJob that waits on a task says why on the task (a pod that cannot be created, say).
    tasks = [f"task {t}: {ts['Message']}" for t, ts in sorted((st.get("Tasks") or {}).items()) if ts.get("Message")]
    namespace = item["metadata"]["namespace"]
    why = " ".join(str(st.get(k.detail) or "; ".join(tasks)).split())[:300]  # one line of the verdict
    return Example(namespace, str(item["kind"]), item["metadata"]["name"], str(st.get(k.field) or "(no status yet)"),
                   str(st.get("reason") or ""), why,
                   health(item) != "Progressing" and (namespace != REAL_NS or settled(item))
                   or namespace != REAL_NS and runs_on_kwok(item))


def verdict(examples: Iterable[Example], waited_s: float) -> tuple[list[str], int]:
    """The demo's last lines and its exit code, from the examples at the last look: 0 when every one
    settled, 1 (naming each that did not, with its state and why) when one did not or none was seen."""
    examples = list(examples)
    unsettled = [e for e in examples if not e.settled]
    if not examples:
        return [f"demo: FAILED: no example was found after {waited_s:.0f} s (`kubectl get lakejob -A`)"], 1
    if not unsettled:
        return [f"demo: OK: all {len(examples)} examples settled in {waited_s:.0f} s"], 0
    lines = [f"demo: FAILED: {len(unsettled)} of {len(examples)} examples did not settle in {waited_s:.0f} s:"]
    for e in unsettled:
        why = " ".join(x for x in (f"({e.reason})" if e.reason else "", e.message) if x)
        lines.append(f"  {e.kind} {e.namespace}/{e.name}: {e.state}" + (f" {why}" if why else ""))
    lines.append("  (`kubectl describe lakejob -A` and `kubectl get events -A` say more)")
    return lines, 1


def show(namespaces: list[str]) -> None:
    for ns in namespaces:
        what = "REAL, on node lakejob-real" if ns == REAL_NS else "SIMULATED, on KWOK nodes"
        print(f"{time.strftime('%H:%M:%S')} ({time.monotonic() - T0:.0f}s) kubectl get lakejob -n {ns}   # {what}")
        print(kubectl("get", "lakejob", "-n", ns), end="")
        print(kubectl("get", "pods", "-n", ns, "-o", "wide"), end="" if ns == REAL_NS else "\n")


def watch(namespaces: list[str]) -> list[Example]:
    """Watch the examples until every one settled three looks in a row, or SETTLE_S passed; the last look.
    On a terminal the tables are redrawn every look; in a log they are printed when a state changes."""
    tty = sys.stdout.isatty()
    deadline = time.monotonic() + SETTLE_S
    calm, shown = 0, None
    with progress.step("demo", f"waiting for the examples to settle (at most {SETTLE_S} s)", (STEPS, STEPS)):
        while True:
            examples = [example(i) for ns in namespaces
                        for i in json.loads(kubectl("get", "lakejob", "-n", ns, "-o", "json"))["items"]]
            looked = [(e.namespace, e.kind, e.name, e.state, e.settled) for e in examples]
            if tty or looked != shown:
                print("\033[2J\033[H" if tty else "", end="")
                show(namespaces)
                shown = looked
            calm = calm + 1 if examples and all(e.settled for e in examples) else 0
            if calm >= 3 or time.monotonic() > deadline:
                return examples
            time.sleep(3)


def main() -> int:
    if not cluster.running():
        print("demo: no local cluster runs; `make demo` starts one (or run `make cluster`)", file=sys.stderr)
        return 1
    real = cluster.REAL_NODE
    with progress.step("demo", "installing the CRDs", (1, STEPS)):
        kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
        wait_established("-l", "app.kubernetes.io/part-of=lakejob")
    step("CRDs installed: " + ", ".join(kubectl("get", "crd", "-o", "name").split()))
    if real:
        try:
            install_real_operator(start_store())
        except (incluster.InstallError, RuntimeError) as e:
            print(f"demo: FAILED: {e}", file=sys.stderr)
            return 1
        step(f"operator running in-cluster; applying examples/real/ and the DLI example body to namespace "
             f"{REAL_NS} (real pods)")
        print(kubectl("apply", "-n", REAL_NS, "-f", str(ROOT / "examples" / "real")), end="")
        print(kubectl("apply", "-n", REAL_NS, "-f", str(ROOT / "examples" / "sparkbatch-dli.yaml")), end="")
    else:
        step("LAKEJOB_REAL_NODE=0: no real node, only the simulated examples run")
    # The operator on this host maps the simulated DagJob's Priority to the same classes.
    create_missing_priority_classes()
    start_operator()
    step("applying examples/ to namespace default (SIMULATED: KWOK pods run no code)")
    print(kubectl("apply", "-n", "default", "-f", str(ROOT / "examples")), end="")
    namespaces = ([REAL_NS] if real else []) + ["default"]
    t0 = time.monotonic()
    examples = watch(namespaces)
    lines, code = verdict(examples, time.monotonic() - t0)
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
                with progress.step("demo", f"asking session {item['metadata']['name']} a query"):
                    ask_the_session(item["metadata"]["name"])
    events = kubectl("get", "events", "-n", namespaces[0], "--sort-by=.lastTimestamp")
    print("\nRecent events:\n" + "\n".join(events.splitlines()[-12:]))
    print(f"\nThe cluster and both operators keep running (`make cluster-down` stops all). Look further:\n"
          f"  export KUBECONFIG={cluster.kubeconfig_path()}\n"
          f"  kubectl get sb,ss -n {REAL_NS}                 # the real jobs and the session\n"
          f"  kubectl logs -n {REAL_NS} spark-pi-driver-1     # a real driver's whole log\n"
          f"  kubectl logs -n {SYSTEM_NS} deploy/{RELEASE} # the operator\n"
          f"  kubectl get lakejob -o wide                     # the simulated examples\n")
    # The verdict last, computed once from the last look: what the lines above show cannot contradict it.
    print("\n".join(lines), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
