"""Helpers of the fault tests (test_faults.py): a control plane of their own, a cuttable link
between the operator and the apiserver, the bursts of each kind, and the apiserver's audit log as
the record of every child the operator created.

Nothing here touches the session's cluster: a `FaultCluster` is a KWOK-only control plane with its
own run directory and ports (hack/cluster/cluster.py with LAKEJOB_RUN_DIR, LAKEJOB_PORT_BASE,
LAKEJOB_REAL_NODE=0), stopped when its test module ends.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.kubectl import Kubectl, Operator

import render_deploy  # noqa: E402,I001  (hack/render_deploy.py, on the path tests.e2e.kubectl sets: the chart rendered)

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "hack" / "cluster" / "cluster.py"

# The apiserver records every create of what the operator makes (and of the CRs), whoever made it,
# and every write to a CR (the operator's status patches): the truth about duplicates and refused
# writes, across operator restarts, apiserver restarts and cut watches alike.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create"]
  resources:
  - {group: "", resources: ["pods", "services", "configmaps", "serviceaccounts", "secrets"]}
  - {group: "batch", resources: ["jobs"]}
  - {group: "apps", resources: ["replicasets"]}
  - {group: "rbac.authorization.k8s.io", resources: ["roles", "rolebindings"]}
  - {group: "lakejob.io"}
- level: Metadata
  verbs: ["patch", "update"]
  resources: [{group: "lakejob.io"}]
- level: None
"""


class FaultCluster:
    """A KWOK-only control plane of the fault tests' own, with the apiserver's audit log on."""

    def __init__(self, run_dir: Path, port_base: int, env: dict[str, str] | None = None):
        self.run_dir, self.port_base = run_dir, port_base
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        policy = run_dir.parent / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.env = {**os.environ, "LAKEJOB_RUN_DIR": str(run_dir), "LAKEJOB_PORT_BASE": str(port_base),
                    "LAKEJOB_REAL_NODE": "0", "LAKEJOB_AUDIT_POLICY": str(policy), **(env or {})}
        self.kubeconfig = ""

    def cluster(self, *args: str, timeout: float = 300) -> str:
        r = subprocess.run([sys.executable, str(CLUSTER), *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode:
            raise AssertionError(f"cluster.py {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def up(self) -> Kubectl:
        for attempt in range(3):  # a binary may still be being built by a concurrent `make tools`
            try:
                self.kubeconfig = self.cluster("up", "--profile", "large").strip()
                break
            except AssertionError as e:
                if attempt == 2 or "missing binaries" not in str(e):
                    raise
                time.sleep(60)
        kubectl = Kubectl(self.kubeconfig)
        kubectl.run("apply", "--server-side", "-k", str(ROOT / "crds"))
        kubectl.wait_established("-l", "app.kubernetes.io/part-of=lakejob")
        # DagJob pods name the chart's PriorityClasses
        kubectl.apply({"apiVersion": "v1", "kind": "List", "items": render_deploy.priority_classes()})
        return kubectl

    def down(self) -> None:
        """Stop it; its components' logs are kept beside the run directory (which `down` removes)."""
        kept = self.run_dir.parent / "logs"
        kept.mkdir(exist_ok=True)
        for log in (self.run_dir / "logs").glob("*.log"):
            if log.name != "audit.log":
                shutil.copy(log, kept / log.name)
        self.cluster("down")

    def stop(self, *components: str) -> None:
        self.cluster("stop", *components)

    def start(self, *components: str) -> None:
        self.cluster("start", *components)

    @property
    def apiserver(self) -> tuple[str, int]:
        return "127.0.0.1", self.port_base + 3

    def audit(self) -> list[dict[str, Any]]:
        path = self.run_dir / "logs" / "audit.log"
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by the apiserver's stop
        return out

    def started(self, namespace: str, resource: str) -> Callable[[], set[str]]:
        """A function returning the CRs (by name) whose first `resource` the operator has created
        so far, following the audit log as it grows (light enough to poll during a burst)."""
        path, offset, names = self.run_dir / "logs" / "audit.log", 0, set()

        def poll() -> set[str]:
            nonlocal offset
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for e in operator_creates([json.loads(line) for line in complete.splitlines() if line.strip()],
                                      namespace):
                if e["objectRef"]["resource"] == resource:
                    names.add("-".join(e["objectRef"]["name"].split("-")[:2]))
            return names

        return poll


class Link:
    """The operator's TCP link to the apiserver, through this process: `cut()` closes every
    connection and refuses new ones (a network partition), `restore()` lets them through again.
    TLS passes through untouched (the apiserver's certificate names 127.0.0.1)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def kubeconfig(self, original: str, path: Path) -> str:
        config = json.loads(Path(original).read_text())  # cluster.py writes it as JSON
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(json.dumps(config))
        return str(path)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.open:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # the apiserver is down: the operator sees the connection drop
                continue
            server.settimeout(None)
            with self.lock:
                self.conns.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with self.lock:
                self.conns.discard(s)
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self) -> None:
        self.open = False
        self.cuts += 1
        with self.lock:
            conns, self.conns = list(self.conns), set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


# kopf says when a watch got 410 Gone and starts over with a new LIST, at DEBUG on this logger;
# the operator runs with it on, so a test can prove that the re-list it claims really happened.
BOOT = """\
import logging, sys
logging.getLogger("kopf._cogs.clients.watching").setLevel(logging.DEBUG)
from lakejob.cli import main
sys.exit(main(sys.argv[1:]))
"""
RELISTED = re.compile(r"Restarting the watch-stream for (\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultOperator(Operator):
    """`lakejob run` (the CLI's own entry point) with kopf's watch log on and its metrics served."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path, env: dict[str, str] | None = None):
        self.metrics_port = free_port()
        super().__init__(kubeconfig, ["--namespace", namespace], log,
                         env={"LAKEJOB_METRICS_PORT": str(self.metrics_port),
                              # KWOK's pods have no REST API: refused at once, not a DNS lookup each.
                              "LAKEJOB_SPARK_REST_URL_TEMPLATE": "http://127.0.0.1:9/{name}",
                              "LAKEJOB_FLINK_REST_URL_TEMPLATE": "http://127.0.0.1:9/{name}",
                              # Every DagJob of a burst runs at once: BatchCompute's MaxRunning queue
                              # (100 by default; its own tests cover it) would make the burst a queue.
                              "LAKEJOB_DAG_MAX_RUNNING": "1000",
                              **(env or {})})

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BOOT, "run", *self.args], env=self.env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the operator is not running"
        os.killpg(self.proc.pid, sig)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def relisted(self) -> set[str]:
        return set(RELISTED.findall(self.text()))

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
                out[(m.group(1), labels)] = float(m.group(3))
        return out


# ------------------------------------------------------------------------------------ the kinds


def _sim(outcome: str, delay: str) -> dict[str, Any]:
    return {"labels": {"sim.lakejob.io/outcome": outcome}, "annotations": {"sim.lakejob.io/delay": delay}}


@dataclass(frozen=True)
class Kind:
    """One lakejob kind as the fault tests drive it: a manifest whose simulated pods succeed after
    a delay, where its state lives, the state it must end in, and its children by name."""

    name: str
    plural: str
    prefix: str
    state_field: str
    done: str
    terminal: frozenset[str]
    # the children that show a CR was started (what "half have a driver" counts): resource, selector
    started: tuple[str, str]
    body: Callable[[str], dict[str, Any]]
    # The children the operator creates once per CR and attempt, from the CR's final status:
    # (audit resource, name). Anything else it created of these resources is a duplicate.
    expected: Callable[[str, dict[str, Any]], set[tuple[str, str]]]
    # status fields that count attempts: more than 1 means the job was started again
    attempts: Callable[[dict[str, Any]], int]

    def manifest(self, name: str, seconds: int | None) -> dict[str, Any]:
        """A CR whose work takes about `seconds` (a DagJob's two tasks half of it each); None: a
        SparkBatch whose driver runs until it is stopped (or deleted)."""
        if seconds is None:
            assert self.name == "SparkBatch"
            spec = self.body("0s")
            del spec["driver"]
        else:
            spec = self.body(f"{max(1, seconds // 2) if self.name == 'DagJob' else seconds}s")
        return {"apiVersion": "lakejob.io/v1alpha1", "kind": self.name, "metadata": {"name": name}, "spec": spec}


def _dag_body(delay: str) -> dict[str, Any]:
    def task(outputs: bool = False) -> dict[str, Any]:
        return {"InstanceCount": 1, "MaxRetryCount": 0, "Timeout": 600,
                "Parameters": {"Command": {"CommandLine": "python worker.py", "PackagePath": ""},
                               "StdoutRedirectPath": "oss://bucket/logs/", "StderrRedirectPath": "oss://bucket/logs/"},
                "pod": {"annotations": {"sim.lakejob.io/delay": delay}}}
    return {"Name": "fault", "Priority": 100, "Type": "DAG", "JobFailOnInstanceFail": True,
            "DAG": {"Tasks": {"first": task(), "second": task()}, "Dependencies": {"first": ["second"]}}}


KINDS = {
    "SparkBatch": Kind(
        "SparkBatch", "sparkbatches", "sb", "state", "success", frozenset({"success", "dead", "killed"}),
        ("pods", "lakejob.io/kind=SparkBatch,lakejob.io/role=driver"),
        lambda delay: {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
                       "className": "org.apache.spark.examples.SparkPi", "driver": _sim("succeed", delay)},
        lambda name, st: {("pods", st["driverPod"])},
        lambda st: int(st.get("attempt") or 0)),
    "SparkSession": Kind(
        "SparkSession", "sparksessions", "ss", "state", "success", frozenset({"success", "dead", "error"}),
        ("pods", "lakejob.io/kind=SparkSession"),
        # The Spark Connect server exits 0 after `delay`: the session ends `success` (DriverExited).
        lambda delay: {"kind": "spark", "cluster_name": "c1", "heartbeatTimeoutInSecond": 0,
                       "driver": _sim("succeed", delay)},
        lambda name, st: {("pods", st["driverPod"])},
        lambda st: int(st.get("attempt") or 0)),
    "FlinkJarJob": Kind(
        "FlinkJarJob", "flinkjarjobs", "fj", "status_name", "job_finish",
        frozenset({"job_finish", "job_cancel_success", "job_submit_fail"}),
        ("pods", "lakejob.io/kind=FlinkJarJob,lakejob.io/role=jobmanager"),
        lambda delay: {"name": "fault", "main_class": "com.example.Main",
                       "entrypoint": "local:///opt/flink/usrlib/job.jar", "jobManager": _sim("succeed", delay)},
        lambda name, st: {("pods", st["jobManagerPod"]), ("replicasets", f"{name}-taskmanager")},
        lambda st: int(st.get("attempt") or 0)),
    "DagJob": Kind(
        "DagJob", "dagjobs", "dag", "State", "Finished", frozenset({"Finished", "Failed"}),
        ("jobs", "lakejob.io/kind=DagJob"),
        _dag_body,
        lambda name, st: {("jobs", t["Child"]) for t in (st.get("Tasks") or {}).values() if t.get("Child")},
        lambda st: max([1] + [int(t.get("Run") or 1) for t in (st.get("Tasks") or {}).values()])),
}
# What the operator creates of each resource: only these count as children (pods of Jobs and
# ReplicaSets are the controllers' own).
CHILD_RESOURCES = {"pods", "jobs", "replicasets", "services", "configmaps", "serviceaccounts", "secrets", "roles",
                   "rolebindings"}
PRIMARY = {"pods", "jobs", "replicasets"}  # where an extra object means work started twice


def create_many(kubectl: Kubectl, namespace: str, manifests: list[dict[str, Any]], chunk: int = 125) -> None:
    """A few `kubectl create` of a List each (one POST per object, no GET before)."""
    for i in range(0, len(manifests), chunk):
        doc = {"apiVersion": "v1", "kind": "List", "items": manifests[i:i + chunk]}
        kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(doc))


class Burst:
    """The CRs of a burst created at once, 50 requests in flight (as bench/burst.py does), in a
    thread of its own: the test watches the operator meanwhile and kills it mid-burst."""

    def __init__(self, kubeconfig: str, namespace: str, manifests: list[dict[str, Any]]):
        self.kubeconfig, self.namespace, self.manifests = kubeconfig, namespace, manifests
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            asyncio.run(self._create())
        except BaseException as e:  # noqa: BLE001 - handed to the test by join()
            self.error = e
        self.seconds = time.monotonic() - started

    async def _create(self) -> None:
        from lakejob.kube import Kube, register_kind

        for kind in KINDS.values():
            register_kind("lakejob.io/v1alpha1", kind.name, kind.plural)
        before = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = self.kubeconfig  # what Kube.connect reads (every other helper has its own env)
        try:
            kube = await Kube.connect()
        finally:
            if before is None:
                del os.environ["KUBECONFIG"]
            else:
                os.environ["KUBECONFIG"] = before
        slots = asyncio.Semaphore(50)

        async def one(obj: dict[str, Any]) -> None:
            async with slots:
                await kube.create({**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}})

        try:
            await asyncio.gather(*(one(o) for o in self.manifests))
        finally:
            await kube.close()

    def join(self) -> None:
        self.thread.join(timeout=600)
        if self.error is not None:
            raise AssertionError(f"the burst failed: {self.error!r}") from self.error


def states(kubectl: Kubectl, kind: Kind, namespace: str) -> dict[str, dict[str, Any]]:
    """name → status of every CR of `kind` in the namespace."""
    out = json.loads(kubectl.run("get", kind.plural, "-n", namespace, "-o", "json", "--chunk-size=0"))
    return {o["metadata"]["name"]: o.get("status") or {} for o in out["items"]}


def begun(kubectl: Kubectl, kind: Kind, namespace: str) -> set[str]:
    """The CRs of `kind` that have started: with their first child (by its lakejob.io/name), or
    ended already (a SparkSession's pods are deleted when it ends)."""
    resource, selector = kind.started
    out = kubectl.run("get", resource, "-n", namespace, "-l", selector, "--chunk-size=0",
                      "-o", r"jsonpath={.items[*].metadata.labels.lakejob\.io/name}")
    ended = {n for n, st in states(kubectl, kind, namespace).items() if st.get(kind.state_field) in kind.terminal}
    return ended | set(out.split())


def wait_terminal(kubectl: Kubectl, namespace: str, kinds: Iterable[Kind], names: dict[str, set[str]],
                  timeout: float) -> dict[str, dict[str, dict[str, Any]]]:
    """Until every named CR is in a terminal state; returns kind → name → status. On timeout, the
    failure lists the CRs still not terminal and their states."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {k.name: states(kubectl, k, namespace) for k in kinds}
        pending = {f"{k.name}/{n}": seen[k.name].get(n, {}).get(k.state_field)
                   for k in kinds for n in names[k.name]
                   if seen[k.name].get(n, {}).get(k.state_field) not in k.terminal}
        if not pending:
            return seen
        if time.monotonic() > deadline:
            sample = dict(list(pending.items())[:20])
            first = next(iter(pending)).split("/")[1]
            pods = kubectl.result("get", "pods", "-n", namespace, "-l", f"lakejob.io/name={first}", "-o", "wide").stdout
            raise AssertionError(f"{len(pending)} CRs not terminal after {timeout:.0f}s, e.g. {sample}; "
                                 f"{first}'s pods:\n{pods}\nevents:\n{kubectl.events(namespace)[-1500:]}")
        time.sleep(2)


@dataclass
class Children:
    """What the audit log says the operator created in one namespace, against what each CR needed."""

    lost: list[str] = field(default_factory=list)  # CRs that never got their children / never ended
    duplicated: list[str] = field(default_factory=list)  # objects created more than once, or extra work
    stale: list[str] = field(default_factory=list)  # children created for a CR after it was deleted


def operator_creates(audit: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Creates of children in `namespace` by the operator (its HTTP client is aiohttp; kubectl, the
    controllers and KWOK name themselves) that made the object: 2xx, or 5xx, which an overloaded
    apiserver answers (504) for a create it may well have stored."""
    return [e for e in audit if e.get("verb") == "create" and e.get("stage") == "ResponseComplete"
            and (e.get("objectRef") or {}).get("namespace") == namespace
            and (e.get("objectRef") or {}).get("resource") in CHILD_RESOURCES
            and not 300 <= (e.get("responseStatus") or {}).get("code", 0) < 500
            and "aiohttp" in e.get("userAgent", "")]


def _made(event: dict[str, Any]) -> bool:
    return 200 <= int((event.get("responseStatus") or {}).get("code", 0)) < 300


def check_children(audit: list[dict[str, Any]], namespace: str, kind: Kind,
                   final: dict[str, dict[str, Any]], deleted: dict[str, float] | None = None) -> Children:
    """Per CR of `kind` (named `<prefix>-NNNN`): every expected child created exactly once, nothing
    created twice, no attempt beyond the first; `deleted` (name → when) CRs: nothing created for
    them after their deletion."""
    result = Children()
    creates = [e for e in operator_creates(audit, namespace)
               if e["objectRef"]["name"].startswith(kind.prefix + "-")]
    by_cr: dict[str, Counter[tuple[str, str]]] = {}  # CR → child → creates answered 2xx
    tried: set[tuple[str, str]] = set()  # children whose create may have made them (2xx or 5xx)
    for e in creates:
        ref = e["objectRef"]
        cr = "-".join(ref["name"].split("-")[:2])  # <prefix>-NNNN-...: the CR's name
        by_cr.setdefault(cr, Counter())[(ref["resource"], ref["name"])] += _made(e)
        tried.add((ref["resource"], ref["name"]))
        when = deleted.get(cr) if deleted else None
        if when is not None and _ts(e["requestReceivedTimestamp"]) > when:
            result.stale.append(f"{ref['resource']}/{ref['name']}")
    for name, status in final.items():
        made = by_cr.get(name, Counter())
        want = kind.expected(name, status)
        for child in sorted(want):
            if child[0] == "replicasets":
                continue  # a Flink job may finish before its TaskManagers were needed
            if child not in tried:
                result.lost.append(f"{name}: {child[0]}/{child[1]} never created")
        for child, n in sorted(made.items()):
            if n > 1:
                result.duplicated.append(f"{child[0]}/{child[1]} created {n} times")
            elif child[0] in PRIMARY and child not in want:
                result.duplicated.append(f"{child[0]}/{child[1]} created beyond what {name} needed")
        if kind.attempts(status) > 1:
            result.duplicated.append(f"{name}: attempt {kind.attempts(status)}")
    return result


def _ts(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------------ figures

BEGIN = "<!-- faults:begin -->"
END = "<!-- faults:end -->"
HEADER = "| fault | kind | CRs | recovery | lost | duplicated | how it was measured |\n|---|---|---|---|---|---|---|\n"


def write_figures(doc: Path, rows: list[dict[str, Any]], machine: str) -> None:
    """Replace the rows of these faults in docs/reliability.md's table (between the markers),
    keeping the others; the file is re-read right before it is written (others edit it too)."""
    if not rows:
        return
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        return
    head, rest = text.split(BEGIN, 1)
    table, tail = rest.split(END, 1)
    lines = [line for line in table.strip().splitlines() if line.startswith("| ") and not line.startswith("| fault ")]
    keyed = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in lines}
    for r in rows:
        keyed[(r["fault"], r["kind"])] = (f"| {r['fault']} | {r['kind']} | {r['crs']} | {r['recovery_s']:.0f} s | "
                                          f"{r['lost']} | {r['duplicated']} | {r['note']} |")
    body = "\n".join(keyed.values())
    stamp = f"Last run: {time.strftime('%Y-%m-%d')}, {machine}.\n\n"
    doc.write_text(f"{head}{BEGIN}\n{stamp}{HEADER}{body}\n{END}{tail}")
