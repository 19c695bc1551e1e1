"""The real node (hack/node/node.py): pods really run, with cluster networking and the kubelet's API.

Each test makes plain pods (no operator) that tolerate the node's taint and select its label, from
the locally built images, and checks one thing users rely on: the `kubernetes` Service and cluster
DNS from inside a pod, pod-to-pod traffic through a ClusterIP and a headless Service, `kubectl
logs/exec/port-forward` through the kubelet's authenticated API, and no route out of the machine.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from tests.e2e.kubectl import KUBECTL, Kubectl
from tests.e2e.real import REAL_NODE, images, on_real_node

pytestmark = [pytest.mark.e2e, pytest.mark.real, pytest.mark.own_pods]  # plain pods of its own


def pod(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return on_real_node({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": images()["operator"], "command": command,
                                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}, **extra}]},
    })


def finished(kubectl: Kubectl, ns: str, name: str) -> str:
    def phase() -> str | None:
        p = kubectl.get("pod", name, ns)
        return p["status"].get("phase") if p and p["status"].get("phase") in ("Succeeded", "Failed") else None
    return kubectl.wait_for(phase, f"pod {name} to finish", timeout=120, namespace=ns, show=("pod", name))


def running(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        p = kubectl.get("pod", name, ns)
        ok = p and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        return p if ok else None
    return kubectl.wait_for(ready, f"pod {name} to be Ready", timeout=120, namespace=ns, show=("pod", name))


PROBE = r"""
import json, socket, ssl, urllib.request
out = {}
out["dns"] = socket.gethostbyname("kubernetes.default.svc.cluster.local")
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={"Authorization": "Bearer " + open(sa + "/token").read()})
out["version"] = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"]
for target in ("192.0.2.1", "1.1.1.1"):
    try:
        socket.create_connection((target, 53), timeout=3).close()
        out[target] = "connected"
    except OSError as e:
        out[target] = type(e).__name__ + ":" + str(e.errno)
print("PROBE " + json.dumps(out))
"""


@pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")
def test_a_pod_reaches_the_apiserver_through_its_service_by_dns_and_nothing_outside(
        kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(pod("probe", ["python3", "-c", PROBE]), namespace)
    assert finished(kubectl, namespace, "probe") == "Succeeded", kubectl.run("logs", "probe", "-n", namespace)
    line = next(x for x in kubectl.run("logs", "probe", "-n", namespace).splitlines() if x.startswith("PROBE "))
    out = json.loads(line[len("PROBE "):])
    assert out["dns"] == "10.96.0.1"  # the `kubernetes` Service, by cluster DNS
    assert out["version"].startswith("v1.34")  # through kube-proxy to the apiserver, TLS verified
    # No route out: not to another host of the machine's network, not to the internet.
    assert out["192.0.2.1"] != "connected" and out["1.1.1.1"] != "connected", out


@pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")
def test_pods_reach_each_other_by_service_names_and_the_kubelet_serves_logs_exec_port_forward(
        kubectl: Kubectl, namespace: str) -> None:
    server = pod("web", ["python3", "-m", "http.server", "8000", "--directory", "/etc"],
                 readinessProbe={"tcpSocket": {"port": 8000}, "periodSeconds": 1})
    kubectl.apply(server, namespace)
    for name, port in (("web", 80), ("web-headless", 8000)):
        spec: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"port": port, "targetPort": 8000}]}
        if name == "web-headless":
            spec["clusterIP"] = "None"  # DNS answers with the pod's own address
        kubectl.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}, namespace)
    running(kubectl, namespace, "web")
    # kube-proxy programs a Service's rules a moment after its endpoints turn ready (until then the
    # ClusterIP rejects), so the client retries refusals for a while, as any real client must.
    fetch = ("import sys, time, urllib.request\n"
             "for url in sys.argv[1:]:\n"
             "    deadline = time.monotonic() + 30\n"
             "    while True:\n"
             "        try:\n"
             "            body = urllib.request.urlopen(url, timeout=10).read().decode(); break\n"
             "        except OSError:\n"
             "            if time.monotonic() > deadline: raise\n"
             "            time.sleep(0.5)\n"
             "    print(url, 'hostname' in body)\n")
    kubectl.apply(pod("client", ["python3", "-c", fetch, f"http://web.{namespace}.svc.cluster.local/",
                                 "http://web-headless:8000/"]), namespace)
    assert finished(kubectl, namespace, "client") == "Succeeded", kubectl.run("logs", "client", "-n", namespace)
    logs = kubectl.run("logs", "client", "-n", namespace)
    # Through kube-proxy's DNAT (ClusterIP) and straight to the pod's address (headless).
    assert f"http://web.{namespace}.svc.cluster.local/ True" in logs and "http://web-headless:8000/ True" in logs

    # exec and port-forward go apiserver → kubelet (client certificate) → containerd's stream server.
    assert kubectl.run("exec", "web", "-n", namespace, "--", "cat", "/etc/hostname").strip() == "web"
    port = _free_port()
    forward = subprocess.Popen([KUBECTL, "port-forward", "-n", namespace, "pod/web", f"{port}:8000"],
                               env=kubectl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=5).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline and forward.poll() is None, forward.stderr and forward.stderr.read()
                time.sleep(0.3)
        assert body.strip() == "web"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


@pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")
def test_the_kubelet_refuses_anonymous_requests(kubectl: Kubectl) -> None:
    node = json.loads(kubectl.run("get", "node", "lakejob-real", "-o", "json"))
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    r = subprocess.run(["python3", "-c", f"""
import ssl, urllib.request, urllib.error
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    urllib.request.urlopen("https://{address}:{port}/pods", context=ctx, timeout=5); print(200)
except urllib.error.HTTPError as e:
    print(e.code)
"""], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "401", r.stdout + r.stderr
    assert node["spec"]["taints"] == [{"key": "lakejob.io/real", "value": "true", "effect": "NoSchedule"}]
    assert node["metadata"]["labels"]["lakejob.io/real"] == "true"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
