"""Installing and operating lakejob on the real control plane: Helm, kustomize, least-privilege RBAC
proven with the chart's own ServiceAccount token, user roles, no drift, standby replicas."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.kubectl import CACHE, Kubectl, Operator
from tests.e2e import test_dagjob as dag
from tests.e2e import test_flinkjarjob as flink
from tests.e2e.test_sparkbatch import batch, drivers, wait_state

ROOT = Path(__file__).resolve().parents[2]
HELM = str(CACHE / "bin" / "helm")
CHART = str(ROOT / "charts" / "lakejob")
# PriorityClasses are cluster-wide with fixed names: one installation owns them (deploy/base here).
SHARED = ["--set", "dag.priorityClasses.create=false"]
pytestmark = pytest.mark.e2e
sys.path.insert(0, str(ROOT / "hack"))


def helm(kubectl: Kubectl, *args: str) -> str:
    r = subprocess.run([HELM, *args], capture_output=True, text=True, env=kubectl.env, timeout=120)
    assert r.returncode == 0, f"helm {' '.join(args)}: {r.stderr}"
    return r.stdout


def token_kubeconfig(kubectl: Kubectl, namespace: str, account: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest), so real RBAC applies."""
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=2h").strip()
    admin = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}))
    return str(path)


def can_i(kubectl: Kubectl, who: str, *args: str) -> bool:
    r = kubectl.result("auth", "can-i", *args, f"--as={who}")
    return r.stdout.strip() == "yes"


@pytest.fixture
def release(kubectl: Kubectl, crds_installed: None) -> Iterator[tuple[str, str]]:
    """A cluster-wide Helm release of the chart in its own namespace, uninstalled afterwards."""
    ns = kubectl.fresh_namespace("lakejob-sys")
    name = f"lj{uuid.uuid4().hex[:5]}"
    helm(kubectl, "install", name, CHART, "--namespace", ns, "--skip-crds", *SHARED)
    yield name, ns
    helm(kubectl, "uninstall", name, "--namespace", ns)
    kubectl.ok("delete", "namespace", ns, "--wait=false")


def test_helm_lint_is_clean() -> None:
    r = subprocess.run([HELM, "lint", CHART, "--strict"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout


def test_deploy_is_rendered_from_the_chart() -> None:
    import render_deploy

    for rel, text in render_deploy.render().items():
        assert (ROOT / "deploy" / rel).read_text() == text, f"deploy/{rel} drifted from the chart: run `make deploy`"


@pytest.mark.parametrize("sets", [[], ["replicas=2"], ["watchNamespaces={a,b}", "replicas=3"],
                                  ["metrics.enabled=false"]])
def test_helm_template_applies_cleanly_with_server_dry_run(kubectl: Kubectl, namespace: str, sets: list[str]) -> None:
    args = ["template", "x", CHART, "--namespace", namespace, "--skip-crds"]
    for s in sets:
        args += ["--set", s]
    manifests = helm(kubectl, *args)
    for ns in ("a", "b"):
        kubectl.ok("create", "namespace", ns)
    # Objects of a CRD the same manifest creates cannot be dry-run before it exists: apply CRDs first.
    kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=manifests)


@pytest.mark.parametrize("kustomization", ["base", "overlays/namespaced"])
def test_kustomize_applies_twice_without_drift(kubectl: Kubectl, crds_installed: None, kustomization: str) -> None:
    path = str(ROOT / "deploy" / kustomization)
    for _ in range(2):
        kubectl.run("apply", "--server-side", "--force-conflicts", "-k", path)
    diff = kubectl.result("diff", "--server-side", "--force-conflicts", "-k", path)
    assert diff.returncode == 0, diff.stdout[-3000:] + diff.stderr


def test_examples_apply_twice_without_drift(kubectl: Kubectl, namespace: str, operator: Operator) -> None:
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        kubectl.run("apply", "-n", namespace, "-f", str(example))
    # Once the operator has written every status, the spec must still not drift.
    kubectl.wait_for(lambda: (items := kubectl.list("lakejob", namespace)) and all(i.get("status") for i in items),
                     "every example to have a status", namespace=namespace)
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        kubectl.run("apply", "-n", namespace, "-f", str(example))
        diff = kubectl.result("diff", "-n", namespace, "-f", str(example))
        assert diff.returncode == 0, f"{example.name}: {diff.stdout[-2000:]}{diff.stderr}"


def test_the_chart_rbac_is_sufficient_and_no_broader(
        kubectl: Kubectl, release: tuple[str, str], tmp_path: Path, priority_classes: None) -> None:
    name, ns = release
    sa = f"system:serviceaccount:{ns}:{name}"
    jobs = kubectl.fresh_namespace()
    cfg = token_kubeconfig(kubectl, ns, name, tmp_path / "sa.kubeconfig")
    op = Operator(cfg, ["--namespace", jobs], tmp_path / "op.log")
    try:
        op.start()
        kubectl.apply(batch("ok", "succeed"), jobs)
        kubectl.apply(batch("retried", "fail", auto_recovery=True, max_retry_times=1), jobs)
        kubectl.apply(flink.job("stream", "succeed", cu_number=3), jobs)
        spark_task = {"sparkBatch": batch("t", "succeed")["spec"]}
        kubectl.apply(dag.dagjob("flow", {"prep": dag.command(), "spark": spark_task}, {"prep": ["spark"]},
                                 Priority=600), jobs)
        wait_state(kubectl, "ok", jobs, "success")
        wait_state(kubectl, "retried", jobs, "dead")
        flink.wait_status(kubectl, "stream", jobs, "job_finish")
        dag.wait_state(kubectl, "flow", jobs, "Finished", timeout=90)
        assert "Forbidden" not in op.output() and "forbidden" not in op.output(), op.output()
    finally:
        op.stop()
        kubectl.ok("delete", "namespace", jobs, "--wait=false")
    assert not can_i(kubectl, sa, "get", "secrets", "-A")
    assert not can_i(kubectl, sa, "list", "secrets", "-n", "kube-system")
    assert not can_i(kubectl, sa, "delete", "namespaces")
    assert not can_i(kubectl, sa, "create", "daemonsets", "-n", ns)
    assert not can_i(kubectl, sa, "patch", "nodes")
    assert not can_i(kubectl, sa, "create", "clusterrolebindings")
    assert not can_i(kubectl, sa, "update", "sparkbatches.lakejob.io", "-A")  # only status


def test_namespaced_install_cannot_touch_other_namespaces(
        kubectl: Kubectl, crds_installed: None, tmp_path: Path) -> None:
    ns = kubectl.fresh_namespace("lakejob-sys")
    jobs = kubectl.fresh_namespace()
    name = f"lj{uuid.uuid4().hex[:5]}"
    helm(kubectl, "install", name, CHART, "--namespace", ns, "--skip-crds", *SHARED,
         "--set", f"watchNamespaces={{{jobs}}}")
    sa = f"system:serviceaccount:{ns}:{name}"
    op = Operator(token_kubeconfig(kubectl, ns, name, tmp_path / "sa.kubeconfig"), ["--namespace", jobs],
                  tmp_path / "op.log")
    try:
        assert can_i(kubectl, sa, "create", "pods", "-n", jobs)
        assert not can_i(kubectl, sa, "create", "pods", "-n", "default")
        assert not can_i(kubectl, sa, "list", "sparkbatches.lakejob.io", "-n", "default")
        assert not can_i(kubectl, sa, "get", "secrets", "-n", jobs)
        op.start()
        kubectl.apply(batch("scoped", "succeed"), jobs)
        wait_state(kubectl, "scoped", jobs, "success")
    finally:
        op.stop()
        helm(kubectl, "uninstall", name, "--namespace", ns)
        for n in (ns, jobs):
            kubectl.ok("delete", "namespace", n, "--wait=false")


def test_edit_users_create_our_resources_and_view_users_only_read(
        kubectl: Kubectl, release: tuple[str, str], namespace: str) -> None:
    kubectl.run("create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", namespace)
    kubectl.run("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", namespace)

    def aggregated() -> bool:
        return can_i(kubectl, "alice", "create", "sparkbatches.lakejob.io", "-n", namespace)

    kubectl.wait_for(aggregated, "the edit role to aggregate lakejob's rules")
    assert can_i(kubectl, "alice", "delete", "sparkbatches.lakejob.io", "-n", namespace)
    assert can_i(kubectl, "bob", "list", "sparkbatches.lakejob.io", "-n", namespace)
    assert can_i(kubectl, "bob", "get", "sparkbatches.lakejob.io", "-n", namespace)
    assert not can_i(kubectl, "bob", "create", "sparkbatches.lakejob.io", "-n", namespace)
    assert not can_i(kubectl, "alice", "create", "sparkbatches.lakejob.io", "-n", "default")


def test_two_replicas_with_peering_one_acts_and_the_standby_takes_over(
        kubectl: Kubectl, kubeconfig: str, crds_installed: None, tmp_path: Path) -> None:
    peering_crd = helm(kubectl, "template", "x", CHART, "--set", "replicas=2", "--set", "watchNamespaces={x}",
                       "--show-only", "templates/peering.yaml")
    kubectl.run("apply", "-f", "-", stdin=peering_crd)
    kubectl.run("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=30s")
    jobs = kubectl.fresh_namespace()
    lifetime = 6
    env = {"LAKEJOB_PEERING_LIFETIME_SECONDS": str(lifetime)}
    args = ["--namespace", jobs, "--peering", "lakejob"]
    active = Operator(kubeconfig, [*args, "--priority", "200"], tmp_path / "active.log", env=env)
    standby = Operator(kubeconfig, [*args, "--priority", "100"], tmp_path / "standby.log", env=env)
    try:
        # Both start paused; kopf resumes only the replica with the highest priority.
        active.start()
        kubectl.wait_for(lambda: "Resuming operations" in active.output(), "the active replica to act")
        standby.start()

        def peers() -> int:
            peering = kubectl.get("kopfpeerings.kopf.dev", "lakejob", jobs) or {}
            return len(peering.get("status") or {})

        kubectl.wait_for(lambda: peers() == 2, "the standby to register in the peering object")
        kubectl.apply(batch("first"), jobs)
        wait_state(kubectl, "first", jobs, "running")
        assert "Resuming operations" not in standby.output(), standby.output()
        active.kill()
        killed_at = time.monotonic()
        kubectl.wait_for(lambda: "Resuming operations" in standby.output(), "the standby to take over",
                         timeout=lifetime * 3 + 10)
        took = time.monotonic() - killed_at
        assert took <= lifetime * 3 + 10  # docs/install.md: within peering.lifetimeSeconds (+ one check)
        kubectl.apply(batch("second", "succeed"), jobs)
        wait_state(kubectl, "second", jobs, "success")
        assert drivers(kubectl, jobs, "first") == ["first-driver-1"]
        assert drivers(kubectl, jobs, "second") == ["second-driver-1"]
    finally:
        standby.stop()
        active.stop()
        kubectl.ok("delete", "namespace", jobs, "--wait=false")


@pytest.mark.parametrize("replicas", [1, 2])
def test_standby_pieces_appear_only_with_replicas(kubectl: Kubectl, replicas: int) -> None:
    docs = [d for d in yaml.safe_load_all(helm(kubectl, "template", "x", CHART, "--set", f"replicas={replicas}")) if d]
    kinds = {d["kind"] for d in docs}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    if replicas == 1:
        assert "PodDisruptionBudget" not in kinds and deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert not any(a.startswith("--peering") for a in args)
    else:
        assert "PodDisruptionBudget" in kinds and "strategy" not in deployment["spec"]
        assert "--peering=lakejob" in args
        assert any(d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
                   for d in docs)
    security = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert security == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}}
