"""lakejob's Argo CD customisations (docs/argocd) in a real Argo CD: v2.14, built from Go modules by
hack/argocd/build.sh (the first run builds it, minutes; then it is cached).

- Argo CD's own Lua VM (gopher-lua, through `argocd admin settings resource-overrides` reading
  docs/argocd/argocd-cm.yaml) gives every case of every health_test.yaml and action_test.yaml the
  result the file expects: the cases tests/unit/test_argocd.py runs in lupa.
- A user's GitOps setup: an Application syncs lakejob's examples from a local git repository
  (file://) into a fresh namespace, the session's operator runs them on KWOK, and the application
  controller reports each one's health through lakejob's Lua from argocd-cm: a finished batch and a
  running stream Healthy, a running batch Progressing, a batch out of retries Degraded; a commit that
  stops the running batch is synced and shows as Suspended.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.argocd import ArgoCD, ArgoCDError, build
from tests.e2e.kubectl import Kubectl, Operator

ROOT = Path(__file__).resolve().parents[2]
ARGOCD_CM = ROOT / "docs" / "argocd" / "argocd-cm.yaml"
TREE = ROOT / "docs" / "argocd" / "resource_customizations" / "lakejob.io"
# (file in examples/, kind, name) → (health, start of the message) once the operator has run it on KWOK.
EXAMPLES = {
    ("sparkbatch-pi.yaml", "SparkBatch", "pyspark-pi"): ("Healthy", "success: "),  # the fake driver succeeds
    ("sparkbatch-retry.yaml", "SparkBatch", "flaky-etl"): ("Degraded", "dead: "),  # every driver fails
    ("sparkbatch-dli.yaml", "SparkBatch", "dli-testdemo4"): ("Progressing", "running: "),  # its driver never ends
    ("flinkjarjob-dli.yaml", "FlinkJarJob", "dli-test"): ("Healthy", "Running (job_running)"),
    ("dagjob-batchcompute.yaml", "DagJob", "testjob"): ("Healthy", "Finished: "),
}


@pytest.fixture(scope="session")
def argocd_binary() -> Path:
    try:
        return build()
    except ArgoCDError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def argocd(argocd_binary: Path, kubectl: Kubectl, crds_installed: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    # Outside the session operator's e2eXXXX-* namespaces: Argo CD's own objects are not lakejob's business.
    cd = ArgoCD(argocd_binary, kubectl, f"argocd-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("argocd"))
    try:
        cd.start()
    except ArgoCDError as e:
        cd.stop()
        pytest.fail(str(e), pytrace=False)
    yield cd
    cd.stop()


def overrides(binary: Path, *args: str) -> str:
    """`argocd admin settings resource-overrides …` with docs/argocd/argocd-cm.yaml: Argo CD's Lua VM, no cluster.
    Its diff tool prints the action's result whole (the file it would compare the live object with)."""
    r = subprocess.run([str(binary), "admin", "settings", "resource-overrides", *args, "--argocd-cm-path", str(ARGOCD_CM)],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "KUBECTL_EXTERNAL_DIFF": "sh -c 'cat \"$2\"' argocd-diff"})
    assert r.returncode == 0, f"argocd admin {' '.join(args)}: {r.stderr[-2000:]}"
    return r.stdout


def test_argo_cds_lua_vm_gives_every_case_its_expected_result(argocd_binary: Path) -> None:
    wrong = []
    for test_file in sorted(TREE.glob("*/health_test.yaml")):
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            out = overrides(argocd_binary, "health", str(test_file.parent / case["inputPath"]))
            got = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
            want = {"STATUS": case["healthStatus"]["status"], "MESSAGE": case["healthStatus"]["message"]}
            if got != want:
                wrong.append(f"{test_file.parent.name}/{case['inputPath']}: {got} != {want}")
    for test_file in sorted(TREE.glob("*/actions/action_test.yaml")):
        folder, cases = test_file.parent, yaml.safe_load(test_file.read_text())
        for case in cases["discoveryTests"]:
            out = overrides(argocd_binary, "list-actions", str(folder / case["inputPath"]))
            listed = {name: disabled == "true" for name, disabled in (line.split() for line in out.splitlines()[1:])}
            offered = {a["name"]: a["disabled"] for a in case["result"]}
            if listed != offered:
                wrong.append(f"{folder.parent.name}/actions/{case['inputPath']}: {listed} != {offered}")
        for case in cases["actionTests"]:
            out = overrides(argocd_binary, "run-action", str(folder / case["inputPath"]), case["action"])
            result = yaml.safe_load(out.split("\n\n", 1)[1])
            expected = yaml.safe_load((folder / case["expectedOutputPath"]).read_text())
            if result != expected:
                wrong.append(f"{folder.parent.name}/actions/{case['action']} on {case['inputPath']}: "
                             f"{result} != {expected}")
    assert not wrong, "\n".join(wrong)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=lakejob-e2e", "-c", "user.email=e2e@lakejob.io",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def resource_health(status: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, name) → (health, message) of each resource, as an Application's status reports them."""
    return {(r["kind"], r["name"]): ((r.get("health") or {}).get("status", ""), (r.get("health") or {}).get("message", ""))
            for r in status.get("resources") or []}


def test_argo_cd_syncs_the_examples_from_git_and_reports_their_health_through_lakejobs_lua(
        argocd: ArgoCD, kubectl: Kubectl, namespace: str, operator: Operator, tmp_path: Path,
        priority_classes: None) -> None:  # the DagJob example's task pods name the chart's PriorityClasses
    repo = tmp_path / "gitops"
    (repo / "jobs").mkdir(parents=True)
    for file, _, _ in EXAMPLES:
        (repo / "jobs" / file).write_text((ROOT / "examples" / file).read_text())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "jobs")
    git(repo, "commit", "-q", "-m", "lakejob examples")
    app = "lakejob-examples"
    kubectl.apply({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": {"name": app, "namespace": argocd.namespace},
                   "spec": {"project": "default",
                            "source": {"repoURL": f"file://{repo}", "targetRevision": "main", "path": "jobs"},
                            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
                            "syncPolicy": {"automated": {}}}}, argocd.namespace)

    def settled(expected: dict[tuple[str, str], tuple[str, str]]) -> dict[str, Any]:
        """The Application's status once every resource has its expected health, else {}."""
        status: dict[str, Any] = argocd.application(app).get("status") or {}
        healths = resource_health(status)
        ok = all(k in healths and healths[k][0] == h and healths[k][1].startswith(m) for k, (h, m) in expected.items())
        return status if ok else {}

    def why() -> str:
        return (f"\n--- Application status:\n{json.dumps(argocd.application(app).get('status'), indent=1)[-4000:]}"
                f"\n--- application-controller log:\n{argocd.log('application-controller')[-3000:]}")

    expected = {(kind, name): want for (_, kind, name), want in EXAMPLES.items()}
    try:
        status = kubectl.wait_for(lambda: settled(expected), "Argo CD to sync the examples and judge them",
                                  timeout=240, namespace=namespace)
    except AssertionError as e:
        raise AssertionError(f"{e}{why()}") from None
    assert status["sync"]["status"] == "Synced"
    # An app is as healthy as its least healthy resource: the batch out of retries.
    assert status["health"]["status"] == "Degraded"

    # Stop the running batch the GitOps way: a commit; the refresh annotation is the UI's Refresh button.
    path = repo / "jobs" / "sparkbatch-dli.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["suspend"] = True
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "commit", "-q", "-am", "stop dli-testdemo4")
    revision = git(repo, "rev-parse", "HEAD")
    kubectl.run("annotate", "applications.argoproj.io", app, "-n", argocd.namespace, "--overwrite",
                "argocd.argoproj.io/refresh=hard")
    expected[("SparkBatch", "dli-testdemo4")] = ("Suspended", "killed: stopped by spec.suspend")
    try:
        kubectl.wait_for(lambda: settled(expected).get("sync", {}).get("revision") == revision,
                         "Argo CD to sync the stop and show it Suspended", timeout=120, namespace=namespace)
    except AssertionError as e:
        raise AssertionError(f"{e}{why()}") from None
    assert (kubectl.get("sparkbatch", "dli-testdemo4", namespace) or {}).get("spec", {}).get("suspend") is True
