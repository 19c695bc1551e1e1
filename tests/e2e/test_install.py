"""Installing and operating lakejob on the real control plane: Helm, kustomize, least-privilege RBAC
proven with the chart's own ServiceAccount token, user roles, kustomize applied twice without drift, standby
replicas (leader election). deploy/ rendered from the chart: tests/unit/test_chart_install.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.kubectl import CACHE, KUBE_VERSION, Kubectl, Operator
from tests.e2e import test_dagjob as dag
from tests.e2e import test_flinkjarjob as flink
from tests.e2e.test_sparkbatch import batch, drivers, wait_state

ROOT = Path(__file__).resolve().parents[2]
HELM = str(CACHE / "bin" / "helm")
CHART = str(ROOT / "charts" / "lakejob")
# PriorityClasses are cluster-wide with fixed names: one installation owns them (deploy/base here).
SHARED = ["--set", "dag.priorityClasses.create=false"]
pytestmark = pytest.mark.e2e


def helm(kubectl: Kubectl, *args: str) -> str:
    # `install` asks the apiserver its version; `template` is told (Chart.yaml's kubeVersion).
    args = (*args, "--kube-version", KUBE_VERSION) if args[0] == "template" else args
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
    # status is the operator's: editors read it (view) but cannot write it (tests/unit/test_chart_rbac.py)
    for kind in ("sparkbatches", "sparksessions", "flinkjarjobs", "dagjobs"):
        assert not can_i(kubectl, "alice", "patch", f"{kind}.lakejob.io", "--subresource=status", "-n", namespace)
    assert can_i(kubectl, "alice", "get", "sparkbatches.lakejob.io", "--subresource=status", "-n", namespace)


# Short lease settings, so a failover takes seconds (the chart's defaults: 15, 10, 2).
LEASE = {"duration": 6, "renew_deadline": 4, "retry": 1}
LEASE_ENV = {"LAKEJOB_LEADER_LEASE_DURATION_SECONDS": str(LEASE["duration"]),
             "LAKEJOB_LEADER_RENEW_DEADLINE_SECONDS": str(LEASE["renew_deadline"]),
             "LAKEJOB_LEADER_RETRY_PERIOD_SECONDS": str(LEASE["retry"])}


@pytest.fixture
def replicas(kubectl: Kubectl, crds_installed: None, tmp_path: Path) -> Iterator[tuple[Operator, Operator, str, str]]:
    """Two `lakejob run --leader-elect` replicas as the chart runs them (replicas=2): its
    ServiceAccount's token, the Lease in the release namespace (POD_NAMESPACE). Not started.
    Yields (first, second, release namespace, jobs namespace)."""
    ns = kubectl.fresh_namespace("lakejob-sys")
    jobs = kubectl.fresh_namespace()
    name = f"lj{uuid.uuid4().hex[:5]}"
    helm(kubectl, "install", name, CHART, "--namespace", ns, "--skip-crds", *SHARED,
         "--set", "replicas=2", "--set", f"watchNamespaces={{{jobs}}}")
    cfg = token_kubeconfig(kubectl, ns, name, tmp_path / "sa.kubeconfig")
    args = ["--namespace", jobs, "--leader-elect"]
    first, second = (Operator(cfg, args, tmp_path / f"{pod}.log", env={**LEASE_ENV, "POD_NAMESPACE": ns, "POD_ID": pod})
                     for pod in ("first", "second"))
    try:
        yield first, second, ns, jobs
    finally:
        for op in (first, second):
            if op.proc and op.proc.poll() is None:
                os.killpg(op.proc.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM until then
            op.stop()
        helm(kubectl, "uninstall", name, "--namespace", ns)
        for n in (ns, jobs):
            kubectl.ok("delete", "namespace", n, "--wait=false")


def lead_and_stand_by(kubectl: Kubectl, first: Operator, second: Operator) -> None:
    first.start()
    kubectl.wait_for(lambda: "became the leader" in first.output(), "the first replica to lead")
    second.start()
    kubectl.wait_for(lambda: "standing by" in second.output(), "the second replica to stand by")


def test_a_frozen_leader_is_replaced_and_when_it_resumes_it_exits_without_acting(
        kubectl: Kubectl, replicas: tuple[Operator, Operator, str, str]) -> None:
    first, second, ns, jobs = replicas
    lead_and_stand_by(kubectl, first, second)
    kubectl.apply(batch("before"), jobs)  # runs until the end of the test
    wait_state(kubectl, "before", jobs, "running")
    assert "became the leader" not in second.output()
    assert first.proc is not None
    os.killpg(first.proc.pid, signal.SIGSTOP)  # frozen past its lease, its watch events piling up unread
    frozen = time.monotonic()
    kubectl.apply(batch("during", "succeed"), jobs)
    wait_state(kubectl, "during", jobs, "starting", "running", "success", timeout=60)
    failover = time.monotonic() - frozen
    assert "became the leader" in second.output()
    kubectl.apply(batch("after", "succeed"), jobs)
    wait_state(kubectl, "after", jobs, "success")
    os.killpg(first.proc.pid, signal.SIGCONT)
    assert first.proc.wait(timeout=30) == 1
    assert "lost the leader lease" in first.output(), first.output()
    wait_state(kubectl, "during", jobs, "success")
    for name in ("before", "during", "after"):
        assert drivers(kubectl, jobs, name) == [f"{name}-driver-1"]
    # Every Event once: a resumed old leader posting what the new one posted shows up as a repeat.
    events = [(e["involvedObject"]["name"], e["reason"], e["message"]) for e in kubectl.list("events", jobs)
              if e["involvedObject"]["kind"] == "SparkBatch"]
    assert events and len(events) == len(set(events)), sorted(events)
    spec = (kubectl.get("lease", "lakejob", ns) or {})["spec"]
    assert spec["holderIdentity"].startswith("second_") and spec["leaseTransitions"] == 1
    print(f"\nfailover (SIGSTOP of the leader → the standby's first status write), lease "
          f"{LEASE['duration']} s / renew deadline {LEASE['renew_deadline']} s / retry {LEASE['retry']} s: "
          f"{failover:.1f} s")
    # docs/install.md, docs/reliability.md: a standby takes over after the lease duration plus up to a
    # retry period and its own start (listing the CRs).
    assert failover <= LEASE["duration"] + 2 * LEASE["retry"] + 10


def test_a_stopped_leader_gives_the_lease_to_the_standby_at_once(
        kubectl: Kubectl, replicas: tuple[Operator, Operator, str, str]) -> None:
    first, second, _, jobs = replicas
    lead_and_stand_by(kubectl, first, second)
    stopped = time.monotonic()
    first.stop()  # SIGTERM, as at a rolling update or a node drain
    kubectl.wait_for(lambda: "became the leader" in second.output(), "the standby to lead")
    handover = time.monotonic() - stopped
    assert "released lease" in first.output(), first.output()
    kubectl.apply(batch("next", "succeed"), jobs)
    wait_state(kubectl, "next", jobs, "success")
    print(f"\nhandover (SIGTERM of the leader → the standby leads): {handover:.1f} s")
    assert handover < LEASE["duration"]  # it did not wait for the lease to run out


@pytest.mark.parametrize("replicas", [1, 2])
def test_standby_pieces_appear_only_with_replicas(kubectl: Kubectl, replicas: int) -> None:
    docs = [d for d in yaml.safe_load_all(helm(kubectl, "template", "x", CHART, "--set", f"replicas={replicas}")) if d]
    kinds = {d["kind"] for d in docs}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    lease_roles = [d for d in docs if d["kind"] in ("Role", "RoleBinding") and "leader" in d["metadata"]["name"]]
    assert "CustomResourceDefinition" not in kinds  # no kopf peering, whatever the replicas
    if replicas == 1:
        assert "PodDisruptionBudget" not in kinds and deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert "--leader-elect" not in args and "LAKEJOB_LEADER_LEASE_NAME" not in env and not lease_roles
    else:
        assert "PodDisruptionBudget" in kinds and "strategy" not in deployment["spec"]
        assert "--leader-elect" in args
        assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert env["LAKEJOB_LEADER_LEASE_NAME"]["value"] == "lakejob"
        role = next(d for d in lease_roles if d["kind"] == "Role")
        assert role["metadata"]["namespace"] == "default"  # the release namespace
        assert role["rules"] == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["lakejob"],
             "verbs": ["get", "update"]}]
    security = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert security == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}}
