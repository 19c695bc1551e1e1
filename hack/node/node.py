"""The local cluster's real node: containerd + runc + a CNI bridge, kubelet, kube-proxy and CoreDNS.

Called by hack/cluster/cluster.py: `preflight()` before anything starts, `network_up()` before the
apiserver (which listens on the bridge's address, so pods reach it through the `kubernetes`
Service), `start()` once the control plane is ready, `teardown()` from `down`. `residue()` lists
whatever of the node is still on the machine; the e2e teardown test asserts it is empty after
`down`. Standard library only (it runs before the project's virtualenv exists).

What the node may touch, and nothing else:
- network: one bridge (BRIDGE, GATEWAY/24) and the veths and network namespaces containerd's CNI
  makes for pods on it. Pods get a route to the pod subnet and the Service range only (no default
  route, no masquerade), forwarding is enabled on the bridge alone, and one FORWARD rule drops
  anything that would leave it: pod traffic reaches loopback-bound nothing, the host's addresses
  on the bridge, and other pods.
- cgroups: a child `CGROUP` of this process's own cgroup in each hierarchy. containerd (and so
  every shim and container, whose cgroup paths are relative) runs inside it; the host's cgroups are
  never moved or written.
- mounts: only below the run directory, the node's containerd root and the pods' netns files.
- iptables: the chains kube-proxy makes (removed by `kube-proxy --cleanup`) and the FORWARD rule.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

NODE_NAME = "lakejob-real"
LABEL = "lakejob.io/real"  # label and NoSchedule taint: only pods that ask for real execution land here
BRIDGE = "lakejob0"
SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"  # the bridge's address: the node's InternalIP, the apiserver's and CoreDNS's
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
CGROUP = "lakejob-node"
CNI_BIN = Path("/usr/lib/cni")
NETNS_DIR = os.path.realpath("/var/run/netns")  # where containerd 1.6's CRI mounts pod netns (/run/netns)
GUARD = ["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-m", "comment", "--comment",
         "lakejob: pod traffic never leaves the bridge", "-j", "DROP"]
DAEMONS = ["containerd", "kubelet", "kube-proxy", "coredns"]
# The kubelet sets these host-wide sysctls once at start (unless protectKernelDefaults, which makes
# it refuse to start here instead): their values are saved before and put back once it runs.
KUBELET_SYSCTLS = ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"]
PACKAGES = "apt-get install containerd runc containernetworking-plugins iptables conntrack"


class NodeError(Exception):
    """A problem the user can act on; printed as one line by cluster.py."""


class Node:
    """Paths and ports of one real node, derived from cluster.py's run directory, cache and ports."""

    def __init__(self, run: Path, cache: Path, bin_dir: Path, port_base: int) -> None:
        self.run = run
        self.dir = run / "node"
        self.cache = cache / "node"
        self.containerd_root = self.cache / "containerd"  # images survive `down`; containers do not
        self.bin = bin_dir
        self.kubelet_port = port_base + 7
        self.kubelet_healthz = port_base + 8
        self.proxy_healthz = port_base + 10
        self.proxy_metrics = port_base + 11
        self.coredns_health = port_base + 12

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    def kubeconfig(self, name: str) -> Path:
        return self.dir / f"{name}.kubeconfig"

    # ------------------------------------------------------------------ checks

    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("the real node needs root (bridge, netns, cgroups, iptables); run as root, "
                            "or set LAKEJOB_REAL_NODE=0 for a KWOK-only cluster")
        missing = [b for b in ("containerd", "runc", "ctr", "iptables", "iptables-save", "conntrack", "ip")
                   if shutil.which(b) is None]
        missing += [str(CNI_BIN / p) for p in ("bridge", "host-local", "loopback") if not (CNI_BIN / p).exists()]
        if missing:
            raise NodeError(f"the real node needs {', '.join(missing)}: {PACKAGES}")
        built = [b for b in ("kubelet", "kube-proxy", "coredns") if not (self.bin / b).exists()]
        if built:
            raise NodeError(f"missing binaries in {self.bin}: {', '.join(built)}; run `make tools` first")
        if Path(f"/sys/class/net/{BRIDGE}").exists() and not self.dir.exists():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((GATEWAY, 53))
                except OSError:
                    raise NodeError(f"another lakejob real node runs on this machine (its CoreDNS holds {GATEWAY}:53): "
                                    "stop it with `make cluster-down` from its checkout, or set LAKEJOB_REAL_NODE=0"
                                    ) from None
        if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
            raise NodeError("the br_netfilter module is not loaded (kube-proxy needs it): modprobe br_netfilter")

    # ------------------------------------------------------------------ network

    def network_up(self) -> None:
        """The bridge with the gateway address, forwarding on it alone, and the guard rule."""
        if not Path(f"/sys/class/net/{BRIDGE}").exists():
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
        addrs = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE)
        if f" {GATEWAY}/" not in addrs:
            _run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # Per-interface: packets that arrive on the bridge may be routed (Service DNAT to another
        # pod); the host's own interfaces keep the host's setting.
        Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding").write_text("1\n")
        if subprocess.run(["iptables", "-C", *GUARD], capture_output=True).returncode:
            _run("iptables", "-I", *GUARD)

    def _write_configs(self, ca: Path, pki: Path, apiserver: str) -> None:
        d = self.dir
        for sub in ("cni", "kubelet", "pod-logs", "ipam"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.containerd_root.mkdir(parents=True, exist_ok=True)
        (d / "cni" / "10-lakejob.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "lakejob",
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": True, "isDefaultGateway": False,
                "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": str(d / "ipam"),
                         "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                         # The Service range through the gateway (kube-proxy's DNAT); no default route.
                         "routes": [{"dst": SERVICE_CIDR}]},
            }],
        }, indent=1))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        (d / "containerd.toml").write_text(f"""version = 2
root = "{self.containerd_root}"
state = "{d / 'containerd'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{d / 'containerd-ttrpc.sock'}"
[debug]
  level = "warn"
[{cri}]
  sandbox_image = "lakejob.local/pause:3.10"
  # Without it every sandbox fails here: the machine grants no CAP_SYS_RESOURCE, so nothing may
  # lower an oom_score_adj (runc: "can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{d / 'cni'}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.cache / 'opt'}"
""")
        (d / "kubelet.json").write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": GATEWAY, "port": self.kubelet_port, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": self.kubelet_healthz,
            # The apiserver authenticates with its kubelet-client certificate; nobody is anonymous.
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(ca)}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(pki / "kubelet.crt"), "tlsPrivateKeyFile": str(pki / "kubelet.key"),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # cgroup v1 hybrid: no QoS hierarchy; runc puts each container below containerd's cgroup.
            "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
            "failCgroupV1": False, "failSwapOn": False,
            "clusterDNS": [GATEWAY], "clusterDomain": CLUSTER_DOMAIN, "resolvConf": "",
            "podLogsDir": str(d / "pod-logs"),
            "registerWithTaints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
            # A shared development machine: evict on nothing but a nearly full disk or memory.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "maxPods": 60,
            "staticPodPath": "", "nodeStatusReportFrequency": "10s",
        }, indent=1))
        (d / "kube-proxy.json").write_text(json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig("kube-proxy"))},
            "mode": "iptables", "hostnameOverride": NODE_NAME, "clusterCIDR": SUBNET,
            "bindAddress": GATEWAY, "healthzBindAddress": f"127.0.0.1:{self.proxy_healthz}",
            "metricsBindAddress": f"127.0.0.1:{self.proxy_metrics}",
            # NodePorts on the bridge only, never on the host's own interfaces.
            "nodePortAddresses": [f"{GATEWAY}/32"],
            # Leave the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }, indent=1))
        (d / "Corefile").write_text(f""".:53 {{
    bind {GATEWAY}
    errors
    health 127.0.0.1:{self.coredns_health}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig('coredns')}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")
        for name, cert in (("kubelet", "kubelet-client"), ("kube-proxy", "kube-proxy"), ("coredns", "coredns")):
            self.kubeconfig(name).write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": apiserver, "certificate-authority": str(ca)}}],
                "users": [{"name": "u", "user": {"client-certificate": str(pki / f"{cert}.crt"),
                                                 "client-key": str(pki / f"{cert}.key")}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }))

    # ------------------------------------------------------------------ start

    def start(self, spawn: Callable[..., int], kubectl: Callable[..., str], wait: Callable[..., None],
              pki: Path, apiserver: str, load_images: Callable[[Path], list[str]]) -> None:
        """Start containerd (in its own cgroup), load the images, then kubelet, kube-proxy, CoreDNS;
        return once the node is Ready and cluster DNS answers."""
        self._write_configs(pki / "ca.crt", pki, apiserver)
        cgroups = self._cgroups_up()

        def join() -> None:  # runs in the child before exec: the daemon and all it starts are ours
            for cg in cgroups:
                (cg / "cgroup.procs").write_text(str(os.getpid()))

        spawn("containerd", ["containerd", "--config", str(self.dir / "containerd.toml")], preexec=join)
        wait("containerd's socket", self._containerd_ready, 60, "containerd")
        load_images(self.socket)
        kubectl("apply", "-f", "-", stdin=json.dumps(_coredns_rbac()))
        saved = self.dir / "sysctls.json"
        if not saved.exists():
            saved.write_text(json.dumps({k: Path("/proc/sys", k).read_text().strip() for k in KUBELET_SYSCTLS}))
        spawn("kubelet", [str(self.bin / "kubelet"), f"--config={self.dir / 'kubelet.json'}",
                          f"--kubeconfig={self.kubeconfig('kubelet')}", f"--root-dir={self.dir / 'kubelet'}",
                          f"--hostname-override={NODE_NAME}", f"--node-ip={GATEWAY}",
                          f"--node-labels={LABEL}=true", "--v=1"], preexec=join)
        spawn("kube-proxy", [str(self.bin / "kube-proxy"), f"--config={self.dir / 'kube-proxy.json'}", "--v=1"],
              preexec=join)
        spawn("coredns", [str(self.bin / "coredns"), "-conf", str(self.dir / "Corefile")], preexec=join)

        def node_ready() -> bool:
            try:
                node = json.loads(kubectl("get", "node", NODE_NAME, "-o", "json"))
            except Exception:  # noqa: BLE001 - not registered yet
                return False
            return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

        wait(f"the real node {NODE_NAME} to become Ready", node_ready, 120, "kubelet")
        self._restore_sysctls()
        wait("cluster DNS (CoreDNS) to answer for kubernetes.default", self._dns_answers, 60, "coredns")

    def _restore_sysctls(self) -> None:
        try:
            saved = json.loads((self.dir / "sysctls.json").read_text())
        except (OSError, ValueError):
            return
        for key, value in saved.items():
            if Path("/proc/sys", key).read_text().strip() != value:
                Path("/proc/sys", key).write_text(value + "\n")

    def _containerd_ready(self) -> bool:
        return subprocess.run(["ctr", "-a", str(self.socket), "version"], capture_output=True).returncode == 0

    def _dns_answers(self) -> bool:
        return dns_lookup(f"kubernetes.default.svc.{CLUSTER_DOMAIN}", GATEWAY) is not None

    # ------------------------------------------------------------------ cgroups

    def _recorded_cgroups(self) -> list[Path]:
        try:
            recorded = [Path(p) for p in json.loads((self.dir / "cgroups.json").read_text())]
        except (OSError, ValueError):
            recorded = []
        return sorted(set(recorded) | set(self._cgroup_dirs()))

    def _cgroup_dirs(self) -> list[Path]:
        """Our cgroup in each hierarchy: CGROUP below this process's own cgroup there."""
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            own[controllers] = path
        dirs = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, right = line.split(" - ", 1)
            fstype, _, options = right.split()[:3]
            mountpoint = left.split()[4]
            if fstype == "cgroup2" and "" in own:
                dirs.append(Path(mountpoint + own[""].rstrip("/")) / CGROUP)
            elif fstype == "cgroup":
                # The hierarchy whose controllers (or name=) all appear among the mount's options.
                for key, path in own.items():
                    if key and set(key.split(",")) <= set(options.split(",")):
                        dirs.append(Path(mountpoint + path.rstrip("/")) / CGROUP)
                        break
        return dirs

    def _cgroups_up(self) -> list[Path]:
        dirs = self._cgroup_dirs()
        # Recorded: `down` may run from a process whose own cgroups differ from this one's.
        (self.dir / "cgroups.json").write_text(json.dumps([str(d) for d in dirs]))
        for cg in dirs:
            cg.mkdir(exist_ok=True)
            if (cg / "cpuset.cpus").exists():  # a new v1 cpuset is empty until given its parent's sets
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not (cg / f).read_text().strip():
                        (cg / f).write_text((cg.parent / f).read_text())
        return dirs

    # ------------------------------------------------------------------ teardown

    def teardown(self, stop: Callable[[list[str]], None]) -> None:
        """Remove every process, mount, netns, cgroup, iptables chain and link the node made.
        Idempotent: safe after a crash, a half-started node, or a second call."""
        stop(["coredns", "kube-proxy", "kubelet"])
        self._restore_sysctls()
        netns: set[str] = set()
        if self._containerd_ready():
            netns = self._remove_containers()
        elif (self.dir / "containerd.toml").exists():
            netns = self._remove_containers_of_a_dead_node()
        stop(["containerd"])
        self._kill_cgroup_members()
        self._kill_shims()
        for path in sorted(self._our_mounts() + [n for n in netns if _is_mount(n)], key=len, reverse=True):
            subprocess.run(["umount", "-l", path], capture_output=True)
        for n in netns:
            Path(n).unlink(missing_ok=True)
        for cg in self._recorded_cgroups():
            _rmdir_tree(cg)
        if (self.bin / "kube-proxy").exists():
            subprocess.run([str(self.bin / "kube-proxy"), "--cleanup", "--proxy-mode=iptables"], capture_output=True)
        for tool in ("iptables", "ip6tables"):
            _remove_kube_chains(tool)  # what --cleanup leaves: the kubelet's canaries, KUBE-FIREWALL, …
        while subprocess.run(["iptables", "-C", *GUARD], capture_output=True).returncode == 0:
            subprocess.run(["iptables", "-D", *GUARD], capture_output=True)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            for veth in self._bridge_ports():
                subprocess.run(["ip", "link", "del", veth], capture_output=True)
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "-a", str(self.socket), "-n", "k8s.io", *args], capture_output=True, text=True)

    def _remove_containers(self) -> set[str]:
        """Kill and delete every container of the node; return the pods' netns paths."""
        ids = self._ctr("containers", "list", "-q").stdout.split()
        netns = set()
        for cid in ids:
            try:
                spec = json.loads(self._ctr("containers", "info", cid).stdout)["Spec"]
            except (ValueError, KeyError, TypeError):
                continue
            for ns in (spec.get("linux") or {}).get("namespaces") or []:
                if ns.get("type") == "network" and ns.get("path"):
                    netns.add(ns["path"])
        for cid in ids:
            self._ctr("tasks", "kill", "--all", "--signal", "SIGKILL", cid)
        for cid in ids:
            self._ctr("tasks", "delete", "--force", cid)  # --force: also a task still exiting
            self._ctr("containers", "delete", cid)
        # Only a netns inside the pods' directory counts: a spec can name another process's (hostNetwork).
        return {os.path.join(NETNS_DIR, os.path.basename(n)) for n in netns
                if os.path.realpath(os.path.dirname(n)) == NETNS_DIR}

    def _remove_containers_of_a_dead_node(self) -> set[str]:
        """After a crash (or a machine that killed every process) containerd's records still name
        the pods' netns: start it once, only to read and delete them."""
        log = open(self.dir / "containerd-cleanup.log", "ab")
        proc = subprocess.Popen(["containerd", "--config", str(self.dir / "containerd.toml")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not self._containerd_ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    return set()
                time.sleep(0.2)
            return self._remove_containers()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    def _kill_cgroup_members(self) -> None:
        for _ in range(50):
            pids = self._cgroup_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        raise NodeError(f"processes in the node's cgroup would not die: {sorted(self._cgroup_pids())}")

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for cg in self._recorded_cgroups():
            if cg.exists():
                for procs in cg.rglob("cgroup.procs"):
                    try:
                        pids.update(int(p) for p in procs.read_text().split())
                    except OSError:
                        continue
        return pids

    def _shim_pids(self) -> list[int]:
        """containerd's shims outlive it; ours name our containerd's socket on their command line."""
        found = []
        needle = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if needle in (proc / "cmdline").read_bytes():
                        found.append(int(proc.name))
                except OSError:
                    continue
        return found

    def _kill_shims(self) -> None:
        for pid in self._shim_pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def _our_mounts(self) -> list[str]:
        prefixes = (f"{self.dir}/", f"{self.containerd_root}/")
        return [m for m in _mountpoints() if m.startswith(prefixes)]

    def _bridge_ports(self) -> list[str]:
        out = subprocess.run(["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]

    def residue(self) -> dict[str, list[str]]:
        """What of the node is on the machine now (empty lists after a clean `down`)."""
        chains = "".join(subprocess.run([f"{tool}-save"], capture_output=True, text=True).stdout
                         for tool in ("iptables", "ip6tables"))
        return {
            "processes": [str(p) for p in sorted(self._cgroup_pids() | set(self._shim_pids()))],
            "mounts": self._our_mounts(),
            "netns": [str(p) for p in _pod_netns() if _is_mount(str(p))],
            "cgroups": [str(c) for c in self._recorded_cgroups() if c.exists()],
            "links": [BRIDGE] if Path(f"/sys/class/net/{BRIDGE}").exists() else [],
            "iptables": [line for line in chains.splitlines()
                         if line.startswith((":KUBE-", "-A ")) and "KUBE-" in line or "lakejob:" in line],
        }


# ---------------------------------------------------------------------- helpers


def _run(*cmd: str) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if r.returncode:
        raise NodeError(f"{' '.join(cmd)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def _mountpoints() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def _is_mount(path: str) -> bool:
    return path in _mountpoints()


def _pod_netns() -> list[Path]:
    """containerd's CRI names pod network namespaces cni-<uuid>."""
    d = Path(NETNS_DIR)
    return sorted(d.glob("cni-*")) if d.exists() else []


def _remove_kube_chains(tool: str) -> None:
    """Delete every KUBE-* chain (and the built-in chains' jumps to them) from every table."""
    for table in ("filter", "nat", "mangle"):
        r = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True)
        if r.returncode:
            continue
        chains = [line[1:].split()[0] for line in r.stdout.splitlines() if line.startswith(":KUBE-")]
        for line in r.stdout.splitlines():
            parts = line.split()
            if parts[:1] == ["-A"] and not parts[1].startswith("KUBE-") and "KUBE-" in line:
                subprocess.run(["sh", "-c", f"{tool} -t {table} -D {line[3:]}"], capture_output=True)
        for verb in ("-F", "-X"):
            for chain in chains:
                subprocess.run([tool, "-t", table, verb, chain], capture_output=True)


def _rmdir_tree(cg: Path) -> None:
    if not cg.exists():
        return
    for child in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        cg.rmdir()
    except OSError as e:
        raise NodeError(f"could not remove the node's cgroup {cg}: {e}") from None


def _coredns_rbac() -> dict[str, object]:
    """What CoreDNS's kubernetes plugin reads, for its own certificate's user."""
    name = "lakejob:coredns"
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]},
    ]}


def dns_lookup(name: str, server: str, timeout: float = 1.0) -> str | None:
    """The first A record for `name` from `server`, or None (a minimal DNS query over UDP)."""
    query = struct.pack(">HHHHHH", 0x1A2B, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(query, (server, 53))
            data = s.recv(512)
        except OSError:
            return None
    answers = struct.unpack(">H", data[6:8])[0]
    if data[3] & 0x0F or not answers:
        return None
    pos = len(query)
    for _ in range(answers):
        while data[pos] and data[pos] < 0xC0:  # skip the owner name (labels, or a pointer)
            pos += data[pos] + 1
        pos += 2 if data[pos] >= 0xC0 else 1
        rtype, _, _, length = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            return ".".join(str(b) for b in data[pos:pos + 4])
        pos += length
    return None
