"""lakejob.own_image: the fetch/upload image is the operator's own, read from its own Pod, so an
image override (helm, kustomize `images:`) reaches every container lakejob starts."""
from __future__ import annotations

import logging
from typing import Any

import pytest

from lakejob import own_image
from lakejob.kube import KubeError
from lakejob.settings import RELEASED_IMAGE, Settings

IN_POD = {"POD_NAME": "lakejob-5d8f-abcde", "POD_NAMESPACE": "lakejob-system"}


def pod(*containers: tuple[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": IN_POD["POD_NAME"]},
            "spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}


class FakeKube:
    """Answers `get` for one pod (or refuses), recording what was asked."""

    def __init__(self, answer: dict[str, Any] | None = None, error: KubeError | None = None):
        self.answer, self.error = answer, error
        self.asked: list[tuple[str, str, str, str]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked.append((api_version, kind, namespace, name))
        if self.error:
            raise self.error
        return self.answer


async def test_an_empty_setting_takes_the_image_of_the_operator_container_of_its_own_pod(
        caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube(pod(("istio-proxy", "istio/proxyv2:1.22"), ("operator", "registry.example/lj/operator:2.0")))
    with caplog.at_level(logging.INFO, "lakejob"):
        resolved = await own_image.resolve(Settings(), kube, IN_POD)
    assert resolved.fetcher_image == "registry.example/lj/operator:2.0"
    assert kube.asked == [("v1", "Pod", "lakejob-system", "lakejob-5d8f-abcde")]
    assert "registry.example/lj/operator:2.0: my own container's image (pod lakejob-system/lakejob-5d8f-abcde)" \
        in caplog.text


async def test_a_single_container_is_taken_whatever_its_name() -> None:
    resolved = await own_image.resolve(Settings(), FakeKube(pod(("manager", "mirror.local/operator:0.1.0"))), IN_POD)
    assert resolved.fetcher_image == "mirror.local/operator:0.1.0"


async def test_an_explicit_setting_wins_and_nothing_is_read() -> None:
    kube = FakeKube(pod(("operator", "other:1")))
    resolved = await own_image.resolve(Settings(fetcher_image="fetch:7"), kube, IN_POD)
    assert resolved.fetcher_image == "fetch:7" and kube.asked == []


async def test_outside_a_pod_the_released_image(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube()
    with caplog.at_level(logging.INFO, "lakejob"):
        resolved = await own_image.resolve(Settings(), kube, {"POD_NAMESPACE": "x"})
    assert resolved.fetcher_image == RELEASED_IMAGE and kube.asked == []
    assert "not a pod" in caplog.text


@pytest.mark.parametrize(("kube", "says"), [
    (FakeKube(error=KubeError(403, "pods is forbidden", "get Pod lakejob-5d8f-abcde")),
     "grant get on pods in my namespace or set LAKEJOB_FETCHER_IMAGE"),
    (FakeKube(None), "does not exist"),
    (FakeKube(pod(("a", "x:1"), ("b", "y:1"))), "no container named 'operator' (containers: a, b)"),
])
async def test_a_pod_it_cannot_read_stops_it_saying_what_to_set(kube: FakeKube, says: str) -> None:
    with pytest.raises(own_image.OwnImageError, match="LAKEJOB_FETCHER_IMAGE") as e:
        await own_image.resolve(Settings(), kube, IN_POD)
    assert says in str(e.value)


async def test_a_transient_api_error_is_left_to_the_caller_to_retry() -> None:
    with pytest.raises(KubeError) as e:
        await own_image.resolve(Settings(), FakeKube(error=KubeError(503, "unavailable")), IN_POD)
    assert not isinstance(e.value, own_image.OwnImageError) and e.value.status == 503
