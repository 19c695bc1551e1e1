"""Fixtures for the end-to-end tests: the real local control plane, a namespace per test, the operator.

The control plane (hack/cluster/cluster.py) is started once per session if it is not already
running and left running afterwards (a warm cluster makes the next `make test` fast; `make
cluster-down` stops it). The binaries must have been built (`make tools`, which `make test` runs).
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import kueue as kueue_mod
from tests.e2e import objectstore
from tests.e2e.kubectl import Kubectl, Operator

import render_deploy  # noqa: E402,I001  (hack/render_deploy.py, on the path tests.e2e.kubectl sets: the chart rendered)
from tests.e2e.objectstore import ObjectStore

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster" / "cluster.py")]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fault tests (test_faults.py: bursts of 500 CRs per kind, on control planes of their own)
    run only when a marker expression names them: `make test-faults` (-m faults)."""
    if "faults" in (config.getoption("markexpr") or ""):
        return
    faults = [item for item in items if item.get_closest_marker("faults")]
    if faults:
        config.hook.pytest_deselected(items=faults)
        items[:] = [item for item in items if not item.get_closest_marker("faults")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the session operator shows what it logged last (and whether it still
    runs): CI's output is all there is to go on, and a CR without a status says little by itself."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    op = getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(op, Operator):
        report.sections.append(("the session operator", op.state() + "\n" + op.output()[-3000:]))


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    r = subprocess.run([*CLUSTER, "up"], capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"could not start the local control plane: {r.stderr.strip()}", pytrace=False)
    # A demo operator watching every namespace would race the operators the tests start.
    subprocess.run([*CLUSTER, "stop-operator"], check=True, capture_output=True)
    return r.stdout.strip()


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="session")
def crds_installed(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    kubectl.wait_established("-l", "app.kubernetes.io/part-of=lakejob")


RESTRICTED = "pod-security.kubernetes.io/enforce"
# Unique per pytest session, so two sessions on one cluster never share an operator's namespaces.
PREFIX = f"e2e{uuid.uuid4().hex[:4]}"


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named after it, deleted afterwards (without waiting).

    Pod Security Admission enforces `restricted` there, as a hardened cluster would: every pod the
    operator makes must pass it. Tests that make plain pods of their own are marked `own_pods`."""
    name = f"{PREFIX}-{request.node.name.lower().replace('_', '-')[:40].strip('-[]')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    kubectl.run("create", "namespace", name)
    if "own_pods" not in request.keywords:
        kubectl.run("label", "namespace", name, f"{RESTRICTED}=restricted")
    # The controller-manager's ServiceAccount controller must be there before pods can be made.
    kubectl.wait_for(lambda: kubectl.ok("get", "serviceaccount", "default", "-n", name), "default ServiceAccount",
                     timeout=30)
    yield name
    kubectl.ok("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def priority_classes(kubectl: Kubectl) -> None:
    """The PriorityClasses the chart installs (DagJob pods name them), from the chart itself."""
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": render_deploy.priority_classes()})


@pytest.fixture(scope="session")
def kueue(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kueue_mod.Kueue]:
    """Kueue's manager out of cluster, once per session; its CRDs go with it (tests/e2e/kueue.py).

    The tests that use it (marker `kueue`) run in a pytest session of their own (`make test` runs it
    after the others): while Kueue runs, every job naming a queue goes through it, and a SparkSession
    always names one, so the other sessions' tests would wait for LocalQueues they never make. They
    ask for it before any operator, and its CRDs go once the session's operators are gone (session
    fixtures end in the reverse order of their start): an operator would otherwise restart itself
    when Kueue comes or goes (docs/queues.md, "Installing or removing Kueue"; test_kueue_restart.py
    tests that, in the first session)."""
    yield from kueue_mod.serve(kubectl, tmp_path_factory)


@pytest.fixture
def queue(kueue: kueue_mod.Kueue, kubectl: Kubectl, namespace: str) -> Iterator[kueue_mod.Queue]:
    """A queue of 4 CUs (DLI's 1 CU = 1 vCPU + 4 GiB) in the test's namespace: LocalQueue `dli-queue`."""
    yield from kueue_mod.local_queue(kubectl, namespace, {"cpu": "4", "memory": "16Gi"})


@pytest.fixture
def real_queue(kueue: kueue_mod.Kueue, kubectl: Kubectl, real_namespace: str) -> Iterator[kueue_mod.Queue]:
    """A LocalQueue `real-queue` in the real tier's namespace: room for one small real job (the
    in-cluster operator's CU is 100m and 1 GiB, hack/incluster.py)."""
    yield from kueue_mod.local_queue(kubectl, real_namespace, {"cpu": "1", "memory": "4Gi"}, name="real-queue")


@pytest.fixture(scope="session")
def operator(kubeconfig: str, crds_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """One operator for the session, watching this session's namespaces, as `lakejob run` (a subprocess)."""
    op = Operator(kubeconfig, ["--namespace", f"{PREFIX}-*"], tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="session")
def real_namespace(kubectl: Kubectl, crds_installed: None) -> Iterator[str]:
    """The one namespace the in-cluster operator watches; the real-tier tests make their CRs here,
    under Pod Security `restricted` (real drivers and executors pass it)."""
    ns = kubectl.fresh_namespace("real")
    kubectl.run("label", "namespace", ns, f"{RESTRICTED}=restricted")
    yield ns
    kubectl.ok("delete", "namespace", ns, "--wait=false")


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """moto's S3 server on an address the real node's pods reach (tests/e2e/objectstore.py)."""
    from tests.e2e.real import REAL_NODE

    yield from objectstore.serve(REAL_NODE)


@pytest.fixture(scope="session")
def incluster_operator(kubectl: Kubectl, real_namespace: str,
                       object_store: ObjectStore) -> Iterator[tuple[str, str]]:
    """The operator as users run it: `helm install` of the chart with the locally built image, on the
    real node, with only the chart's RBAC, watching `real_namespace`, its package store in
    `object_store` (the store's keys a Secret in `real_namespace`), and its gateway (two replicas; its
    keys file the Secret GATEWAY_KEYS: Livy user `real`, standing for GATEWAY_USER in
    `real_namespace`). Yields (release, namespace)."""
    from tests.e2e.real import GATEWAY_KEYS, gateway_keys, install_chart, uninstall_chart

    kubectl.run("apply", "-n", real_namespace, "-f", "-", stdin=json.dumps(object_store.secret()))
    release, ns = install_chart(
        kubectl, real_namespace, before=lambda ns: kubectl.apply(gateway_keys(real_namespace), ns),
        stores=object_store.chart_values(),
        gateway={"enabled": True, "replicas": 2, "keysSecret": GATEWAY_KEYS,
                 "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}})
    yield release, ns
    uninstall_chart(kubectl, release, ns)
