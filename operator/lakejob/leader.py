"""Leader election over a coordination.k8s.io/v1 Lease, with local fencing: never two replicas acting.

`lakejob run --leader-elect` (lakejob.cli) calls `campaign` before kopf starts: a standby blocks
there, watching nothing, until it holds the Lease. lakejob.operator's start-up handler then runs
`Elector.keep` (the renewals) on kopf's loop and hands `Elector.fence` to the Kube client and the
Notifier, which call it before every write; its clean-up handler calls `Elector.release`.

The protocol is client-go's: the Lease is created if absent; a Lease held by another replica is
taken over only once this replica has seen it unchanged (holder, renewTime, resourceVersion) for
leaseDuration by its own clock, or at once when no one holds it; every write carries the
resourceVersion it read, so of two replicas trying at once one gets 409. A leader that has not
renewed within renewDeadline (< leaseDuration) of sending its last successful renewal has lost:
it logs one line and exits (controller-runtime does the same), and the container restarts as a
standby. The fence makes that hold for a process that was frozen (SIGSTOP, a paused VM, a long GC)
past its lease: the clock keeps running while it is stopped, so its first write after it resumes
finds the deadline passed and exits instead, before the request is sent.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import secrets
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NoReturn, Protocol

import aiohttp
from aiohttp import web

log = logging.getLogger("lakejob.leader")


class Api(Protocol):
    """What the elector needs of lakejob.kube.Kube (tests give it a fake)."""

    async def request(self, method: str, url_path: str, body: Any = None, *,
                      timeout: float | None = None) -> tuple[int, Any]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Timing:
    lease_duration_s: float
    renew_deadline_s: float
    retry_period_s: float

    def __post_init__(self) -> None:
        # The leader must stop before a standby may start: renewDeadline < leaseDuration, and it
        # must get more than one try at renewing: retryPeriod < renewDeadline.
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(f"leader election needs 0 < retry period ({self.retry_period_s} s) < renew deadline "
                             f"({self.renew_deadline_s} s) < lease duration ({self.lease_duration_s} s)")


def identity(pod_name: str | None) -> str:
    """The pod's name and a suffix per process: a restarted container is a new candidate, and never
    mistakes the Lease its previous process held for its own."""
    return f"{pod_name or socket.gethostname()}_{secrets.token_hex(4)}"


def _boottime() -> float:
    # CLOCK_BOOTTIME also counts time the machine was suspended, which CLOCK_MONOTONIC does not:
    # a leader on a suspended VM must find its deadline passed when it wakes, as a SIGSTOPped one does.
    return time.clock_gettime(time.CLOCK_BOOTTIME)


CLOCK: Callable[[], float] = _boottime if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic


def _exit(code: int) -> NoReturn:
    # os._exit, not sys.exit: nothing may run after leadership is lost (no clean-up handler, no
    # pending write); the log line before it is flushed by its handler.
    os._exit(code)


def _micro_time() -> str:
    """A Lease's MicroTime; for people reading the Lease only, no replica compares them."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _holder(lease: Any) -> str:
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


class Elector:
    """One candidate for one Lease: `acquire` (standby), then `keep` + `fence` (leader), `release`."""

    def __init__(self, api: Api, namespace: str, name: str, me: str, timing: Timing, *,
                 clock: Callable[[], float] = CLOCK, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 exit_process: Callable[[int], NoReturn] = _exit):
        self.api, self.namespace, self.name, self.me, self.timing = api, namespace, name, me, timing
        self.clock, self.sleep, self.exit_process = clock, sleep, exit_process
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        # Until this (by self.clock) this process may act: the send time of its last successful
        # write of the Lease + renewDeadline. -inf: not the leader.
        self.deadline = float("-inf")
        self._lease: dict[str, Any] = {}  # the Lease as our last write left it (its resourceVersion)
        self._observed: tuple[str, str, str] | None = None  # another holder's record, and since when
        self._observed_at = 0.0
        self._said = ""

    def _say(self, message: str, level: int = logging.WARNING) -> None:
        """Log a standby's state once, not on every retry."""
        if message != self._said:
            log.log(level, "%s", message)
            self._said = message

    async def acquire(self) -> None:
        """Return once this process holds the Lease; retry every retryPeriod until then."""
        while True:
            try:
                if await self.try_acquire():
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                self._say(f"cannot reach the API for lease {self.namespace}/{self.name}: {e!r}; retrying")
            await self.sleep(self.timing.retry_period_s)

    async def try_acquire(self) -> bool:
        """One try: True if this process holds the Lease now."""
        status, lease = await self.api.request("GET", f"{self.path}/{self.name}")
        if status == 404:
            sent = self.clock()
            wall = _micro_time()
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": self.namespace},
                     "spec": {"holderIdentity": self.me, "leaseDurationSeconds": self._duration_field(),
                              "acquireTime": wall, "renewTime": wall, "leaseTransitions": 0}}
            status, created = await self.api.request("POST", self.path, lease)
            if status == 201:
                return self._lead(created, sent, "created")
            if status != 409:  # 409: another replica created it first; read it on the next try
                self._say(f"cannot create lease {self.namespace}/{self.name}: {status} {_message(created)}")
            return False
        if status >= 300:
            self._say(f"cannot read lease {self.namespace}/{self.name}: {status} {_message(lease)}")
            return False
        spec = lease.get("spec") or {}
        holder = _holder(lease)
        record = (holder, str(spec.get("renewTime")), str(lease["metadata"].get("resourceVersion")))
        now = self.clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        # The holder's own leaseDurationSeconds if it asked for longer (a replica of a newer config).
        duration = max(self.timing.lease_duration_s, float(spec.get("leaseDurationSeconds") or 0))
        if holder and holder != self.me and now < self._observed_at + duration:
            self._say(f"standing by: lease {self.namespace}/{self.name} is held by {holder}", logging.INFO)
            return False
        sent = self.clock()
        wall = _micro_time()
        taken = {**spec, "holderIdentity": self.me, "leaseDurationSeconds": self._duration_field(),
                 "renewTime": wall}
        if holder != self.me:
            taken["acquireTime"] = wall
            taken["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        status, updated = await self.api.request("PUT", f"{self.path}/{self.name}", {**lease, "spec": taken})
        if status == 200:
            how = f"took over from {holder} (unchanged for {duration:g} s)" if holder else "took over a free lease"
            return self._lead(updated, sent, how)
        if status != 409:  # 409: another replica wrote it first; it is held again
            self._say(f"cannot take lease {self.namespace}/{self.name}: {status} {_message(updated)}")
        return False

    def _duration_field(self) -> int:
        return max(1, round(self.timing.lease_duration_s))

    def _lead(self, lease: dict[str, Any], sent: float, how: str) -> bool:
        self._lease = lease
        self.deadline = sent + self.timing.renew_deadline_s
        log.info("became the leader: lease %s/%s %s, as %s", self.namespace, self.name, how, self.me)
        return True

    async def keep(self) -> None:
        """Renew every retryPeriod, for as long as the process runs (cancelled at clean-up)."""
        while True:
            try:
                await self.renew()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                log.warning("renewing lease %s/%s failed: %r; retrying", self.namespace, self.name, e)
            except Exception:  # a surprise must not end the renewals: the deadline still decides
                log.exception("renewing lease %s/%s failed; retrying", self.namespace, self.name)
            await self.sleep(self.timing.retry_period_s)

    async def renew(self) -> None:
        """One renewal: extends the deadline, or leaves it to run out (then or at the next write,
        the process exits), or exits at once if another replica holds the Lease now."""
        sent = self.clock()
        if sent >= self.deadline:
            self._lost(f"not renewed within {self.timing.renew_deadline_s:g} s")
        body = copy.deepcopy(self._lease)
        body["spec"]["renewTime"] = _micro_time()
        # No answer after the deadline is worth waiting for: the fence has stopped us by then.
        status, payload = await self.api.request("PUT", f"{self.path}/{self.name}", body,
                                                 timeout=self.deadline - sent)
        if status == 200:
            self._lease = payload
            self.deadline = sent + self.timing.renew_deadline_s
            return
        if status in (404, 409):
            # 409: someone wrote the Lease since we did: another replica, or our own renewal whose
            # answer was lost. Only the holder says which.
            status, payload = await self.api.request("GET", f"{self.path}/{self.name}")
            if status == 200 and _holder(payload) == self.me:
                self._lease = payload  # ours still: renewed (without this deadline) on the next try
                return
            if status in (200, 404):
                self._lost(f"it is now held by {_holder(payload) or 'no one'}")
        log.warning("renewing lease %s/%s: %s %s; retrying", self.namespace, self.name, status, _message(payload))

    def fence(self) -> None:
        """Called before every write the operator makes (lakejob.kube, lakejob.notify): a clock
        comparison, no request. Past the deadline another replica may be acting: exit instead."""
        if self.clock() >= self.deadline:
            self._lost("a write was due after the renew deadline")

    def _lost(self, why: str) -> NoReturn:
        log.error("lost the leader lease %s/%s (%s): exiting without another write; the restarted container "
                  "stands by", self.namespace, self.name, why)
        self.exit_process(1)

    async def release(self) -> None:
        """Give the Lease up at a graceful stop, so a standby takes over at once instead of after
        leaseDuration. From here on this process writes nothing (the fence refuses)."""
        sent = self.clock()
        if sent >= self.deadline:
            return  # not ours to give: a standby may hold it already
        self.deadline = float("-inf")
        lease = self._lease
        # A second try only after a 409: the Lease changed since our last write read it, most often
        # by our own renewal, cancelled by this stop after it was sent, so its answer never reached
        # self._lease. Read it back and give it up if it is still ours.
        for attempt in (1, 2):
            body = copy.deepcopy(lease)
            # As client-go releases: no holder, the shortest duration, renewed now.
            body["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time())
            try:
                status, payload = await self.api.request("PUT", f"{self.path}/{self.name}", body, timeout=5)
                if status != 409 or attempt == 2:
                    break
                status, payload = await self.api.request("GET", f"{self.path}/{self.name}", timeout=5)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                log.warning("could not release lease %s/%s: %r", self.namespace, self.name, e)
                return
            if status != 200 or _holder(payload) != self.me:
                log.info("lease %s/%s is no longer ours to release", self.namespace, self.name)
                return
            lease = payload
        if status == 200:
            log.info("released lease %s/%s", self.namespace, self.name)
        else:
            log.warning("could not release lease %s/%s: %s %s", self.namespace, self.name, status, _message(payload))


def _message(payload: Any) -> str:
    return str(payload.get("message", "")) if isinstance(payload, dict) else str(payload)


@contextlib.asynccontextmanager
async def standby_liveness(endpoint: str | None) -> AsyncIterator[None]:
    """Answer the liveness probe (kopf's endpoint, served by kopf only once it runs) while standing
    by, so the kubelet does not restart a standby for not being the leader."""
    if not endpoint:
        yield
        return
    parts = urllib.parse.urlsplit(endpoint)

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.add_routes([web.get(parts.path or "/", alive)])
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "127.0.0.1", parts.port or 80).start()
    try:
        yield
    finally:
        await runner.cleanup()  # kopf binds the same port next


async def campaign(namespace: str, name: str, timing: Timing, liveness: str | None) -> Elector:
    """Block until this process leads; the Elector it returns keeps its own API client, so renewals
    never queue behind the operator's own requests."""
    from lakejob.kube import Kube

    kube = await Kube.connect()
    elector = Elector(kube, namespace, name, identity(os.environ.get("POD_ID")), timing)
    log.info("campaigning for lease %s/%s as %s", namespace, name, elector.me)
    async with standby_liveness(liveness):
        await elector.acquire()
    return elector
