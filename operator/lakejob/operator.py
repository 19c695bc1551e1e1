"""kopf wiring: start-up and clean-up, and one reconciler per kind.

Imported by `lakejob run` (lakejob.cli) before kopf starts. Importing lakejob.controllers.* runs
each kind's kopf decorators (its handlers live beside its reconciler); the start-up handler
makes one instance of every registered reconciler with the Settings the CLI built (`configure`),
and one shared API client, into controllers.base.RUNNING, where the kinds' handlers find them.
With leader election (`lakejob run --leader-elect`), it also keeps renewing the Lease the CLI
acquired and fences every write with it; clean-up gives the Lease back.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any, cast

import kopf
import prometheus_client

from lakejob import credentials, heap, kopf_fixes, own_image
from lakejob.controllers import base, queueing
from lakejob.crds import GROUP, VERSION
from lakejob.controllers import dagjob  # noqa: F401  (registers the DagJob handlers)
from lakejob.controllers import flinkjarjob  # noqa: F401  (registers the FlinkJarJob handlers)
from lakejob.controllers import sparkbatch  # noqa: F401  (registers the SparkBatch handlers)
from lakejob.controllers import sparksession  # noqa: F401  (registers the SparkSession handlers)
from lakejob.http import Http
from lakejob.kube import Kube
from lakejob.leader import Elector
from lakejob.notify import Notifier
from lakejob.render import workload as render_workload
from lakejob.settings import Settings

log = logging.getLogger("lakejob")

kopf_fixes.apply()  # before kopf runs: its bugs that would wedge lakejob (kopf_fixes says which)
heap.small_tls_buffers()  # before any connection is opened
heap.acyclic_kopf_views()  # before kopf makes its first body
heap.lean_kopf_memories(kopf.get_default_registry())  # the kinds' handlers are registered by now


class _State:
    settings: Settings = Settings()
    namespaces: list[str] = []
    elector: Elector | None = None  # None: no leader election (one replica)
    renewal: asyncio.Task[None] | None = None
    kube: Kube | None = None
    http: Http | None = None
    background: list[asyncio.Task[None]] = []
    # Set: kopf stops as on SIGTERM (clean-up runs) and the CLI starts the operator anew (`restart`).
    restart: asyncio.Event | None = None
    restart_reason = ""


STATE = _State()


def configure(settings: Settings, namespaces: list[str] | None = None, elector: Elector | None = None,
              restart: asyncio.Event | None = None) -> None:
    STATE.settings = settings
    STATE.namespaces = namespaces or []
    STATE.elector = elector
    STATE.restart = restart


def request_restart(reason: str) -> None:
    """Stop kopf so that the CLI starts the operator anew (it passed `restart` as kopf's stop flag):
    what kopf watches is fixed at its start, and `reason` says what changed since."""
    if STATE.restart is not None and not STATE.restart.is_set():
        log.warning("restarting the operator: %s", reason)
        STATE.restart_reason = reason
        STATE.restart.set()


def _kueue_changed(served: bool) -> None:
    if served:
        request_restart(f"Kueue is installed now ({render_workload.API_VERSION} is served): kopf watches "
                        "its Workloads only from a start")
    else:
        request_restart(f"Kueue is gone ({render_workload.API_VERSION} is no longer served): kopf's watch "
                        "of its Workloads would fail")


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base that keeps nothing.

    kopf builds a diff base on every watch event (a deep copy of the whole object, status and
    managedFields included, then trimmed) for change-detecting handlers (on.create/update/resume)
    and daemons. lakejob has neither: its handlers are level-triggered event handlers and indexes
    whose state lives in status (a unit test keeps it so). The copy was a quarter of the
    operator's CPU in a DagJob fan-out (py-spy, bench/dag.py); this storage builds nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _served(kube: Kube, group: str, version: str, plurals: list[str]) -> bool:
    """Whether API discovery lists `plurals` in group/version, as kopf's scan reads it (the group in
    /apis, the resources in /apis/<group>/<version>)."""
    status, groups = await kube.request("GET", "/apis")
    if status >= 300 or not isinstance(groups, dict) or not any(
            g.get("name") == group for g in groups.get("groups") or ()):
        return False
    status, resources = await kube.request("GET", f"/apis/{group}/{version}")
    served = {r.get("name") for r in (resources.get("resources") or ()) if isinstance(r, dict)} \
        if status < 300 and isinstance(resources, dict) else set()
    return set(plurals) <= served


async def _until_served(kube: Kube, group: str, version: str, plurals: list[str]) -> None:
    """Hold kopf's scan of the cluster's resources (it runs once the start-up handlers are done, and
    with exact namespaces never again) until lakejob's own resources are served: CRDs installed a
    moment before the operator (a fresh cluster, `kubectl apply` of everything at once) can be
    Established before discovery lists them, and kopf would then never watch them."""
    waited = 0.0
    while not await _served(kube, group, version, plurals):
        if waited == SERVED_NOTICE_S:
            log.warning("waiting for %s/%s (%s) to be served: are lakejob's CRDs installed? (crds/, or the chart)",
                        group, version, ", ".join(plurals))
        await asyncio.sleep(SERVED_POLL_S)
        waited += SERVED_POLL_S


SERVED_POLL_S = 0.5
SERVED_NOTICE_S = 10.0  # said once, after this long
WORKER_IDLE_S = 0.5  # kopf's per-object worker exits after this long without an event


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials are lakejob.kube's (lakejob.credentials), never a guess of its own."""
    return await credentials.connection_info()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our handlers are level-triggered event handlers whose state lives in status, so kopf
    # writes no annotations and adds no finalizers to our objects.
    settings.posting.enabled = False  # we post our own Events, with reasons users can filter on
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = None  # one worker per object, as many as there are objects
    # An object's worker holds its last raw event (managedFields and all) until it exits: after 5 s
    # idle by default, so a burst of 1,000 CRs had ~1,000 of them alive at once, a high-water mark
    # the process then kept (docs/performance.md). A new event simply starts a new worker.
    settings.queueing.idle_timeout = WORKER_IDLE_S
    # Exact namespace names only (the chart's watchNamespaces): nothing to discover, and the
    # namespaced RBAC grants no cluster-wide namespace list (kopf would retry it for ~90 s before
    # serving). CRDs are then the ones present at start: the chart installs them first.
    if STATE.namespaces and not any(c in ns for ns in STATE.namespaces for c in "*?!,"):
        settings.scanning.disabled = True
    elector = STATE.elector
    fence = None
    if elector is not None:
        # Renew before anything else: time has passed since the Lease was acquired (kopf's start).
        # Once: kopf runs this handler again after an error below (e.g. a 503 reading our own pod).
        if STATE.renewal is None:
            STATE.renewal = asyncio.get_running_loop().create_task(elector.keep())
        fence = elector.fence
    kube = await Kube.connect()
    kube.fence = fence
    STATE.kube = kube
    # Before any reconciler exists: every fetch/upload container they render needs the image.
    try:
        STATE.settings = await own_image.resolve(STATE.settings, kube, os.environ)
    except own_image.OwnImageError as e:
        # A setting or RBAC to fix, not a moment to wait out: stop (the pod's log says why).
        raise kopf.PermanentError(str(e)) from e
    http = STATE.http = Http()
    notifier = Notifier(http, retries=STATE.settings.notify_retries, timeout_s=STATE.settings.notify_timeout_s,
                        fence=fence)
    base.RUNNING.update({kind: cls(STATE.settings, kube, _now_ms, http, notifier)
                         for kind, cls in base.REGISTRY.items()})
    await _until_served(kube, GROUP, VERSION, sorted(r.plural for r in base.RUNNING.values()))
    if STATE.settings.queueing != "off":
        # What kopf's scan finds now is what it watches: a later change of Kueue's presence restarts us.
        await queueing.PROBE.served(kube, STATE.settings)
        queueing.PROBE.on_change = _kueue_changed
    if STATE.settings.metrics_port:
        try:
            prometheus_client.start_http_server(STATE.settings.metrics_port)
        except OSError as e:  # a busy port must not stop the operator from running jobs
            log.error("metrics disabled: cannot listen on port %d: %s", STATE.settings.metrics_port, e)
    loop = asyncio.get_running_loop()
    STATE.background = [loop.create_task(r.resync()) for r in base.RUNNING.values()]
    STATE.background.append(loop.create_task(heap.keep_trimmed()))
    if STATE.settings.queueing != "off":
        STATE.background.append(loop.create_task(queueing.PROBE.follow(kube, STATE.settings)))
    heap.quiet_collector()  # last: what start-up made is frozen out of the collector's scans
    log.info("lakejob operator started: %s", ", ".join(sorted(base.RUNNING)))


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for task in STATE.background:
        task.cancel()
    # Passes still running would fail on the closed client and log a traceback each (hundreds
    # after a burst); stopped here, they are simply redone by the next operator (all idempotent).
    await asyncio.gather(*(r.stop() for r in base.RUNNING.values()))
    if STATE.kube is not None:
        await STATE.kube.close()
    if STATE.http is not None:
        await STATE.http.close()
    # Last: nothing of ours writes any more, so the standby may take over at once.
    if STATE.renewal is not None:
        STATE.renewal.cancel()
    if STATE.elector is not None:
        await STATE.elector.release()
        await STATE.elector.api.close()
