"""`helm template` of charts/lakejob for the chart's unit tests (test_chart_install, test_chart_rbac,
test_policy): the locally built helm, told the Kubernetes version the project tests against, since
Chart.yaml's kubeVersion is checked against it and a helm built from source assumes 1.20."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lakejob"
HELM = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob")) / "bin" / "helm"
KUBECTL = HELM.parent / "kubectl"
sys.path.insert(0, str(REPO / "hack"))
from render_deploy import KUBE_VERSION  # noqa: E402  (hack/render_deploy.py, which renders deploy/ with it)

needs_helm = pytest.mark.skipif(not HELM.exists(), reason=f"no helm at {HELM} (make tools builds it)")


def helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), "template", "lakejob", str(chart), "--namespace", "lakejob-system",
                           "--kube-version", KUBE_VERSION, *args], capture_output=True, text=True)


def template(*sets: str, api_versions: tuple[str, ...] = (), chart: Path = CHART) -> list[dict[str, Any]]:
    """The chart's objects with `sets` (--set KEY=VALUE each) and the extra API versions."""
    args = [a for s in sets for a in ("--set", s)] + [a for v in api_versions for a in ("--api-versions", v)]
    r = helm("--skip-crds", *args, chart=chart)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str = "lakejob") -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
