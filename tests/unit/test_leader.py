"""lakejob.leader: acquiring, renewing, releasing a Lease and fencing writes, against a fake API and a
fake clock (time moves only when a test or a sleep moves it), plus the fence hooks in Kube and Notifier."""
from __future__ import annotations

import asyncio
import copy
import socket
from typing import Any, NoReturn, cast

import aiohttp
import pytest

from lakejob import leader
from lakejob.http import Http
from lakejob.kube import Kube
from lakejob.notify import Notifier
from lakejob.settings import Settings

TIMING = leader.Timing(lease_duration_s=15, renew_deadline_s=10, retry_period_s=2)
PATH = "/apis/coordination.k8s.io/v1/namespaces/ops/leases"


class Lost(BaseException):
    """What the elector's exit does in these tests (os._exit in the operator): like SystemExit, no
    Exception handler on the way stops it."""


def lost(code: int) -> NoReturn:
    raise Lost(code)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class FakeLeases:
    """The apiserver's Lease endpoint for one Lease: resourceVersion checks as the real one does."""

    def __init__(self, clock: Clock, latency: float = 0.0):
        self.clock, self.latency = clock, latency
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.writes: list[str] = []  # methods of the requests that reached the server and wrote
        self.status: int | None = None  # answer every request with this, doing nothing
        self.lose_answer = False  # do the write, but the client hears nothing (a timeout)

    async def request(self, method: str, url_path: str, body: Any = None, *,
                      timeout: float | None = None) -> tuple[int, Any]:
        await asyncio.sleep(0)  # candidates racing each other interleave here
        self.clock.now += self.latency
        if self.status is not None:
            return self.status, {"message": "boom"}
        if method == "GET":
            assert url_path == f"{PATH}/lakejob"
            return (200, copy.deepcopy(self.lease)) if self.lease else (404, {})
        if method == "POST":
            assert url_path == PATH
            if self.lease:
                return 409, {"reason": "AlreadyExists"}
        else:
            assert method == "PUT" and url_path == f"{PATH}/lakejob"
            if not self.lease:
                return 404, {}
            if body["metadata"]["resourceVersion"] != str(self.rv):
                return 409, {"reason": "Conflict"}
        self.writes.append(method)
        self.store(body)
        if self.lose_answer:
            raise asyncio.TimeoutError()
        return (201 if method == "POST" else 200), copy.deepcopy(self.lease)

    def store(self, lease: dict[str, Any]) -> None:
        self.rv += 1
        self.lease = copy.deepcopy(lease)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)

    def held_by(self, holder: str, **spec: Any) -> None:
        """Another replica writes the Lease (creates or renews it)."""
        base = self.lease or {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                              "metadata": {"name": "lakejob", "namespace": "ops"}, "spec": {}}
        self.store({**base, "spec": {**base["spec"], "holderIdentity": holder, "leaseDurationSeconds": 15,
                                     "renewTime": f"t{self.rv}", **spec}})

    def holder(self) -> str:
        return str((self.lease or {}).get("spec", {}).get("holderIdentity") or "")

    async def close(self) -> None:
        return None


def elector(api: FakeLeases, clock: Clock, me: str = "a", timing: leader.Timing = TIMING) -> leader.Elector:
    return leader.Elector(api, "ops", "lakejob", me, timing, clock=clock, sleep=clock.sleep, exit_process=lost)


async def test_creates_an_absent_lease_and_leads_until_the_renew_deadline() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock)
    await a.acquire()
    assert api.holder() == "a" and api.writes == ["POST"]
    assert api.lease is not None and api.lease["spec"]["leaseDurationSeconds"] == 15
    assert api.lease["spec"]["leaseTransitions"] == 0
    assert a.deadline == clock.now + 10


async def test_a_held_lease_is_taken_over_only_after_standing_still_for_the_lease_duration() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    api.held_by("old", leaseTransitions=4)
    start = clock.now
    b = elector(api, clock, "b")
    await b.acquire()
    # First seen at start; polled every 2 s: the first poll at least 15 s later takes it.
    assert clock.now - start == 16
    assert api.lease is not None and api.holder() == "b"
    assert api.lease["spec"]["leaseTransitions"] == 5 and api.lease["spec"]["acquireTime"]


async def test_a_lease_that_keeps_being_renewed_is_never_taken() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    b = elector(api, clock, "b")
    for _ in range(60):
        api.held_by("old")  # renewed every 2 s, however old its renewTime looks to b
        assert not await b.try_acquire()
        await clock.sleep(2)
    assert api.holder() == "old" and api.writes == []


async def test_the_observation_restarts_when_the_lease_changes() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    api.held_by("old")
    b = elector(api, clock, "b")
    assert not await b.try_acquire()
    await clock.sleep(14)
    api.held_by("old")  # one renewal just before b's 15 s were up
    assert not await b.try_acquire()
    await clock.sleep(14)
    assert not await b.try_acquire()
    await clock.sleep(1)
    assert await b.try_acquire()


async def test_a_longer_duration_in_the_lease_is_respected() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    api.held_by("old", leaseDurationSeconds=40)
    b = elector(api, clock, "b")
    assert not await b.try_acquire()
    await clock.sleep(39)
    assert not await b.try_acquire()
    await clock.sleep(1)
    assert await b.try_acquire()


async def test_a_released_lease_is_taken_at_once() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    api.held_by("", leaseTransitions=1)
    b = elector(api, clock, "b")
    assert await b.try_acquire()
    assert api.lease is not None and api.lease["spec"]["leaseTransitions"] == 2


@pytest.mark.parametrize("absent", [True, False])
async def test_of_two_candidates_at_once_exactly_one_wins(absent: bool) -> None:
    clock = Clock()
    api = FakeLeases(clock)
    if not absent:
        api.held_by("")
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    won = await asyncio.gather(a.try_acquire(), b.try_acquire())
    assert sorted(won) == [False, True]
    assert api.holder() == ("a" if won[0] else "b") and len(api.writes) == 1


async def test_a_standby_keeps_trying_through_api_errors() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    api.status = 503
    b = elector(api, clock, "b")
    task = asyncio.create_task(b.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    api.status = None
    await asyncio.wait_for(task, 5)
    assert api.holder() == "b"


async def test_the_deadline_counts_from_when_the_renewal_was_sent() -> None:
    clock = Clock()
    api = FakeLeases(clock, latency=3)  # each answer takes 3 s
    a = elector(api, clock)
    await a.acquire()
    sent = clock.now
    await a.renew()
    assert clock.now == sent + 3 and a.deadline == sent + 10  # not sent + 3 + 10
    assert api.lease is not None and api.rv == 2


@pytest.mark.parametrize("failure", ["status", "unreachable"])
async def test_a_leader_that_cannot_renew_exits_by_its_deadline_before_a_standby_may_start(failure: str) -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock)
    await a.acquire()
    acquired = clock.now
    if failure == "status":
        api.status = 500
    else:
        async def unreachable(*_: Any, **__: Any) -> tuple[int, Any]:
            raise aiohttp.ClientConnectionError("connection refused")
        a.api = cast(leader.Api, type("Down", (), {"request": unreachable})())
    with pytest.raises(Lost):
        await a.keep()
    # The last renewal stood at `acquired`: a standby that saw it may take over at acquired + 15.
    assert acquired + 10 <= clock.now < acquired + 15


async def test_a_renewal_refused_because_another_replica_holds_the_lease_exits_at_once() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock)
    await a.acquire()
    api.held_by("b")
    with pytest.raises(Lost):
        await a.renew()
    assert a.deadline > clock.now  # it did not wait for its deadline


async def test_a_conflict_with_its_own_unanswered_renewal_keeps_the_lead() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock)
    await a.acquire()
    first_deadline = a.deadline
    api.lose_answer = True
    with pytest.raises(asyncio.TimeoutError):
        await a.renew()
    api.lose_answer = False
    await clock.sleep(2)
    await a.renew()  # 409 (its own write moved the resourceVersion): still the holder
    assert a.deadline == first_deadline and api.holder() == "a"
    await clock.sleep(2)
    await a.renew()
    assert a.deadline == clock.now + 10


async def test_the_fence_lets_writes_through_until_the_deadline_only() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock)
    with pytest.raises(Lost):  # never led
        a.fence()
    await a.acquire()
    clock.now = a.deadline - 0.001
    a.fence()
    requests = len(api.writes)
    clock.now = a.deadline
    with pytest.raises(Lost):
        a.fence()
    assert len(api.writes) == requests  # the fence asks nothing of the API


async def test_a_frozen_leader_that_resumes_after_the_takeover_exits_before_writing() -> None:
    """SIGSTOP in fake time: the clock runs on while `a` runs nothing; `b` takes over; `a` resumes."""
    clock = Clock()
    api = FakeLeases(clock)
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.acquire()
    await clock.sleep(1)
    await a.renew()
    a_deadline = a.deadline
    standby = asyncio.create_task(b.acquire())  # a is frozen from here: no renewals
    await asyncio.wait_for(standby, 5)
    assert api.holder() == "b"
    assert clock.now >= a_deadline + (15 - 10)  # b started only after a had to stop, with margin
    writes = len(api.writes)
    with pytest.raises(Lost):  # a resumes: its first write is refused
        a.fence()
    with pytest.raises(Lost):  # and so is its renewal, were it first
        await a.renew()
    assert len(api.writes) == writes and api.holder() == "b"


async def test_release_frees_the_lease_and_fences_every_later_write() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.acquire()
    await a.release()
    assert api.holder() == "" and api.lease is not None and api.lease["spec"]["leaseDurationSeconds"] == 1
    with pytest.raises(Lost):
        a.fence()
    assert await b.try_acquire()  # at once


async def test_release_after_a_renewal_whose_answer_was_lost_reads_the_lease_back() -> None:
    # The stop cancels the renewal loop after its PUT reached the server: self._lease is one
    # resourceVersion behind, so the first release PUT is refused (409).
    clock = Clock()
    api = FakeLeases(clock)
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.acquire()
    api.lose_answer = True
    with pytest.raises(asyncio.TimeoutError):
        await a.renew()
    api.lose_answer = False
    await a.release()
    assert api.holder() == "" and api.writes == ["POST", "PUT", "PUT"]
    assert await b.try_acquire()  # at once


async def test_release_of_a_lease_another_replica_wrote_leaves_it_alone() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock, "a")
    await a.acquire()
    api.held_by("b")
    writes = len(api.writes)
    await a.release()
    assert api.holder() == "b" and len(api.writes) == writes


async def test_release_after_the_deadline_leaves_the_lease_alone() -> None:
    clock = Clock()
    api = FakeLeases(clock)
    a = elector(api, clock)
    await a.acquire()
    await clock.sleep(11)
    writes = len(api.writes)
    await a.release()
    assert len(api.writes) == writes and api.holder() == "a"


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 20, 2), (15, 10, 10), (15, 10, 0)])
def test_timing_must_let_the_leader_stop_before_a_standby_starts(duration: float, deadline: float,
                                                                retry: float) -> None:
    with pytest.raises(ValueError, match="retry period"):
        leader.Timing(duration, deadline, retry)


def test_identities_differ_per_process_and_name_the_pod() -> None:
    one, two = leader.identity("lakejob-7d9f-abcde"), leader.identity("lakejob-7d9f-abcde")
    assert one != two and one.startswith("lakejob-7d9f-abcde_") and two.startswith("lakejob-7d9f-abcde_")
    assert leader.identity(None).startswith(socket.gethostname())


def test_settings_read_the_leader_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in [("NAME", "ops"), ("DURATION_SECONDS", "6"), ("RENEW_DEADLINE_SECONDS", "4"),
                        ("RETRY_PERIOD_SECONDS", "1")]:
        monkeypatch.setenv(f"LAKEJOB_LEADER_{'LEASE_' if name in ('NAME', 'DURATION_SECONDS') else ''}{name}", value)
    s = Settings.from_env()
    assert (s.leader_lease_name, s.leader_lease_duration_s, s.leader_renew_deadline_s,
            s.leader_retry_period_s) == ("ops", 6, 4, 1)


async def test_a_standby_answers_the_liveness_probe_and_frees_the_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/healthz"
    async with leader.standby_liveness(url):
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # kopf's own health endpoint binds it next


class _Response:
    status = 200

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def text(self) -> str:
        return "{}"


class _Session:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def request(self, method: str, url: str, **_: Any) -> _Response:
        self.sent.append(method)
        return _Response()


async def test_kube_fences_every_write_and_no_read() -> None:
    session = _Session()
    kube = Kube(server="https://api", session=cast(aiohttp.ClientSession, session))
    await kube.request("POST", "/x", {})  # no fence: no leader election
    fenced: list[str] = []

    def fence() -> None:
        fenced.append("checked")
        raise Lost(1)

    kube.fence = fence
    await kube.request("GET", "/x")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(Lost):
            await kube.request(method, "/x", {})
    assert session.sent == ["POST", "GET"] and len(fenced) == 4


async def test_the_notifier_fences_every_delivery_try() -> None:
    posted: list[str] = []

    class Endpoint(Http):
        async def post_json(self, url: str, body: Any, headers: dict[str, str], timeout_s: float) -> int:
            posted.append(url)
            return 503

    checks = 0

    def fence() -> None:
        nonlocal checks
        checks += 1
        if checks == 3:  # the lease ran out between the second and the third try
            raise Lost(1)

    notifier = Notifier(Endpoint(), retries=5, backoff_s=0, fence=fence)
    with pytest.raises(Lost):
        await notifier.deliver("http://hook", {"type": "t", "id": "1"})
    assert len(posted) == 2
