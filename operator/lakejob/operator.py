"""kopf wiring: registers every kind's handlers and the operator's start-up and clean-up.

Imported by `lakejob run` (lakejob.cli) before kopf starts; the handlers here only translate
kopf's calls into the controllers' methods. Settings are built by the CLI and handed over with
`configure()` before kopf runs, so nothing below reads the environment itself.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from lakejob.controllers import sparkbatch as sb
from lakejob.crds import GROUP, VERSION
from lakejob.kube import Kube, register_kind
from lakejob.settings import Settings

log = logging.getLogger("lakejob")
register_kind(f"{GROUP}/{VERSION}", sb.KIND, sb.PLURAL)


class _State:
    settings: Settings = Settings()
    kube: Kube | None = None
    sparkbatch: sb.SparkBatchController | None = None
    background: list[asyncio.Task[None]] = []


STATE = _State()


def configure(settings: Settings) -> None:
    STATE.settings = settings


def _now_ms() -> int:
    return int(time.time() * 1000)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our handlers are level-triggered event handlers whose state lives in status, so kopf
    # writes no annotations and adds no finalizers to our objects.
    settings.posting.enabled = False  # we post our own Events with reasons users can filter on
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = None  # one worker per object, as many as there are objects
    kube = await Kube.connect()
    STATE.kube = kube
    STATE.sparkbatch = sb.SparkBatchController(settings=STATE.settings, kube=kube, now_ms=_now_ms)
    STATE.background = [asyncio.get_running_loop().create_task(STATE.sparkbatch.resync())]
    log.info("lakejob operator started")


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for task in STATE.background:
        task.cancel()
    if STATE.kube is not None:
        await STATE.kube.close()


def _controller() -> sb.SparkBatchController:
    assert STATE.sparkbatch is not None, "startup handler has not run"
    return STATE.sparkbatch


# ------------------------------------------------------------------------------------ SparkBatch


# async: kopf runs sync handlers in a thread pool, which costs more than this whole function.
@kopf.index("pods", labels={"lakejob.io/kind": sb.KIND})
async def sparkbatch_pods(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {sb.pod_key(dict(body)): sb.summarize_pod(dict(body))}


@kopf.on.event("pods", labels={"lakejob.io/kind": sb.KIND})
async def sparkbatch_pod_event(body: kopf.Body, **kwargs: Any) -> None:
    ctl = _controller()
    ctl.pod_index = kwargs["sparkbatch_pods"]  # kopf passes every index by its handler's name
    ctl.pod_event(dict(body))


@kopf.on.event(GROUP, VERSION, sb.PLURAL)
async def sparkbatch_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    ctl = _controller()
    ctl.pod_index = kwargs["sparkbatch_pods"]
    ctl.cr_event(event.get("type"), dict(event.get("object") or body))
