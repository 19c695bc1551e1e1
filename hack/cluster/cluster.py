#!/usr/bin/env python3
"""Start, inspect and stop lakejob's local Kubernetes control plane on loopback.

Called by the Makefile (`make cluster`, `make kubeconfig`, `make cluster-down`)
and by the e2e fixtures in tests/e2e/conftest.py. Standard library only, so it
runs before the project's virtualenv exists.

The control plane is real: etcd, kube-apiserver (TLS, client-certificate admin
in system:masters, service-account keys, Node,RBAC authorization),
kube-controller-manager, kube-scheduler, and the KWOK controller simulating
nodes and pod lifecycles (stages.yaml beside this file). Beside the KWOK nodes
runs one real node (hack/node/node.py: containerd, runc, a CNI bridge, kubelet,
kube-proxy, CoreDNS) where pods really execute; LAKEJOB_REAL_NODE=0 leaves it out.
The binaries are built from Go modules by hack/build-tools.sh into the cache and
the images by images/build.py; this script only runs and loads them.

Every process is started in its own session, its PID written to the run
directory with its start time; `down` stops exactly those processes (a PID whose
start time differs was recycled and is never hit). `stop` and `start` take named
control-plane components down and up again on the same run directory and etcd
data, each from the one command line `command()` gives it (the fault tests stop
the apiserver and etcd mid-run).

For the fault tests (tests/e2e/test_faults.py), the apiserver also reads:
LAKEJOB_ETCD_COMPACTION_INTERVAL (its --etcd-compaction-interval, e.g. 5s; the
default is its own, 5m), LAKEJOB_WATCH_CACHE=0 (watches served from etcd, so one
resuming from a compacted revision gets 410 Gone) and LAKEJOB_AUDIT_POLICY (a
policy file; the audit log goes to logs/audit.log). `start` must see the same.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "node"))
import node as realnode  # noqa: E402  (hack/node/node.py, standard library only)
sys.path.insert(0, str(HERE.parent))
import progress  # noqa: E402  (hack/progress.py: step lines and a heartbeat, standard library only)
CACHE = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob"))
BIN = CACHE / "bin"
RUN = Path(os.environ.get("LAKEJOB_RUN_DIR", CACHE / "run"))
PORT_BASE = int(os.environ.get("LAKEJOB_PORT_BASE", "16440"))
PORTS = {
    "etcd": PORT_BASE + 1,
    "etcd-peer": PORT_BASE + 2,
    "apiserver": PORT_BASE + 3,
    "controller-manager": PORT_BASE + 4,
    "scheduler": PORT_BASE + 5,
    "kwok": PORT_BASE + 6,
}
# PORT_BASE + 7, 8, 10, 11, 12: the real node's kubelet, kube-proxy and CoreDNS (hack/node/node.py).
# PORT_BASE + 9: the demo's stand-in Spark REST server (hack/demo.py).
REAL_NODE = os.environ.get("LAKEJOB_REAL_NODE", "1") != "0"
# With the real node the apiserver listens on the node's bridge address, which is this machine's
# own: pods reach it there through the `kubernetes` Service, the host as before.
API_HOST = realnode.GATEWAY if REAL_NODE else "127.0.0.1"
NODE = realnode.Node(RUN, CACHE, BIN, PORT_BASE)
# Node profiles: the default fits many jobs; "small" makes unschedulable pods easy to provoke;
# "large" holds the fault tests' bursts (500 jobs of default size at once) without queueing.
PROFILES = {
    "default": {"nodes": 4, "cpu": "32", "memory": "128Gi", "pods": "110"},
    "small": {"nodes": 2, "cpu": "4", "memory": "16Gi", "pods": "110"},
    "large": {"nodes": 40, "cpu": "64", "memory": "512Gi", "pods": "110"},
}
COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
# Started later by `make demo` (hack/demo.py) and stopped first by `down`.
EXTRAS = ["operator", "spark-rest"]


class ClusterError(Exception):
    """A problem the user can act on; printed as one line, never as a traceback."""


def kubeconfig_path() -> Path:
    return RUN / "kubeconfig"


# --------------------------------------------------------------------------- processes


def _pidfile(name: str) -> Path:
    return RUN / "pids" / f"{name}.pid"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a live (non-zombie) `pid`, or None.

    Why not the command line: right after fork+exec returns, /proc/PID/cmdline is
    still empty for a moment (the new image's argument pages are not published
    yet), and a start-up check that read it took a healthy apiserver for dead.
    The start time is fixed at fork, so PID plus start time names one process,
    and a recycled PID never matches."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return None if fields[0] in ("Z", "X") else fields[19]


def _pids() -> dict[str, tuple[int, str]]:
    """Recorded processes: name -> (pid, start time)."""
    found = {}
    for name in COMPONENTS + EXTRAS + realnode.DAEMONS:
        try:
            pid, started = _pidfile(name).read_text().split()
            found[name] = (int(pid), started)
        except (OSError, ValueError):
            continue
    return found


def _ours(recorded: tuple[int, str]) -> bool:
    """True while the recorded process still runs (same PID, same start time)."""
    return _start_time(recorded[0]) == recorded[1]


def alive(name: str) -> int | None:
    """The PID of the recorded process `name` if it still runs, else None."""
    recorded = _pids().get(name)
    return recorded[0] if recorded and _ours(recorded) else None


def _stop_all(quiet: bool = False, only: list[str] | None = None) -> None:
    """Stop every process recorded in the run directory (reverse start order), by PID."""
    pids = _pids()
    for name in only if only is not None else EXTRAS + list(reversed(COMPONENTS)):
        recorded = pids.get(name)
        if recorded is None or not _ours(recorded):
            continue
        try:
            os.kill(recorded[0], signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while _ours(recorded) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _ours(recorded):
            os.kill(recorded[0], signal.SIGKILL)
        if not quiet:
            print(f"cluster: stopped {name} (pid {recorded[0]})")


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None,
          preexec: Callable[[], None] | None = None) -> int:
    """Start `cmd` in its own session, logging to logs/NAME.log, and record it; return its PID.

    Its own session so it survives the make/pytest process that started it; `preexec` runs in the
    child before exec (the real node's daemons join its cgroup there)."""
    log = open(RUN / "logs" / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=RUN, preexec_fn=preexec)
    started = _start_time(proc.pid)
    if started is None:
        raise ClusterError(f"{name} exited at once; see {RUN}/logs/{name}.log")
    _pidfile(name).write_text(f"{proc.pid} {started}")
    return proc.pid


def _start(name: str) -> None:
    """Start control-plane component `name` from its one command line, then wait until it serves
    (etcd, kube-apiserver: the components after them need it)."""
    args = command(name)
    spawn(name, [str(BIN / args[0]), *args[1:]])
    ready = READY.get(name)
    if ready is not None:
        _wait(ready[0], ready[1], 120, name)


def _check_alive(name: str) -> None:
    if alive(name) is None:
        log = RUN / "logs" / f"{name}.log"
        tail = [line[:300] for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        raise ClusterError(f"{name} exited during start-up; {log}: {' | '.join(tail) or '(empty)'}")


# --------------------------------------------------------------------------- pieces


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    except FileNotFoundError:
        raise ClusterError("openssl is not installed: apt-get install openssl") from None
    except subprocess.CalledProcessError as e:
        raise ClusterError(f"openssl {args[0]} failed: {e.stderr.decode().strip()}") from None


def _make_pki(pki: Path) -> None:
    pki.mkdir(parents=True)
    ca = ("-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "3650")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=lakejob-local-ca",
             "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"))
    server, client = "extendedKeyUsage=serverAuth", "extendedKeyUsage=clientAuth"
    certs = {
        "apiserver": ("/CN=kube-apiserver",
                      f"subjectAltName=IP:127.0.0.1,IP:{realnode.GATEWAY},IP:10.96.0.1,DNS:localhost,"
                      "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                      f"DNS:kubernetes.default.svc.{realnode.CLUSTER_DOMAIN}\n{server}"),
        "admin": ("/O=system:masters/CN=lakejob-admin", client),
    }
    if REAL_NODE:  # the real node's identities: every link authenticated by certificate
        certs.update({
            "kubelet": (f"/CN=system:node:{realnode.NODE_NAME}", f"subjectAltName=IP:{realnode.GATEWAY}\n{server}"),
            "kubelet-client": (f"/O=system:nodes/CN=system:node:{realnode.NODE_NAME}", client),
            "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client", client),
            "kube-proxy": ("/CN=system:kube-proxy", client),
            "coredns": ("/CN=lakejob:coredns", client),
        })
    for name, (subject, ext) in certs.items():
        key, csr, crt, extfile = (pki / f"{name}.{e}" for e in ("key", "csr", "crt", "ext"))
        extfile.write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), *ca, "-out", str(crt), "-extfile", str(extfile))
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def _write_kubeconfig(pki: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lakejob-local", "cluster": {
            "server": f"https://{API_HOST}:{PORTS['apiserver']}",
            "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "lakejob-admin", "user": {
            "client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "lakejob-local", "context": {"cluster": "lakejob-local", "user": "lakejob-admin"}}],
        "current-context": "lakejob-local",
    }
    kubeconfig_path().write_text(json.dumps(config, indent=2))  # JSON is YAML


def _ssl_context() -> ssl.SSLContext:
    pki = RUN / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def _get(path: str, timeout: float = 2.0) -> str:
    url = f"https://{API_HOST}:{PORTS['apiserver']}{path}"
    with urllib.request.urlopen(url, context=_ssl_context(), timeout=timeout) as r:
        return str(r.read().decode())


def _etcd_healthy() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['etcd']}/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def _ready() -> bool:
    try:
        return _get("/readyz") == "ok"
    except (OSError, ssl.SSLError):
        return False


def _wait(what: str, check: object, timeout: float, component: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        _check_alive(component)
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; see {RUN}/logs/{component}.log")


# What a started component must answer before the next one starts: (what, check). The apiserver
# gives up on etcd after ~20 s, and on a loaded machine etcd can take longer to come up.
READY: dict[str, tuple[str, Callable[[], bool]]] = {
    "etcd": ("etcd /health", _etcd_healthy),
    "kube-apiserver": ("etcd and kube-apiserver /readyz", _ready),
}


def _kubectl(*args: str, stdin: str | None = None) -> str:
    r = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig_path()), *args],
                       input=stdin, capture_output=True, text=True)
    if r.returncode:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def _nodes(profile: str) -> str:
    p = PROFILES[profile]
    docs = []
    for i in range(p["nodes"]):
        res = {"cpu": p["cpu"], "memory": p["memory"], "pods": p["pods"]}
        docs.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"kwok-node-{i}",
                         "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{i}",
                                    "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                    "lakejob.io/profile": profile}},
            "status": {"allocatable": res, "capacity": res},
        })
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def _apiserver_options() -> list[str]:
    """Test-only apiserver options from the environment (hack/cluster's docstring names them)."""
    options = []
    if os.environ.get("LAKEJOB_ETCD_COMPACTION_INTERVAL"):
        options.append(f"--etcd-compaction-interval={os.environ['LAKEJOB_ETCD_COMPACTION_INTERVAL']}")
    if os.environ.get("LAKEJOB_WATCH_CACHE", "1") == "0":
        options.append("--watch-cache=false")
    if os.environ.get("LAKEJOB_AUDIT_POLICY"):
        options += [f"--audit-policy-file={os.environ['LAKEJOB_AUDIT_POLICY']}",
                    f"--audit-log-path={RUN / 'logs' / 'audit.log'}", "--audit-log-format=json",
                    "--audit-log-maxsize=0"]
    return options


def command(name: str) -> list[str]:
    """The command line of control-plane component `name`, binary first: the one place it is
    written, for `up` and for `start` (a restarted component runs exactly as it first did, on the
    same run directory, PKI and etcd data)."""
    pki, kcfg = RUN / "pki", str(kubeconfig_path())
    if name == "etcd":
        return ["etcd", "--name=lakejob", f"--data-dir={RUN}/etcd",
                f"--listen-client-urls=http://127.0.0.1:{PORTS['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{PORTS['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{PORTS['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{PORTS['etcd-peer']}",
                f"--initial-cluster=lakejob=http://127.0.0.1:{PORTS['etcd-peer']}",
                "--unsafe-no-fsync", "--quota-backend-bytes=8589934592", "--log-level=warn"]
    if name == "kube-apiserver":
        return [
            "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{PORTS['etcd']}", "--etcd-prefix=/registry",
            f"--bind-address={API_HOST}", f"--advertise-address={API_HOST}", f"--secure-port={PORTS['apiserver']}",
            f"--cert-dir={pki}", f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
            f"--client-ca-file={pki}/ca.crt",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki}/sa.pub", f"--service-account-signing-key-file={pki}/sa.key",
            "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            "--enable-priority-and-fairness=false",  # one admin client on loopback: APF only adds queueing
            "--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
            # With a real node the `kubernetes` Service needs its endpoint (this apiserver); without, none.
            f"--endpoint-reconciler-type={'lease' if REAL_NODE else 'none'}",
            *([f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
               f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
               f"--kubelet-certificate-authority={pki}/ca.crt",
               "--kubelet-preferred-address-types=InternalIP"] if REAL_NODE else []),
            *_apiserver_options(),
            "--v=1"]
    if name == "kube-controller-manager":
        return [
            "kube-controller-manager", f"--kubeconfig={kcfg}", f"--authentication-kubeconfig={kcfg}",
            f"--authorization-kubeconfig={kcfg}", "--leader-elect=false", "--bind-address=127.0.0.1",
            f"--secure-port={PORTS['controller-manager']}", f"--service-account-private-key-file={pki}/sa.key",
            f"--root-ca-file={pki}/ca.crt", "--use-service-account-credentials=false",
            "--kube-api-qps=500", "--kube-api-burst=1000", "--concurrent-gc-syncs=50", "--v=1"]
    if name == "kube-scheduler":
        return [
            "kube-scheduler", f"--kubeconfig={kcfg}", f"--authentication-kubeconfig={kcfg}",
            f"--authorization-kubeconfig={kcfg}", "--leader-elect=false", "--bind-address=127.0.0.1",
            f"--secure-port={PORTS['scheduler']}", "--v=1"]
    if name == "kwok":
        return [
            "kwok", f"--kubeconfig={kcfg}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--config={HERE / 'stages.yaml'}", "--server-address=127.0.0.1:" + str(PORTS["kwok"]),
            "--node-lease-duration-seconds=40"]
    raise ValueError(f"not a control-plane component: {name}")


# --------------------------------------------------------------------------- verbs


def _components() -> list[str]:
    return COMPONENTS + (realnode.DAEMONS if REAL_NODE else [])


def running() -> bool:
    return all(alive(name) is not None for name in _components()) and _ready()


def up(profile: str) -> Path:
    """Start the control plane unless it already runs; return the admin kubeconfig's path."""
    if running():
        if REAL_NODE:
            # A node started before the last `make images` would still run the images of then (the
            # operator's among them): import those that changed since, as a start does. Images not
            # built for the work tree's inputs (code edited since `make images`) are no reason to
            # refuse a running cluster: the node keeps what it has, and says so.
            try:
                _load_images(NODE.socket)
            except ClusterError as e:
                print(f"cluster: the real node keeps the images it has: {e}", file=sys.stderr)
        return kubeconfig_path()
    if RUN.exists():
        print(f"cluster: cleaning a stale run directory {RUN}", file=sys.stderr)
        _teardown(quiet=True)
    missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
               if not (BIN / b).exists()]
    if missing:
        raise ClusterError(f"missing binaries in {BIN}: {', '.join(missing)}; run `make tools` first")
    if REAL_NODE:
        try:
            NODE.preflight()
        except realnode.NodeError as e:
            raise ClusterError(str(e)) from None
    busy = [f"{name} port {port}" for name, port in PORTS.items() if not _port_free(port)]
    if busy:
        raise ClusterError(f"127.0.0.1 ports in use: {', '.join(busy)}; stop what uses them "
                           f"or pick another range with LAKEJOB_PORT_BASE=<port>")
    real = f", real node {realnode.NODE_NAME}" if REAL_NODE else ""
    try:
        # A minute or more on a fresh machine (the real node's images load into its containerd): a heartbeat.
        with progress.step("cluster", f"starting the local cluster ({profile} profile{real}, "
                                      f"apiserver https://{API_HOST}:{PORTS['apiserver']})"):
            _up(profile)
    except realnode.NodeError as e:
        _teardown(quiet=True)
        raise ClusterError(str(e)) from None
    except BaseException:
        _teardown(quiet=True)  # never leave half-started processes (or a half-made node) behind
        raise
    return kubeconfig_path()


def _up(profile: str) -> None:
    t0 = time.monotonic()
    for d in ("pids", "logs", "etcd"):
        (RUN / d).mkdir(parents=True, exist_ok=True)
    pki = RUN / "pki"
    _make_pki(pki)
    _write_kubeconfig(pki)
    (RUN / "profile").write_text(profile)
    if REAL_NODE:
        NODE.network_up()  # before the apiserver, which listens on the bridge's address

    for name in COMPONENTS:  # in order: each waits for what it needs (etcd, then the apiserver)
        _start(name)
    _kubectl("apply", "-f", "-", stdin=_nodes(profile))

    def nodes_ready() -> bool:
        try:
            out = json.loads(_kubectl("get", "nodes", "-o", "json"))
        except ClusterError:
            return False
        return all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                   for n in out["items"]) and bool(out["items"])

    _wait("the KWOK nodes to become Ready", nodes_ready, 60, "kwok")

    def default_sa() -> bool:  # pods need the default ServiceAccount: proves the controller-manager works
        try:
            _kubectl("get", "serviceaccount", "default", "-n", "default")
            return True
        except ClusterError:
            return False

    _wait("the controller-manager to create the default ServiceAccount", default_sa, 60, "kube-controller-manager")
    if REAL_NODE:
        print(f"cluster: control plane up in {time.monotonic() - t0:.1f}s; starting the real node", file=sys.stderr)
        NODE.start(spawn, _kubectl, _wait, pki, f"https://{API_HOST}:{PORTS['apiserver']}", _load_images)
    for name in _components():
        _check_alive(name)


def _load_images(socket_path: Path) -> list[str]:
    """Import the images images/build.py built into the node's containerd (only those that changed)."""
    sys.path.insert(0, str(HERE.parent.parent / "images"))
    import build as images  # noqa: PLC0415  (images/build.py, standard library only)

    try:
        # stdout is the kubeconfig's path alone (scripts read it): images' progress goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            loaded: list[str] = images.load(socket_path, NODE.containerd_root / "lakejob-imported")
    except images.ImageError as e:
        raise ClusterError(str(e)) from None
    if loaded:
        print(f"cluster: loaded {', '.join(loaded)} into the real node", file=sys.stderr)
    return loaded


def _teardown(quiet: bool = False) -> None:
    """Stop everything recorded, remove what the real node made, then the run directory."""
    _stop_all(quiet=quiet, only=EXTRAS)
    if REAL_NODE or (RUN / "node").exists():
        NODE.teardown(lambda names: _stop_all(quiet=quiet, only=names))
    _stop_all(quiet=quiet)
    if RUN.exists():
        shutil.rmtree(RUN)


def _named(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ClusterError(f"not a control-plane component: {', '.join(unknown)} (one of {', '.join(COMPONENTS)})")
    if not (RUN / "pids").is_dir():
        raise ClusterError(f"no cluster in {RUN}: start one with `make cluster`")
    return names


def stop(names: list[str]) -> None:
    """Stop the named components by PID (the last started first), keeping the run directory and
    etcd's data: `start` brings them back as they were (fault tests: the apiserver and etcd down)."""
    _stop_all(only=[n for n in reversed(COMPONENTS) if n in _named(names)])


def start(names: list[str]) -> None:
    """Start the named components that do not run, in start order, each from its one command line,
    waiting until each serves (etcd /health, the apiserver /readyz)."""
    for name in [n for n in COMPONENTS if n in _named(names)]:
        if alive(name) is None:
            _start(name)
            print(f"cluster: started {name} (pid {alive(name)})")


def down() -> None:
    _teardown()
    print(f"cluster: down; removed {RUN}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p_up = sub.add_parser("up", help="start (if not running) and print the kubeconfig path")
    p_up.add_argument("--profile", choices=sorted(PROFILES), default=os.environ.get("LAKEJOB_NODE_PROFILE", "default"))
    sub.add_parser("down", help="stop our processes by PID and remove the run directory")
    sub.add_parser("kubeconfig", help="print the kubeconfig path of the running cluster")
    sub.add_parser("status", help="exit 0 if the cluster runs")
    sub.add_parser("residue", help="print, as JSON, what of the real node is still on this machine")
    p_stop = sub.add_parser("stop", help="stop the named components, keeping the run directory (and etcd's data)")
    p_stop.add_argument("components", nargs="+", metavar="COMPONENT", help=", ".join(COMPONENTS))
    p_start = sub.add_parser("start", help="start the named components again, as `up` started them")
    p_start.add_argument("components", nargs="+", metavar="COMPONENT", help=", ".join(COMPONENTS))
    sub.add_parser("stop-operator", help="stop the operator `make demo` left running (tests run their own)")
    args = parser.parse_args()
    try:
        if args.verb == "up":
            print(up(args.profile))
        elif args.verb == "down":
            down()
        elif args.verb == "kubeconfig":
            if not running():
                raise ClusterError("no local cluster is running: start one with `make cluster`")
            print(kubeconfig_path())
        elif args.verb == "status":
            return 0 if running() else 1
        elif args.verb == "residue":
            print(json.dumps(NODE.residue(), indent=1))
        elif args.verb == "stop":
            stop(args.components)
        elif args.verb == "start":
            start(args.components)
        elif args.verb == "stop-operator":
            _stop_all(only=EXTRAS)
    except ClusterError as e:
        print(f"cluster: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
