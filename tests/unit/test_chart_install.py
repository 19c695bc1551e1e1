"""What installing lakejob renders: the chart's install values (pull secrets, service account,
security contexts, priority, pod labels, placement, `global`), the ServiceMonitor only where its
API exists, the DagJob PriorityClasses' preemption, NOTES.txt, the supported Kubernetes versions,
and deploy/ (kustomize): rendered from the chart, without Helm's labels, and an `images:` override
that reaches every image the operator starts."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart import CHART, KUBECTL, REPO, helm, needs_helm, one, template

pytestmark = needs_helm
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                  "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}}
SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployment name → its pod template."""
    return {d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] == "Deployment"}


def test_defaults_are_restricted_and_add_nothing() -> None:
    templates = pods(template("gateway.enabled=true"))
    assert set(templates) == {"lakejob", "lakejob-gateway"}
    for pod in templates.values():
        spec = pod["spec"]
        assert spec["securityContext"] == RESTRICTED_POD
        assert [c["securityContext"] for c in spec["containers"]] == [RESTRICTED_CONTAINER]
        assert not {"imagePullSecrets", "priorityClassName", "nodeSelector", "tolerations", "affinity",
                    "topologySpreadConstraints"} & set(spec)
        assert "annotations" not in pod["metadata"]


@pytest.mark.parametrize(("sets", "where", "expected"), [
    (["imagePullSecrets[0].name=regcred"], "imagePullSecrets", [{"name": "regcred"}]),
    (["priorityClassName=platform-critical"], "priorityClassName", "platform-critical"),
    (["podSecurityContext.fsGroup=10001"], "securityContext", {**RESTRICTED_POD, "fsGroup": 10001}),
    (["podSecurityContext.runAsUser=20000"], "securityContext", {**RESTRICTED_POD, "runAsUser": 20000}),
    (["nodeSelector.pool=system"], "nodeSelector", {"pool": "system"}),
    (["tolerations[0].key=dedicated", "tolerations[0].operator=Exists"], "tolerations",
     [{"key": "dedicated", "operator": "Exists"}]),
])
def test_a_pod_value_renders_on_the_operator_and_the_gateway(sets: list[str], where: str, expected: Any) -> None:
    for name, pod in pods(template("gateway.enabled=true", *sets)).items():
        assert pod["spec"][where] == expected, name


def test_a_container_security_context_key_can_be_changed_or_dropped() -> None:
    templates = pods(template("gateway.enabled=true", "securityContext.readOnlyRootFilesystem=null",
                              "securityContext.runAsNonRoot=true"))
    for pod in templates.values():
        expected = {**RESTRICTED_CONTAINER, "runAsNonRoot": True}
        del expected["readOnlyRootFilesystem"]
        assert pod["spec"]["containers"][0]["securityContext"] == expected


def test_pod_labels_and_annotations_go_on_the_pods_not_the_selectors() -> None:
    docs = template("gateway.enabled=true", "podLabels.team=data", "podAnnotations.owner=platform")
    for d in (d for d in docs if d["kind"] == "Deployment"):
        pod = d["spec"]["template"]["metadata"]
        assert pod["labels"]["team"] == "data" and pod["annotations"] == {"owner": "platform"}
        assert "team" not in d["spec"]["selector"]["matchLabels"]
        assert set(d["spec"]["selector"]["matchLabels"].items()) <= set(pod["labels"].items())


def test_affinity_and_spread_constraints_are_each_deployments_own() -> None:
    spread = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
              "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "lakejob"}}}
    docs = template("gateway.enabled=true", "replicas=2",
                    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                    ".nodeSelectorTerms[0].matchExpressions[0].key=pool",
                    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                    ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
                    "topologySpreadConstraints[0].maxSkew=1",
                    "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                    "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
                    "topologySpreadConstraints[0].labelSelector.matchLabels.app\\.kubernetes\\.io/name=lakejob",
                    "gateway.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1")
    operator, gateway = pods(docs)["lakejob"]["spec"], pods(docs)["lakejob-gateway"]["spec"]
    assert operator["topologySpreadConstraints"] == [spread]
    assert "nodeAffinity" in operator["affinity"] and "topologySpreadConstraints" not in gateway
    assert set(gateway["affinity"]) == {"podAntiAffinity"}


def test_service_account_annotations() -> None:
    account = one(template("serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/lj"),
                  "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/lj"}


@pytest.mark.parametrize("namespaced", [False, True])
def test_an_existing_service_account_is_used_and_bound(namespaced: bool) -> None:
    sets = ["serviceAccount.create=false", "serviceAccount.name=platform-operator", "replicas=2"]
    docs = template(*sets, *(["watchNamespaces={team-a}"] if namespaced else []))
    assert not any(d["kind"] == "ServiceAccount" for d in docs)
    assert pods(docs)["lakejob"]["spec"]["serviceAccountName"] == "platform-operator"
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) >= 3  # framework, application, leader election (+ own pod when namespaced)
    for b in bindings:
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "platform-operator",
                                  "namespace": "lakejob-system"}], b["metadata"]["name"]


def test_an_existing_service_account_must_be_named() -> None:
    r = helm("--set", "serviceAccount.create=false")
    assert r.returncode != 0 and "serviceAccount.name" in r.stderr


def test_a_renamed_service_account_is_the_one_created_and_bound() -> None:
    docs = template("serviceAccount.name=lj-operator")
    assert one(docs, "ServiceAccount", "lj-operator")
    assert pods(docs)["lakejob"]["spec"]["serviceAccountName"] == "lj-operator"
    assert one(docs, "ClusterRoleBinding", "lakejob-application")["subjects"][0]["name"] == "lj-operator"


def test_global_values_of_a_parent_chart_are_accepted() -> None:
    """Helm validates a subchart's values, global included, against its schema: a parent's (or an
    Argo CD wrapper chart's) global values must not fail the install."""
    assert template("global.imageRegistry=registry.example", "global.labels.team=data")


def test_an_unknown_value_is_still_refused() -> None:
    r = helm("--set", "podLabel.team=data")
    assert r.returncode != 0 and "podLabel" in r.stderr


def test_the_service_monitor_only_where_its_api_exists() -> None:
    assert not [d for d in template("metrics.serviceMonitor.enabled=true") if d["kind"] == "ServiceMonitor"]
    assert not [d for d in template(api_versions=(SERVICE_MONITOR,)) if d["kind"] == "ServiceMonitor"]
    docs = template("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom",
                    api_versions=(SERVICE_MONITOR,))
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service", "lakejob-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(service["metadata"]["labels"].items())
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]
    gateway = one(template("gateway.enabled=true"), "Service", "lakejob-gateway")
    assert not set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(gateway["metadata"]["labels"].items())


def test_priority_classes_preempt_nothing_by_default() -> None:
    classes = [d for d in template() if d["kind"] == "PriorityClass"]
    assert len(classes) == 4
    assert {c["preemptionPolicy"] for c in classes} == {"Never"}
    assert not any(c["globalDefault"] for c in classes)
    preempting = [d for d in template("dag.priorityClasses.preemptionPolicy=PreemptLowerPriority")
                  if d["kind"] == "PriorityClass"]
    assert {c["preemptionPolicy"] for c in preempting} == {"PreemptLowerPriority"}
    assert not [d for d in template("dag.priorityClasses.create=false") if d["kind"] == "PriorityClass"]


def test_the_supported_kubernetes_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.29.0-0"  # native sidecars (DagJob uploads) are on from 1.29
    r = helm("--kube-version", "1.28.9")  # the last --kube-version wins
    assert r.returncode != 0 and "kubeVersion" in r.stderr


def notes(tmp_path: Path, *sets: str, api_versions: tuple[str, ...] = ()) -> str:
    """NOTES.txt as `helm install` prints it: `helm template` leaves NOTES out, so a copy of the
    chart renders it through `tpl` into a ConfigMap (same values, same helpers)."""
    copy = tmp_path / "lakejob"
    shutil.copytree(CHART, copy)
    shutil.copy(CHART / "templates" / "NOTES.txt", copy / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data: {notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}}\n')
    return str(one(template(*sets, api_versions=api_versions, chart=copy), "ConfigMap", "notes")["data"]["notes"])


def test_notes_say_what_to_do_next(tmp_path: Path) -> None:
    text = notes(tmp_path)
    assert "kubectl -n lakejob-system rollout status deployment/lakejob" in text
    assert "It watches every namespace" in text and "kubectl get sparkbatches -w" in text
    assert "kubectl apply --server-side -k crds/" in text
    assert "WARNING" not in text and "gateway" not in text and "PreemptLowerPriority" not in text


def test_notes_warn_of_a_service_monitor_left_out_and_of_preemption(tmp_path: Path) -> None:
    text = notes(tmp_path, "metrics.serviceMonitor.enabled=true", "watchNamespaces={team-a,team-b}",
                 "gateway.enabled=true", "dag.priorityClasses.preemptionPolicy=PreemptLowerPriority")
    assert "no ServiceMonitor was created" in text
    assert "It watches the namespaces team-a, team-b" in text
    assert "http://lakejob-gateway.lakejob-system.svc:8998" in text
    assert "may evict\nrunning pods of lower priority" in text
    assert "no ServiceMonitor" not in notes(tmp_path / "api", "metrics.serviceMonitor.enabled=true",
                                            api_versions=(SERVICE_MONITOR,))


# --- deploy/ (kustomize), rendered from the chart by hack/render_deploy.py -----------------------

def test_deploy_is_rendered_from_the_chart() -> None:
    import render_deploy

    for rel, text in render_deploy.render().items():
        assert (REPO / "deploy" / rel).read_text() == text, f"deploy/{rel} drifted from the chart: run `make deploy`"


def test_deploy_carries_no_helm_labels() -> None:
    files = sorted((REPO / "deploy").rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert "helm.sh/chart" not in text and "managed-by: Helm" not in text, path


needs_kubectl = pytest.mark.skipif(not KUBECTL.exists(), reason=f"no kubectl at {KUBECTL} (make tools builds it)")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    r = subprocess.run([str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@needs_kubectl
@pytest.mark.parametrize("base", ["base", "overlays/namespaced"])
def test_a_kustomize_images_override_reaches_every_image_the_operator_starts(tmp_path: Path, base: str) -> None:
    """The Deployment's image is the only place the operator's image is named: the fetch/upload
    image setting is empty, so the operator takes its own container's (lakejob.own_image)."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(REPO / "deploy" / base, tmp_path)],  # kustomize wants it relative
        "images": [{"name": "ghcr.io/lakejob/operator", "newName": "registry.example/lj/operator",
                    "newTag": "9.9.9"}]}))
    docs = kustomize(tmp_path)
    deployment = one(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "operator" and container["image"] == "registry.example/lj/operator:9.9.9"
    env = {e["name"]: e for e in container["env"]}
    assert env["LAKEJOB_FETCHER_IMAGE"]["value"] == ""
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "ghcr.io/lakejob/operator" not in yaml.safe_dump_all(docs)
    # The account may read its own pod: the cluster-wide application role, or a Role of its own.
    grants = [d for d in docs if d["kind"] in ("ClusterRole", "Role")
              and (d["kind"] == "ClusterRole" or d["metadata"]["namespace"] == "lakejob-system")
              and any("pods" in r["resources"] and "get" in r["verbs"] and r["apiGroups"] == [""]
                      for r in d["rules"])]
    assert grants, "nothing lets the operator read its own pod"
