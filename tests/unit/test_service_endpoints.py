"""The selectorless Services and their Endpoints: what render.endpoints puts in them (the members
Kubernetes' own controller would), and when controllers.service_endpoints writes them
(only on a change; a PUT with the object's uid; reading back after a restart; never over another's)."""
from __future__ import annotations

from typing import Any

import pytest

from lakejob import kube as kubemod
from lakejob.controllers.flinkjarjob import summarize_flink_pod
from lakejob.controllers.service_endpoints import EndpointsWriter
from lakejob.controllers.sparksession import summarize_session_pod
from lakejob.models.flinkjarjob import FlinkJarJobSpec
from lakejob.models.sparksession import SparkSessionSpec
from lakejob.render import flink as render_flink
from lakejob.render import sparksession as render_session
from lakejob.render.common import Owner
from lakejob.render.endpoints import build_endpoints

SESSION = Owner("lakejob.io/v1alpha1", "SparkSession", "nb", "team-a", "uid-nb")
FLINK = Owner("lakejob.io/v1alpha1", "FlinkJarJob", "wc", "team-a", "uid-wc")


def session_service() -> dict[str, Any]:
    return render_session.service(SparkSessionSpec.model_validate({"kind": "pyspark", "cluster_name": "q"}), SESSION)


def pod(name: str, role_label: tuple[str, str], phase: str = "Running", ip: str | None = "10.244.1.7",
        ready: bool = False, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict([role_label])}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T10:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


def driver(name: str = "nb-session-1", **kw: Any) -> dict[str, Any]:
    return summarize_session_pod(pod(name, ("spark-role", "driver"), **kw))


def addresses(eps: dict[str, Any], key: str = "addresses") -> list[str]:
    return [a["targetRef"]["name"] for subset in eps["subsets"] for a in subset.get(key, [])]


def flink_service() -> dict[str, Any]:
    return render_flink.service(FlinkJarJobSpec.model_validate({"name": "wc"}), FLINK)


@pytest.mark.parametrize("service", [session_service, flink_service])
def test_the_services_are_headless_without_a_selector_and_publish_pods_not_yet_ready(service: Any) -> None:
    # No virtual IP (kube-proxy's rules grow with the Services) and no selector (the
    # controller-manager's endpoint controllers scan the namespace): render.endpoints says why.
    spec = service()["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True and "selector" not in spec
    assert all(p["port"] == p["targetPort"] for p in spec["ports"])


def test_a_sessions_endpoints_name_the_service_and_publish_its_driver_before_it_is_ready() -> None:
    eps = build_endpoints(session_service(), [driver()])
    assert (eps["apiVersion"], eps["kind"]) == ("v1", "Endpoints")
    assert eps["metadata"]["name"] == "nb-session-svc" and eps["metadata"]["namespace"] == "team-a"
    assert eps["metadata"]["labels"]["lakejob.io/name"] == "nb"  # the mirrored EndpointSlice carries them too
    assert eps["metadata"]["ownerReferences"][0]["uid"] == "uid-nb"
    # publishNotReadyAddresses: an address although the pod is not Ready (yet)
    (subset,) = eps["subsets"]
    assert subset["addresses"] == [{"ip": "10.244.1.7",
                                    "targetRef": {"kind": "Pod", "namespace": "team-a", "name": "nb-session-1"}}]
    assert "notReadyAddresses" not in subset
    assert {p["name"]: p["port"] for p in subset["ports"]} == {
        "driver-rpc-port": 7078, "blockmanager": 7079, "spark-ui": 4040, "spark-connect": 15002, "repl": 8999}


@pytest.mark.parametrize("gone", [dict(ip=None), dict(phase="Failed"), dict(phase="Succeeded"), dict(deleting=True)])
def test_a_pod_without_an_ip_ended_or_terminating_is_no_member(gone: dict[str, Any]) -> None:
    eps = build_endpoints(session_service(), [driver("nb-session-1", **gone), driver("nb-session-2", ip="10.244.1.9")])
    assert addresses(eps) == ["nb-session-2"]
    assert build_endpoints(session_service(), [driver("nb-session-1", **gone)])["subsets"] == []


def test_a_flink_jobmanager_is_an_address_before_it_is_ready_on_the_target_ports() -> None:
    # TaskManagers starting beside the JobManager resolve its name as soon as it has an IP,
    # instead of caching "no such host".
    service = flink_service()
    jm = summarize_flink_pod(pod("wc-jm-1", ("lakejob.io/role", "jobmanager"), ready=False))
    tm = summarize_flink_pod(pod("wc-tm-x", ("lakejob.io/role", "taskmanager"), ready=True))
    assert "ip" not in tm  # only what a Service points at carries its IP (memory: thousands of pods)
    eps = build_endpoints(service, [jm, tm])
    assert addresses(eps) == ["wc-jm-1"] and addresses(eps, "notReadyAddresses") == []
    assert [(p["name"], p["port"]) for p in eps["subsets"][0]["ports"]] == [("rpc", 6123), ("blob", 6124),
                                                                            ("rest", 8081)]


class Objects:
    """The apiserver's Endpoints, and the requests the writer sent."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.next_uid = 0

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.next_uid += 1
        stored = {**obj, "metadata": {**obj["metadata"], "uid": obj["metadata"].get("uid") or f"s{self.next_uid}",
                                      "resourceVersion": str(self.next_uid)}}
        self.objects[obj["metadata"]["name"]] = stored
        return stored

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("get")
        return self.objects.get(name)

    async def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        assert obj["metadata"]["name"] not in self.objects
        return self._store(obj)

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append("replace")
        existing = self.objects.get(obj["metadata"]["name"])
        if existing is None:
            return None
        assert obj["metadata"]["uid"] == existing["metadata"]["uid"]  # never a same-named successor
        return self._store(obj)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        self.calls.append("delete")
        assert uid == self.objects[name]["metadata"]["uid"]
        return self.objects.pop(name, None) is not None

    delete_child = kubemod.Kube.delete_child  # the real ownership check, over this fake's get and delete


async def sync(writer: EndpointsWriter, api: Objects, pods: list[dict[str, Any]], may_exist: bool = True) -> list[str]:
    api.calls.clear()
    await writer.sync(api, "uid-nb", build_endpoints(session_service(), pods), may_exist)  # type: ignore[arg-type]
    return list(api.calls)


async def test_a_new_session_costs_no_request_until_its_driver_has_an_ip_then_one_create() -> None:
    writer, api = EndpointsWriter(), Objects()
    assert await sync(writer, api, [], may_exist=False) == []
    assert await sync(writer, api, [driver(ip=None)], may_exist=False) == []
    assert await sync(writer, api, [driver()]) == ["create"]
    assert await sync(writer, api, [driver()]) == []  # unchanged: nothing
    assert await sync(writer, api, [driver(ready=True)]) == []  # ready or not, published alike
    assert await sync(writer, api, [driver(ip="10.244.1.8")]) == ["replace"]
    assert api.objects["nb-session-svc"]["subsets"][0]["addresses"][0]["ip"] == "10.244.1.8"


async def test_a_new_driver_replaces_the_old_one_and_an_ended_one_empties_them() -> None:
    writer, api = EndpointsWriter(), Objects()
    await sync(writer, api, [driver("nb-session-1")])
    assert await sync(writer, api, [driver("nb-session-1", phase="Failed"), driver("nb-session-2", ip="10.244.1.9")]) \
        == ["replace"]
    assert addresses(api.objects["nb-session-svc"]) == ["nb-session-2"]
    assert await sync(writer, api, [driver("nb-session-2", phase="Failed")]) == ["replace"]
    assert api.objects["nb-session-svc"]["subsets"] == []


async def test_after_a_restart_they_are_read_back_once_and_written_only_if_they_differ() -> None:
    api = Objects()
    await sync(EndpointsWriter(), api, [driver()])
    restarted = EndpointsWriter()
    assert await sync(restarted, api, [driver()]) == ["get"]  # as it should be: no write
    assert await sync(restarted, api, [driver()]) == []
    again = EndpointsWriter()
    assert await sync(again, api, []) == ["get", "replace"]  # the driver went while the operator was away
    assert api.objects["nb-session-svc"]["subsets"] == []


async def test_endpoints_deleted_behind_our_back_are_made_again_and_ones_we_deleted_start_afresh() -> None:
    writer, api = EndpointsWriter(), Objects()
    await sync(writer, api, [driver()])
    del api.objects["nb-session-svc"]
    assert await sync(writer, api, [driver(ip="10.244.1.8")]) == ["replace", "create"]
    api.calls.clear()
    await writer.delete(api, "uid-nb", "team-a", "nb-session-svc")  # type: ignore[arg-type]
    assert api.calls == ["get", "delete"] and not api.objects
    assert await sync(writer, api, [driver()]) == ["get", "create"]


async def test_same_named_endpoints_that_are_not_ours_are_reported_and_left_alone() -> None:
    api = Objects()
    theirs = {"metadata": {"name": "nb-session-svc", "uid": "theirs", "ownerReferences": []}, "subsets": []}
    api.objects["nb-session-svc"] = theirs
    with pytest.raises(kubemod.NotOwned):
        await sync(EndpointsWriter(), api, [driver()])
    assert api.calls == ["get"] and api.objects["nb-session-svc"] is theirs


async def test_endpoints_kubernetes_keeps_for_an_older_services_selector_are_left_to_it() -> None:
    """A Service an older operator made keeps its selector: Kubernetes' endpoint controller writes
    its Endpoints (no owner, its managed-by label); the writer neither errs nor touches them."""
    api = Objects()
    theirs = {"metadata": {"name": "nb-session-svc", "uid": "k8s",
                           "labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"}},
              "subsets": [{"addresses": [{"ip": "10.244.1.7"}]}]}
    api.objects["nb-session-svc"] = theirs
    writer = EndpointsWriter()
    assert await sync(writer, api, [driver()]) == ["get"]
    assert await sync(writer, api, [driver(ip="10.244.1.8")]) == []  # remembered: not even a read
    api.calls.clear()
    await writer.delete(api, "uid-nb", "team-a", "nb-session-svc")  # type: ignore[arg-type]
    assert api.calls == ["get"] and api.objects["nb-session-svc"] is theirs  # they go with the Service


async def test_deleting_someone_elses_same_named_endpoints_is_refused() -> None:
    api = Objects()
    api.objects["nb-session-svc"] = {"metadata": {"name": "nb-session-svc", "uid": "x",
                                                  "ownerReferences": [{"controller": True, "uid": "other"}]}}
    with pytest.raises(kubemod.NotOwned):
        await EndpointsWriter().delete(api, "uid-nb", "team-a", "nb-session-svc")  # type: ignore[arg-type]
    assert "nb-session-svc" in api.objects


class LostAnswer(Objects):
    """A create the apiserver made although its answer was lost: the next create of it is a 409."""

    async def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["metadata"]["name"] not in self.objects:
            self.calls.append("create")
            self._store(obj)
            raise kubemod.KubeError(500, "the answer was lost", "create Endpoints")
        self.calls.append("create 409")
        raise kubemod.KubeError(409, "already exists", "create Endpoints")


async def test_a_create_whose_answer_was_lost_is_read_back_not_repeated_for_ever() -> None:
    writer, api = EndpointsWriter(), LostAnswer()
    with pytest.raises(kubemod.KubeError):
        await sync(writer, api, [driver()], may_exist=False)
    # the next pass (the CR still new): the create is refused, the Endpoints are read back and adopted
    assert await sync(writer, api, [driver(ip="10.244.1.8")], may_exist=False) == ["create 409", "get", "replace"]
    assert api.objects["nb-session-svc"]["subsets"][0]["addresses"][0]["ip"] == "10.244.1.8"
    assert await sync(writer, api, [driver(ip="10.244.1.8")], may_exist=False) == []


async def test_follow_publishes_only_the_pods_of_the_services_role() -> None:
    writer, api = EndpointsWriter(), Objects()
    executor = summarize_session_pod(pod("nb-exec-1", ("spark-role", "executor"), ip="10.244.1.20"))
    await writer.follow(api, "uid-nb", session_service(), [executor, driver()], "driver",  # type: ignore[arg-type]
                        may_exist=False)
    assert addresses(api.objects["nb-session-svc"]) == ["nb-session-1"]
