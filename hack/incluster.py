"""The operator as users run it, on the local cluster: `helm install` of charts/lakejob from the
locally built images (images/build.py), scheduled onto the real node.

Called by hack/demo.py, bench/real_sparkpi.py and the real-tier e2e fixtures (tests/e2e/real.py),
so all three install the same way. Standard library only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "images"))
import build as images  # noqa: E402  (images/build.py)

CACHE = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob"))
HELM = CACHE / "bin" / "helm"
REAL = {"key": "lakejob.io/real", "value": "true"}
TOLERATION = {**REAL, "operator": "Equal", "effect": "NoSchedule"}
SELECTOR = {REAL["key"]: REAL["value"]}


class InstallError(Exception):
    """helm failed; the message has helm's own words."""


def values(watch: list[str], priority_classes: bool = False, **extra: Any) -> dict[str, Any]:
    """Chart values: the local operator, Spark, Flink and task images, the operator on the real node, small
    requests (a 2-core machine), watching `watch`; `extra` keys replace top-level ones."""
    refs = images.names()
    repository, tag = refs["operator"].rsplit(":", 1)
    spark_repository, spark_version = refs["spark"].rsplit(":", 1)
    flink_repository, flink_version = refs["flink"].rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "watchNamespaces": watch,
        # The local image for its own version and for DLI's 2.3 (the seeds' example asks for 2.3.2);
        # a 100m CPU request for pods whose conf sets none (DLI's sc_type A driver wants 2 cores).
        "spark": {"defaultVersion": spark_version, "imageTemplate": spark_repository + ":{version}",
                  "images": {"2.3": refs["spark"]}, "requestCores": "100m"},
        # Every job's pods on the real node, as a pasted vendor body has no placement of its own.
        "workloads": {"nodeSelector": SELECTOR, "tolerations": [TOLERATION]},
        # A CU of 100m and 1 GiB: a JobManager and a TaskManager fit beside the rest on 2 cores.
        "flink": {"defaultVersion": flink_version, "imageTemplate": flink_repository + ":{version}",
                  "cuMillicpu": 100, "cuMemoryMiB": 1024},
        "nodeSelector": SELECTOR, "tolerations": [TOLERATION],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        # PriorityClasses are cluster-wide with fixed names: only one release may own them. DagJob
        # command tasks run in the local task image, by default and for BatchCompute's img-ubuntu.
        "dag": {"priorityClasses": {"create": priority_classes}, "defaultImage": refs["task"],
                "images": {"img-ubuntu": refs["task"]}},
        **extra,
    }


def install(kubeconfig: str, release: str, namespace: str, chart_values: dict[str, Any],
            timeout_s: int = 300) -> None:
    """`helm upgrade --install --wait` into `namespace` (created if absent); CRDs are not touched."""
    r = subprocess.run([str(HELM), "upgrade", "--install", release, str(ROOT / "charts" / "lakejob"),
                        "--namespace", namespace, "--create-namespace", "--skip-crds", "--wait",
                        "--timeout", f"{timeout_s}s", "-f", "-"],
                       input=json.dumps(chart_values), capture_output=True, text=True,
                       env={**os.environ, "KUBECONFIG": kubeconfig}, timeout=timeout_s + 60)
    if r.returncode:
        raise InstallError(f"helm install {release} -n {namespace} failed: {r.stderr.strip()}")


def uninstall(kubeconfig: str, release: str, namespace: str) -> bool:
    r = subprocess.run([str(HELM), "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s"],
                       capture_output=True, text=True, env={**os.environ, "KUBECONFIG": kubeconfig}, timeout=120)
    return r.returncode == 0
