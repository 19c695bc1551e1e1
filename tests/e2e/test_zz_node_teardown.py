"""`make cluster-down` removes every process, mount, netns, cgroup, iptables chain and link the real
node made, then `make cluster` brings it back. Named to run last (pytest takes files in name order):
it stops the cluster every other test uses, and starts it again for the next run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import CLUSTER
from tests.e2e.kubectl import Kubectl
from tests.e2e.real import REAL_NODE, images, on_real_node

pytestmark = [pytest.mark.e2e, pytest.mark.real, pytest.mark.own_pods]  # a plain pod of its own


def residue() -> dict[str, list[str]]:
    r = subprocess.run([*CLUSTER, "residue"], check=True, capture_output=True, text=True)
    out: dict[str, list[str]] = json.loads(r.stdout)
    return out


@pytest.mark.skipif(not REAL_NODE, reason="LAKEJOB_REAL_NODE=0: no real node")
def test_cluster_down_leaves_nothing_of_the_real_node_and_up_restores_it(kubectl: Kubectl, namespace: str) -> None:
    sleeper = on_real_node({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
        "spec": {"containers": [{"name": "main", "image": images()["operator"], "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                 "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}]}})
    kubectl.apply(sleeper, namespace)
    kubectl.wait_for(lambda: (kubectl.get("pod", "sleeper", namespace) or {}).get("status", {}).get("phase")
                     == "Running", "the sleeper pod to run", timeout=120, namespace=namespace)
    before = residue()
    # While a pod runs, each kind of thing the node makes is there (so the check below can fail).
    for kind in ("processes", "mounts", "netns", "cgroups", "links", "iptables"):
        assert before[kind], f"no {kind} seen while the node runs: {before}"

    down = subprocess.run([*CLUSTER, "down"], capture_output=True, text=True, timeout=180)
    assert down.returncode == 0, down.stderr
    assert residue() == {k: [] for k in before}

    up = subprocess.run([*CLUSTER, "up"], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    assert up.stdout == kubectl.kubeconfig + "\n"  # scripts read the path from stdout: nothing else there
    assert subprocess.run([sys.executable, *CLUSTER[1:], "status"]).returncode == 0
