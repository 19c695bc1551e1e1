"""The ClusterRoles the chart aggregates into Kubernetes' edit and admin roles never let users write
a lakejob status (or any other subresource): status is the operator's record of what ran.

Checked on the chart rendered by helm (when the local toolchain has built it), on deploy/base (the
chart as hack/render_deploy.py rendered it; the e2e install test keeps it in step with the chart),
and on the template itself with its few template expressions stubbed out, so the check runs on a
machine without helm too.
"""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakejob import crds
from tests.unit.chart import KUBE_VERSION

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lakejob"
HELM = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob")) / "bin" / "helm"
AGGREGATE = ("rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-admin")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}
PLURALS = {k.plural for k in crds.KINDS}


def aggregated_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == "ClusterRole"
            and any((d["metadata"].get("labels") or {}).get(label) == "true" for label in AGGREGATE)]


def lakejob_writes(role: dict[str, Any]) -> Iterator[str]:
    """Each lakejob.io resource the role lets its holder write."""
    for rule in role.get("rules") or []:
        if set(rule.get("apiGroups") or []) & {"lakejob.io", "*"} and set(rule.get("verbs") or []) & WRITE_VERBS:
            yield from rule.get("resources") or []


def status_writers(docs: list[dict[str, Any]]) -> list[str]:
    """"role: resource" for every write grant that reaches a subresource: `*` matches subresources
    too in RBAC, and `x/status`, `*/status` name them."""
    return [f"{role['metadata']['name']}: {res}" for role in aggregated_roles(docs) for res in lakejob_writes(role)
            if res == "*" or "/" in res]


def template_without_helm(path: Path) -> list[dict[str, Any]]:
    """A template's YAML with its directives stubbed: whole-line ones dropped, inline ones replaced."""
    lines = [line for line in path.read_text().splitlines() if not re.fullmatch(r"\s*\{\{.*\}\}\s*", line)]
    text = re.sub(r"\{\{.*?\}\}", "x", "\n".join(lines))
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(*sets: str) -> list[dict[str, Any]]:
    args = [str(HELM), "template", "lakejob", str(CHART), "--namespace", "lakejob-system", "--skip-crds",
            "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def sources() -> Iterator[Any]:
    yield pytest.param(lambda: template_without_helm(CHART / "templates" / "user-roles.yaml"), id="template")
    yield pytest.param(lambda: [d for d in yaml.safe_load_all((REPO / "deploy/base/lakejob.yaml").read_text()) if d],
                       id="deploy-base")
    needs_helm = pytest.mark.skipif(not HELM.exists(), reason=f"no helm at {HELM} (make tools builds it)")
    yield pytest.param(helm_template, id="helm-default", marks=needs_helm)
    yield pytest.param(lambda: helm_template("watchNamespaces={team-a}"), id="helm-namespaced", marks=needs_helm)


@pytest.mark.parametrize("render", list(sources()))
def test_aggregated_roles_never_write_status(render: Any) -> None:
    docs = render()
    roles = aggregated_roles(docs)
    assert {r["metadata"]["name"].rsplit("-", 1)[-1] for r in roles} == {"view", "edit"}
    assert status_writers(docs) == []


@pytest.mark.parametrize("render", list(sources()))
def test_edit_role_writes_every_kind_by_name(render: Any) -> None:
    """Listing the kinds instead of `*` must not forget one: users create and delete every kind."""
    (edit,) = [r for r in aggregated_roles(render()) if r["metadata"]["name"].endswith("-edit")]
    assert set(lakejob_writes(edit)) == PLURALS


def test_the_check_catches_a_wildcard_and_a_status_grant() -> None:
    def role(resources: list[str], verbs: list[str]) -> dict[str, Any]:
        return {"kind": "ClusterRole", "metadata": {"name": "r-edit", "labels": {AGGREGATE[0]: "true"}},
                "rules": [{"apiGroups": ["lakejob.io"], "resources": resources, "verbs": verbs}]}

    assert status_writers([role(["*"], ["patch"])]) == ["r-edit: *"]
    assert status_writers([role(["sparkbatches/status"], ["update"])]) == ["r-edit: sparkbatches/status"]
    assert status_writers([role(["*"], ["get", "list", "watch"])]) == []  # reading status is fine
    assert status_writers([role(["sparkbatches"], ["*"])]) == []
