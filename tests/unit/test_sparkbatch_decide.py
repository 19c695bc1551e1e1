"""The SparkBatch state machine: decide(spec, spec_error, meta, status, observed, settings), pure.

Each test builds the inputs with the dataclasses decide takes, and checks the exact status
fields, actions, events and requeue it returns. A few tests at the end check that pod bodies
are summarised into the DriverObs these tests build by hand.
"""
from __future__ import annotations

from typing import Any

import pytest

from lakejob.controllers.pods import summarize_pod
from lakejob.controllers.spark_driver import observe_pods
from lakejob.controllers.sparkbatch import parse_spec
from lakejob.controllers.sparkbatch_decide import (
    driver_output,
    headline,
    LOG_LINES,
    Action,
    Decision,
    DriverObs,
    Meta,
    Observed,
    decide,
    resolve_sizing,
)
from lakejob.controllers.decide_common import iso
from lakejob.models.common import Condition
from lakejob.models.sparkbatch import ExecutorCounts, ResolvedResources, SparkBatchSpec, SparkBatchStatus
from lakejob.render import spark as render
from lakejob.render.spark import app_id
from lakejob.settings import Settings

UID = "5e1c0b7a-3d2f-4e8b-a1c9-0f2d3e4a5b6c"
T0 = 1_700_000_000_000  # CR creation, ms
META = Meta(name="pi", namespace="team-a", uid=UID, generation=1, created_ms=T0)
SETTINGS = Settings()  # timeout 3h, backoff 10s doubling up to 300s, 20 retries by default
JAR = {"file": "local:///opt/spark/examples/jars/spark-examples.jar", "className": "org.apache.spark.examples.SparkPi"}
SECOND = 1000


def spec_of(**fields: Any) -> SparkBatchSpec:
    return SparkBatchSpec.model_validate({**JAR, **fields})


def obs(now: int, driver: DriverObs | None = None, log_tail: list[str] | None = None,
        executors: ExecutorCounts | None = None) -> Observed:
    return Observed(now_ms=now, driver=driver, executors=executors or ExecutorCounts(), log_tail=log_tail)


def drv(phase: str, attempt: int = 1, created: int = T0, **kw: Any) -> DriverObs:
    return DriverObs(name=f"pi-driver-{attempt}", phase=phase, created_ms=created, **kw)


def step(spec: SparkBatchSpec | None, status: SparkBatchStatus, observed: Observed,
         settings: Settings = SETTINGS, error: str | None = None) -> Decision:
    return decide(spec, error, META, status, observed, settings)


def new(spec: SparkBatchSpec, now: int = T0 + 100) -> Decision:
    return step(spec, SparkBatchStatus(), obs(now))


def cond(status: SparkBatchStatus, type_: str) -> tuple[str, str]:
    (c,) = [c for c in status.conditions or [] if c.type == type_]
    return c.status, c.reason


def outcome(status: SparkBatchStatus) -> tuple[str, str] | None:
    """The one of Complete, Failed, Suspended that is True (with its reason), or None; the others
    are False with the same reason."""
    true = [c for c in status.conditions or [] if c.type in ("Complete", "Failed", "Suspended") and c.status == "True"]
    assert len(true) <= 1
    others = {c.reason for c in status.conditions or [] if c.type in ("Complete", "Failed", "Suspended")}
    assert others == {status.reason}
    return (true[0].type, true[0].reason) if true else None


def started(spec: SparkBatchSpec, now: int = T0) -> SparkBatchStatus:
    return new(spec, now).status


def running(spec: SparkBatchSpec, now: int = T0 + 10 * SECOND, attempt: int = 1,
            status: SparkBatchStatus | None = None) -> SparkBatchStatus:
    d = step(spec, status or started(spec), obs(now, drv("Running", attempt)))
    assert d.status.state == "running"
    return d.status


# ----------------------------------------------------------------------------- new


def test_new_job_starts_attempt_one() -> None:
    now = T0 + 250
    d = new(spec_of(queue=" test"), now)
    s = d.status
    assert d.actions == [Action("ensure_children", 1), Action("create_driver", 1, "pi-driver-1")]
    assert s.state == "starting"
    assert s.reason == "DriverCreated"
    assert s.message == "driver pod pi-driver-1 created (attempt 1)"
    assert s.id == UID
    assert s.attempt == 1
    assert s.appId == app_id(UID, 1)
    assert s.driverPod == "pi-driver-1"
    assert s.create_time == T0
    assert s.update_time == now
    assert s.driverStartTime == now
    assert s.sc_type == "A"
    assert s.queue == "test" and s.cluster_name == "test"
    assert s.log == []
    assert s.observedGeneration == 1
    assert s.resources == ResolvedResources(driverCores=2, driverMemory="7168m", driverMemoryOverhead="716m",
                                            executorCores=1, executorMemory="4096m", executorMemoryOverhead="409m",
                                            numExecutors=6)
    assert d.events == [("Normal", "DriverCreated", "starting: driver pod pi-driver-1 created (attempt 1)")]
    assert cond(s, "Ready") == ("False", "DriverCreated")
    assert outcome(s) is None
    assert d.requeue_after_s is None


@pytest.mark.parametrize(("fields", "sc_type"), [
    ({"sc_type": "B"}, "B"), ({"sc_type": "C"}, "C"), ({"numExecutors": 2}, "CUSTOMIZED"),
    ({"sc_type": "C", "driverMemory": "2G"}, "CUSTOMIZED"),
])
def test_new_job_sc_type(fields: dict[str, Any], sc_type: str) -> None:
    assert new(spec_of(**fields)).status.sc_type == sc_type


def test_new_job_resources_follow_sizing() -> None:
    spec = spec_of(sc_type="C", numExecutors=3, executorMemory="2G")
    sz = resolve_sizing(spec)
    r = new(spec).status.resources
    assert r is not None
    assert (r.driverCores, r.driverMemory, r.numExecutors, r.executorMemory, r.executorMemoryOverhead) == (
        4, "15360m", 3, "2048m", "384m")
    assert r.driverMemoryOverhead == f"{sz.driver_overhead_mib}m" == "1536m"


def test_new_with_suspend_is_killed_without_actions() -> None:
    d = new(spec_of(suspend=True))
    assert d.actions == []
    assert d.status.state == "killed"
    assert d.status.reason == "Suspended"
    assert d.status.attempt is None and d.status.driverPod is None
    assert d.events == [("Normal", "Suspended", "killed: created with suspend: true; nothing was started")]
    assert outcome(d.status) == ("Suspended", "Suspended")
    assert cond(d.status, "Ready") == ("False", "Suspended")


def test_new_with_invalid_spec_is_dead() -> None:
    spec, error = parse_spec({"spec": {"file": "app.jar"}})
    assert spec is None and error is not None
    d = step(None, SparkBatchStatus(), obs(T0 + 5), error=error)
    assert d.actions == []
    assert d.status.state == "dead"
    assert d.status.reason == "InvalidSpec"
    assert d.status.message == "spec: className is required unless file is a Python file (.py)"
    assert d.status.id == UID and d.status.create_time == T0
    assert d.events == [("Warning", "InvalidSpec", f"dead: {error}")]
    assert outcome(d.status) == ("Failed", "InvalidSpec")


def test_new_with_spec_sizing_error_is_dead() -> None:
    """Sizes CEL cannot check (conf's memoryOverhead) are the model's: parse names the key, decide fails the job."""
    spec, error = parse_spec({"spec": {**JAR, "conf": {"spark.driver.memoryOverhead": "lots"}}})
    assert spec is None and error is not None and "spark.driver.memoryOverhead" in error
    d = step(None, SparkBatchStatus(), obs(T0 + 100), error=error)
    assert d.actions == []
    assert d.status.state == "dead"
    assert d.status.reason == "InvalidSpec"
    assert d.status.message == error


def test_running_job_whose_spec_became_invalid_is_dead() -> None:
    spec = spec_of()
    d = step(None, running(spec), obs(T0 + 60 * SECOND, drv("Running")), error="spec.file: Field required")
    assert d.status.state == "dead"
    assert d.status.reason == "InvalidSpec"
    assert d.status.message == "spec.file: Field required"


def test_running_job_whose_spec_became_invalid_stops_its_driver() -> None:
    spec = spec_of()
    now = T0 + 60 * SECOND
    d = step(None, running(spec), obs(now, drv("Running")), error="spec.file: Field required")
    assert d.actions == [Action("delete_driver", pod="pi-driver-1")]
    assert d.status.duration == now - T0


# ----------------------------------------------------------------------------- starting


def test_starting_without_driver_reissues_create() -> None:
    spec = spec_of()
    status = started(spec)
    d = step(spec, status, obs(T0 + 3 * SECOND))
    assert d.actions == [Action("ensure_children", 1), Action("create_driver", 1, "pi-driver-1")]
    assert d.status.state == "starting"
    assert d.status.attempt == 1
    assert d.status.update_time == status.update_time
    assert d.events == []
    assert d.requeue_after_s == 5


def test_starting_without_driver_past_timeout_is_dead() -> None:
    spec = spec_of(schedulingTimeout="90s")
    d = step(spec, started(spec), obs(T0 + 91 * SECOND))
    assert d.status.state == "dead"
    assert d.status.reason == "StartTimeout"


@pytest.mark.parametrize(("timeout", "waited_s", "requeue"), [
    (None, 60, 300.0),  # default 3h: capped at resync_interval_s
    ("90s", 85, 5.5),  # 90 - 85 + 0.5
    ("90s", 89.9, 1.0),  # floor of 1s
    ("1h30m", 5399, 1.5),
])
def test_starting_pending_under_timeout_requeues(timeout: str | None, waited_s: float, requeue: float) -> None:
    spec = spec_of(schedulingTimeout=timeout) if timeout else spec_of()
    status = started(spec)
    d = step(spec, status, obs(T0 + int(waited_s * SECOND), drv("Pending", unschedulable="0/3 nodes available")))
    assert d.actions == []
    assert d.events == []
    assert d.status.state == "starting"
    assert d.status.reason == "DriverCreated"
    assert d.requeue_after_s == pytest.approx(requeue)


SCHEDULER = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available."


@pytest.mark.parametrize("waited_s", [90, 91, 3600])
def test_starting_pending_over_timeout_unschedulable_is_dead(waited_s: int) -> None:
    spec = spec_of(schedulingTimeout="90s")
    now = T0 + waited_s * SECOND
    d = step(spec, started(spec), obs(now, drv("Pending", unschedulable=SCHEDULER)))
    s = d.status
    assert s.state == "dead"
    assert s.reason == "FailedScheduling"
    assert s.message == f"driver not running after 90s schedulingTimeout: {SCHEDULER}"
    assert d.actions == [Action("delete_driver", pod="pi-driver-1")]
    assert s.log == [f"FailedScheduling: {SCHEDULER}"]
    assert s.duration == now - T0
    assert s.nextAttemptTime is None
    assert d.events == [("Warning", "FailedScheduling", f"dead: {s.message}")]
    assert outcome(s) == ("Failed", "FailedScheduling")
    assert cond(s, "Ready") == ("False", "FailedScheduling")


@pytest.mark.parametrize(("driver_kw", "reason", "why"), [
    ({"waiting_reason": "ImagePullBackOff", "waiting_message": "Back-off pulling image \"nope:1\""},
     "ImagePullBackOff", "Back-off pulling image \"nope:1\""),
    ({"waiting_reason": "CreateContainerConfigError"}, "CreateContainerConfigError", "CreateContainerConfigError"),
    ({}, "StartTimeout", "the driver did not start"),
])
def test_starting_pending_over_default_timeout(driver_kw: dict[str, Any], reason: str, why: str) -> None:
    spec = spec_of()
    d = step(spec, started(spec), obs(T0 + 3 * 3600 * SECOND, drv("Pending", **driver_kw)))
    assert d.status.state == "dead"
    assert d.status.reason == reason
    assert d.status.message == f"driver not running after 10800s schedulingTimeout: {why}"
    assert d.actions == [Action("delete_driver", pod="pi-driver-1")]


def test_timeout_counts_from_the_attempt_start() -> None:
    spec = spec_of(schedulingTimeout="90s")
    status = started(spec, now=T0 + 60 * SECOND)  # driver recorded a minute after the CR was created
    d = step(spec, status, obs(T0 + 140 * SECOND, drv("Pending", created=T0 + 61 * SECOND)))
    assert d.status.state == "starting"  # waited 80s of 90s


def test_starting_running_becomes_running() -> None:
    spec = spec_of()
    now = T0 + 8 * SECOND
    d = step(spec, started(spec), obs(now, drv("Running", started_ms=now - 1)))
    assert d.status.state == "running"
    assert d.status.reason == "DriverRunning"
    assert d.status.message == "driver pod pi-driver-1 is running"
    assert d.actions == []
    assert d.events == [("Normal", "DriverRunning", "running: driver pod pi-driver-1 is running")]
    assert cond(d.status, "Ready") == ("True", "DriverRunning")
    assert outcome(d.status) is None


def test_starting_succeeded_goes_straight_to_success() -> None:
    spec = spec_of()
    d = step(spec, started(spec), obs(T0 + 8 * SECOND, drv("Succeeded", exit_code=0)))
    assert d.status.state == "success"
    assert d.actions == []


# ----------------------------------------------------------------------------- running


def test_running_still_running_does_nothing() -> None:
    spec = spec_of()
    status = running(spec)
    d = step(spec, status, obs(T0 + 20 * SECOND, drv("Running")))
    assert d.actions == [] and d.events == [] and d.requeue_after_s is None
    assert d.status.state == "running"


def test_running_succeeded_is_success_with_duration() -> None:
    spec = spec_of()
    now = T0 + 125 * SECOND
    d = step(spec, running(spec), obs(now, drv("Succeeded", exit_code=0, term_reason="Completed")))
    s = d.status
    assert s.state == "success"
    assert s.reason == "Completed"
    assert s.message == "driver pod pi-driver-1 succeeded"
    assert s.duration == 125 * SECOND
    assert s.update_time == now
    assert d.actions == []
    assert d.events == [("Normal", "Completed", "success: driver pod pi-driver-1 succeeded")]
    assert cond(s, "Ready") == ("True", "Completed")
    assert outcome(s) == ("Complete", "Completed")


def test_running_failed_without_auto_recovery_is_dead() -> None:
    spec = spec_of()
    now = T0 + 30 * SECOND
    tail = ["Exception in thread main", "java.lang.IllegalStateException: input path does not exist"]
    d = step(spec, running(spec), obs(now, drv("Failed", exit_code=1, term_reason="Error",
                                               term_message="input path does not exist"), log_tail=tail))
    s = d.status
    assert s.state == "dead"
    assert s.reason == "Error"
    assert s.message == "driver pod pi-driver-1 failed with exit code 1: input path does not exist"
    assert s.log == [*tail, "exit code 1, reason Error: input path does not exist"]
    assert s.duration == 30 * SECOND
    assert d.actions == []
    assert d.events == [("Warning", "Error", f"dead: {s.message}")]
    assert outcome(s) == ("Failed", "Error")
    assert cond(s, "Ready") == ("False", "Error")


def test_running_failed_without_reason() -> None:
    spec = spec_of()
    d = step(spec, running(spec), obs(T0 + 30 * SECOND, drv("Failed", exit_code=137)))
    assert d.status.reason == "DriverFailed"
    assert d.status.message == "driver pod pi-driver-1 failed with exit code 137: the driver failed"
    assert d.status.log == ["exit code 137, reason unknown"]


def test_running_driver_missing_is_dead() -> None:
    spec = spec_of()
    d = step(spec, running(spec), obs(T0 + 30 * SECOND))
    assert d.status.state == "dead"
    assert d.status.reason == "DriverPodMissing"
    assert d.status.message == "driver pod pi-driver-1 disappeared"
    assert d.status.log == ["driver pod pi-driver-1 disappeared"]


@pytest.mark.parametrize(("n_tail", "expected_tail"), [(0, 0), (3, 3), (9, 9), (10, 9), (25, 9)])
def test_log_tail_in_status_log_at_most_10(n_tail: int, expected_tail: int) -> None:
    spec = spec_of()
    tail = [f"line {i}" for i in range(n_tail)]
    d = step(spec, running(spec), obs(T0 + 30 * SECOND, drv("Failed", exit_code=2, term_reason="Error"),
                                      log_tail=tail))
    log = d.status.log
    assert log is not None
    assert len(log) == expected_tail + 1 <= LOG_LINES == 10
    assert log[:-1] == tail[len(tail) - expected_tail:]
    assert log[-1] == "exit code 2, reason Error"


def test_executor_counts_copied() -> None:
    spec = spec_of()
    counts = ExecutorCounts(pending=1, running=4, succeeded=0, failed=1)
    d = step(spec, running(spec), obs(T0 + 20 * SECOND, drv("Running"), executors=counts))
    assert d.status.executors == counts


# ----------------------------------------------------------------------------- auto_recovery


def fail(spec: SparkBatchSpec, status: SparkBatchStatus, now: int, attempt: int) -> Decision:
    return step(spec, status, obs(now, drv("Failed", attempt, exit_code=3, term_reason="Error",
                                           term_message="boom")))


def test_first_failure_with_auto_recovery_is_recovering() -> None:
    spec = spec_of(auto_recovery=True, max_retry_times=2)
    now = T0 + 30 * SECOND
    d = fail(spec, running(spec), now, 1)
    s = d.status
    assert s.state == "recovering"
    assert s.reason == "Error"
    assert s.nextAttemptTime == now + 10 * SECOND
    assert s.message == "driver pod pi-driver-1 failed with exit code 3: boom; retry 1 of 2 in 10s"
    assert d.requeue_after_s == 10.0
    assert d.actions == []
    assert s.duration is None
    assert cond(s, "Ready") == ("False", "Error")
    assert outcome(s) is None


def test_recovering_before_due_only_requeues() -> None:
    spec = spec_of(auto_recovery=True, max_retry_times=2)
    rec = fail(spec, running(spec), T0 + 30 * SECOND, 1).status
    d = step(spec, rec, obs(T0 + 34 * SECOND, drv("Failed", exit_code=3)))
    assert d.actions == [] and d.events == []
    assert d.requeue_after_s == pytest.approx(6.0)
    assert d.status == rec


def test_recovering_after_due_starts_attempt_two() -> None:
    spec = spec_of(auto_recovery=True, max_retry_times=2)
    rec = fail(spec, running(spec), T0 + 30 * SECOND, 1).status
    now = T0 + 40 * SECOND
    d = step(spec, rec, obs(now, drv("Failed", exit_code=3)))
    s = d.status
    assert d.actions == [Action("ensure_children", 2), Action("create_driver", 2, "pi-driver-2")]
    assert s.state == "starting"
    assert s.reason == "Retrying"
    assert s.message == "driver pod pi-driver-2 created (attempt 2)"
    assert s.attempt == 2
    assert s.driverPod == "pi-driver-2"
    assert s.appId == app_id(UID, 2)
    assert s.driverStartTime == now
    assert s.nextAttemptTime is None
    assert s.id == UID and s.create_time == T0


def test_retries_make_exactly_three_drivers_then_dead() -> None:
    """max_retry_times 2: attempt 1 and its 2 retries, then dead; backoff 10s then 20s."""
    spec = spec_of(auto_recovery=True, max_retry_times=2)
    d = new(spec, T0)
    created = [a.pod for a in d.actions if a.verb == "create_driver"]
    status, now = d.status, T0
    backoffs = []
    for attempt in (1, 2, 3):
        now += 5 * SECOND
        status = running(spec, now, attempt, status)
        now += 20 * SECOND
        d = fail(spec, status, now, attempt)
        status = d.status
        if attempt < 3:
            assert status.state == "recovering"
            backoffs.append(status.nextAttemptTime - now if status.nextAttemptTime else None)
            now = status.nextAttemptTime or now
            d = step(spec, status, obs(now, drv("Failed", attempt, exit_code=3)))
            created += [a.pod for a in d.actions if a.verb == "create_driver"]
            status = d.status
            assert status.state == "starting" and status.attempt == attempt + 1
    assert created == ["pi-driver-1", "pi-driver-2", "pi-driver-3"]
    assert backoffs == [10 * SECOND, 20 * SECOND]
    assert status.state == "dead"
    assert status.attempt == 3
    assert status.message == "driver pod pi-driver-3 failed with exit code 3: boom after 2 retries"
    assert status.duration == now - T0
    assert d.actions == []


@pytest.mark.parametrize(("max_retry", "attempt", "state"), [
    (0, 1, "dead"), (1, 1, "recovering"), (1, 2, "dead"), (None, 20, "recovering"), (None, 21, "dead"),
    (100, 100, "recovering"), (100, 101, "dead"),
])
def test_retry_limit(max_retry: int | None, attempt: int, state: str) -> None:
    fields: dict[str, Any] = {"auto_recovery": True}
    if max_retry is not None:
        fields["max_retry_times"] = max_retry
    spec = spec_of(**fields)
    status = running(spec).model_copy(update={"attempt": attempt, "driverPod": f"pi-driver-{attempt}"})
    assert fail(spec, status, T0 + 60 * SECOND, attempt).status.state == state


def test_no_auto_recovery_ignores_max_retry_times() -> None:
    spec = spec_of(max_retry_times=5)
    d = fail(spec, running(spec), T0 + 60 * SECOND, 1)
    assert d.status.state == "dead"
    assert d.status.message == "driver pod pi-driver-1 failed with exit code 3: boom"


@pytest.mark.parametrize(("attempt", "delay_s"), [(1, 100.0), (2, 150.0), (5, 150.0)])
def test_backoff_doubles_and_is_capped(attempt: int, delay_s: float) -> None:
    settings = Settings(retry_backoff_s=100.0, retry_backoff_max_s=150.0)
    spec = spec_of(auto_recovery=True)
    now = T0 + 60 * SECOND
    status = running(spec).model_copy(update={"attempt": attempt, "driverPod": f"pi-driver-{attempt}"})
    d = step(spec, status, obs(now, drv("Failed", attempt, exit_code=1)), settings=settings)
    assert d.status.nextAttemptTime == now + int(delay_s * SECOND)
    assert d.requeue_after_s == delay_s


# ----------------------------------------------------------------------------- suspend


@pytest.mark.parametrize("phase", ["Running", "Pending", "Unknown"])
def test_suspend_live_driver_is_killed_and_deleted(phase: str) -> None:
    spec = spec_of()
    now = T0 + 50 * SECOND
    d = step(spec_of(suspend=True), running(spec), obs(now, drv(phase)))
    s = d.status
    assert s.state == "killed"
    assert s.reason == "Suspended"
    assert s.message == "stopped by spec.suspend"
    assert d.actions == [Action("delete_driver", pod="pi-driver-1")]
    assert s.duration == now - T0
    assert outcome(s) == ("Suspended", "Suspended")


def test_suspend_while_starting_deletes_pending_driver() -> None:
    spec = spec_of()
    d = step(spec_of(suspend=True), started(spec), obs(T0 + 5 * SECOND, drv("Pending")))
    assert d.status.state == "killed"
    assert d.actions == [Action("delete_driver", pod="pi-driver-1")]


@pytest.mark.parametrize("driver", [None, drv("Running", deleting=True), drv("Failed"), drv("Succeeded")])
def test_suspend_without_live_driver_deletes_nothing(driver: DriverObs | None) -> None:
    spec = spec_of()
    d = step(spec_of(suspend=True), running(spec), obs(T0 + 50 * SECOND, driver))
    assert d.status.state == "killed"
    assert d.actions == []


def test_suspend_while_recovering_is_killed_without_new_attempt() -> None:
    spec = spec_of(auto_recovery=True)
    rec = fail(spec, running(spec), T0 + 30 * SECOND, 1).status
    d = step(spec_of(auto_recovery=True, suspend=True), rec, obs(T0 + 90 * SECOND, drv("Failed", exit_code=3)))
    assert d.status.state == "killed"
    assert d.actions == []
    assert d.status.nextAttemptTime is None
    assert d.status.attempt == 1


# ----------------------------------------------------------------------------- terminal states


def terminal_status(state: str) -> SparkBatchStatus:
    spec = spec_of()
    base = running(spec)
    return base.model_copy(update={"state": state, "reason": "X", "message": "done", "duration": 42})


@pytest.mark.parametrize("state", ["success", "dead", "killed"])
@pytest.mark.parametrize("driver", [None, drv("Running"), drv("Failed", exit_code=1), drv("Pending")])
@pytest.mark.parametrize("suspend", [False, True])
def test_terminal_states_are_final(state: str, driver: DriverObs | None, suspend: bool) -> None:
    status = terminal_status(state)
    spec = spec_of(suspend=True) if suspend else spec_of(auto_recovery=True)
    d = step(spec, status, obs(T0 + 10**7, driver, log_tail=["x"]))
    assert d.actions == []
    assert d.events == []
    assert d.requeue_after_s is None
    assert d.status.state == state
    assert d.status.reason == "X" and d.status.duration == 42
    assert d.status.update_time == status.update_time


@pytest.mark.parametrize(("state", "ended", "flipped"), [
    ("success", "Complete", {"Ready", "Failed", "Suspended"}),  # Ready: success is done well
    ("dead", "Failed", {"Complete", "Failed", "Suspended"}),
    ("killed", "Suspended", {"Complete", "Failed", "Suspended"}),
])
def test_terminal_conditions_of_an_older_operator_are_put_right(state: str, ended: str, flipped: set[str]) -> None:
    # An operator before Failed/Suspended set Complete=True on every final state: the first pass
    # after an upgrade makes `kubectl wait --for=condition=Complete` stop returning for dead jobs.
    old = terminal_status(state).model_copy(update={"conditions": [
        Condition(type="Ready", status="False", reason="X", message="done", lastTransitionTime="2023-01-01T00:00:00Z"),
        Condition(type="Complete", status="True", reason="X", message="done", lastTransitionTime="2023-01-01T00:00:00Z"),
    ]})
    now = T0 + 10**7
    d = step(spec_of(), old, obs(now))
    assert d.actions == [] and d.events == []
    assert outcome(d.status) == (ended, "X")
    assert {c.type for c in d.status.conditions or [] if c.lastTransitionTime == iso(now)} == flipped
    again = step(spec_of(), d.status, obs(now + SECOND))
    assert again.status == d.status  # settled: no status write on later passes


def test_terminal_state_with_invalid_spec_stays() -> None:
    d = step(None, terminal_status("success"), obs(T0 + 10**7), error="spec.file: Field required")
    assert d.status.state == "success"
    assert d.actions == []


# ----------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(("state", "ready", "ended"), [
    ("starting", "False", None), ("running", "True", None), ("recovering", "False", None),
    ("success", "True", "Complete"), ("dead", "False", "Failed"), ("killed", "False", "Suspended"),
])
def test_conditions_per_state(state: str, ready: str, ended: str | None) -> None:
    # Complete only on success, so that `kubectl wait --for=condition=Complete` does not return
    # for a dead job; a stop is neither success nor failure.
    spec = spec_of(auto_recovery=True)
    now = T0 + 30 * SECOND
    status = {
        "starting": lambda: started(spec),
        "running": lambda: running(spec),
        "recovering": lambda: fail(spec, running(spec), now, 1).status,
        "success": lambda: step(spec, running(spec), obs(now, drv("Succeeded"))).status,
        "dead": lambda: step(spec_of(), running(spec_of()), obs(now, drv("Failed", exit_code=1))).status,
        "killed": lambda: step(spec_of(suspend=True), running(spec), obs(now, drv("Running"))).status,
    }[state]()
    assert status.state == state
    assert cond(status, "Ready")[0] == ready
    for type_ in ("Complete", "Failed", "Suspended"):
        assert cond(status, type_) == ("True" if type_ == ended else "False", status.reason)
    assert [c.type for c in status.conditions or []] == ["Ready", "Complete", "Failed", "Suspended"]
    for c in status.conditions or []:
        assert c.observedGeneration == 1
        assert c.message == (status.message if c.type in ("Ready", ended) else "")


def test_condition_transition_time_moves_only_on_flip() -> None:
    spec = spec_of(auto_recovery=True)
    s1 = started(spec, T0)  # Ready False at T0
    s2 = running(spec, T0 + 10 * SECOND, status=s1)  # Ready True at T0+10s
    s3 = fail(spec, s2, T0 + 20 * SECOND, 1).status  # Ready False at T0+20s; the outcomes stay False since T0
    times = {c.type: c.lastTransitionTime for c in s3.conditions or []}
    assert times == {"Ready": "2023-11-14T22:13:40Z", "Complete": "2023-11-14T22:13:20Z",
                     "Failed": "2023-11-14T22:13:20Z", "Suspended": "2023-11-14T22:13:20Z"}


# ----------------------------------------------------------------------------- determinism


def scenarios() -> list[tuple[SparkBatchSpec | None, SparkBatchStatus, Observed]]:
    spec = spec_of(auto_recovery=True, max_retry_times=2)
    return [
        (spec, SparkBatchStatus(), obs(T0)),
        (spec, started(spec), obs(T0 + 5 * SECOND, drv("Pending", unschedulable=SCHEDULER))),
        (spec, running(spec), obs(T0 + 50 * SECOND, drv("Failed", exit_code=1), log_tail=["a", "b"])),
        (spec_of(suspend=True), running(spec), obs(T0 + 50 * SECOND, drv("Running"))),
        (None, SparkBatchStatus(), obs(T0)),
    ]


@pytest.mark.parametrize("i", range(5))
def test_same_inputs_same_output(i: int) -> None:
    spec, status, observed = scenarios()[i]
    before = status.model_dump()
    first = decide(spec, "bad" if spec is None else None, META, status, observed, SETTINGS)
    second = decide(spec, "bad" if spec is None else None, META, status, observed, SETTINGS)
    assert first == second
    assert first.status.model_dump() == second.status.model_dump()
    assert status.model_dump() == before  # the input status is not mutated


# ----------------------------------------------------------------------------- observation → DriverObs


def test_rendered_driver_pod_is_observed_as_the_driver() -> None:
    spec = spec_of()
    owner = render.Owner("lakejob.io/v1alpha1", "SparkBatch", "pi", "team-a", UID)
    pod = render.driver_pod(spec, owner, resolve_sizing(spec), 1, SETTINGS, "pi-spark")
    summary = summarize_pod(pod)
    assert summary["role"] == "driver"
    assert summary["app"] == app_id(UID, 1)
    assert summary["phase"] == "Pending"
    o = observe_pods([summary], "pi-driver-1", app_id(UID, 1), T0, None)
    assert o.driver == DriverObs(name="pi-driver-1", phase="Pending", created_ms=0)


def pod_body(name: str, role: str, app: str, phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team-a", "creationTimestamp": "2023-11-14T22:13:20Z",
                         "labels": {"spark-role": role, "spark-app-selector": app, "lakejob.io/name": "pi"}},
            "status": {"phase": phase, **status}}


def test_observe_unschedulable_and_terminated() -> None:
    app = app_id(UID, 1)
    pending = pod_body("pi-driver-1", "driver", app, "Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": SCHEDULER}])
    o = observe_pods([summarize_pod(pending)], "pi-driver-1", app, T0, None)
    assert o.driver is not None
    assert o.driver.unschedulable == SCHEDULER
    assert o.driver.created_ms == T0
    failed = pod_body("pi-driver-1", "driver", app, "Failed", containerStatuses=[{"state": {"terminated": {
        "exitCode": 3, "reason": "Error", "message": "boom",
        "startedAt": "2023-11-14T22:13:25Z", "finishedAt": "2023-11-14T22:13:30Z"}}}])
    o = observe_pods([summarize_pod(failed)], "pi-driver-1", app, T0, ["x"])
    assert o.driver == DriverObs(name="pi-driver-1", phase="Failed", created_ms=T0, exit_code=3, term_reason="Error",
                                 term_message="boom", started_ms=T0 + 5 * SECOND, finished_ms=T0 + 10 * SECOND)
    assert o.log_tail == ["x"]


def test_observe_counts_only_this_attempts_executors() -> None:
    app1, app2 = app_id(UID, 1), app_id(UID, 2)
    pods = [summarize_pod(b) for b in [
        pod_body("pi-driver-1", "driver", app1, "Failed"),
        pod_body("pi-driver-2", "driver", app2, "Running"),
        pod_body("pi-a2-exec-1", "executor", app2, "Running"),
        pod_body("pi-a2-exec-2", "executor", app2, "Running"),
        pod_body("pi-a2-exec-3", "executor", app2, "Pending"),
        pod_body("pi-a1-exec-1", "executor", app1, "Failed"),
    ]]
    o = observe_pods(pods, "pi-driver-2", app2, T0, None)
    assert o.driver is not None and o.driver.name == "pi-driver-2" and o.driver.phase == "Running"
    assert o.executors == ExecutorCounts(pending=1, running=2, succeeded=0, failed=0)


SPARK_PI_LOG = [
    "25/11/29 18:45:04 INFO SparkContext: Running Spark version 4.0.1",
    '{"ts":"2026-11-29T18:45:05.001Z","level":"INFO","msg":"Registered executor","logger":"Foo"}',
    "25/11/29 18:45:09 WARN TaskSetManager: Stage 0 contains a task of very large size",
    "Pi is roughly 3.14159",
    "25/11/29 18:45:10 INFO SparkContext: Successfully stopped SparkContext",
    "25/11/29 18:45:10 DEBUG ShutdownHookManager: Deleting directory /var/data/spark-local",
    "",
    *[f"25/11/29 18:45:11 INFO ShutdownHookManager: line {i}" for i in range(300)],
]


def test_driver_output_keeps_what_the_program_printed_and_warnings_not_sparks_info() -> None:
    assert driver_output(SPARK_PI_LOG) == [
        "25/11/29 18:45:09 WARN TaskSetManager: Stage 0 contains a task of very large size", "Pi is roughly 3.14159"]


def test_a_succeeded_drivers_output_has_no_stack_frames_of_sparks_warnings() -> None:
    blocked = ["25/12/03 13:11:20 WARN BlockedThreadChecker: Thread vert.x-eventloop-thread-1 has been blocked",
               "io.vertx.core.VertxException: Thread blocked",
               *[f"\tat app//io.netty.Frame{i}.run(Frame.java:{i})" for i in range(12)], "\t... 22 more"]
    log = [*blocked, "Pi is roughly 3.14322", "25/12/03 13:11:30 INFO SparkContext: Successfully stopped"]
    assert driver_output(log, succeeded=True) == [blocked[0], blocked[1], "Pi is roughly 3.14322"]
    assert driver_output(log)[-2:] == ["\t... 22 more", "Pi is roughly 3.14322"]  # a failure keeps its trace


def test_a_succeeded_driver_leaves_its_output_in_status_log() -> None:
    spec = spec_of()
    d = step(spec, running(spec), obs(T0 + 30 * SECOND, drv("Succeeded", exit_code=0), log_tail=SPARK_PI_LOG))
    assert d.status.state == "success"
    assert d.status.log is not None and d.status.log[-1] == "Pi is roughly 3.14159"


PY_FAILURE = """25/11/29 18:45:04 INFO SparkContext: Running Spark version 4.0.1
Traceback (most recent call last):
  File "/opt/app/fail.py", line 6, in <module>
    raise ValueError("boom 42")
ValueError: boom 42
25/11/29 18:45:10 INFO ShutdownHookManager: Shutdown hook called"""
JVM_FAILURE = """Exception in thread "main" java.lang.IllegalStateException: boom 42
\tat Main.main(Main.java:3)
25/11/29 18:45:10 INFO ShutdownHookManager: Shutdown hook called"""


@pytest.mark.parametrize(("message", "expected"), [
    (PY_FAILURE, "ValueError: boom 42"),
    (JVM_FAILURE, 'Exception in thread "main" java.lang.IllegalStateException: boom 42'),
    ("plain reason", "plain reason"),
])
def test_a_failed_drivers_event_names_the_exception(message: str, expected: str) -> None:
    assert headline(message) == expected
    spec = spec_of()
    d = step(spec, running(spec), obs(T0 + 30 * SECOND, drv("Failed", exit_code=1, term_reason="Error",
                                                               term_message=message)))
    assert d.status.message == f"driver pod pi-driver-1 failed with exit code 1: {expected}"


def test_a_headline_is_one_line_even_when_the_tail_is_all_stack_frames() -> None:
    message = "Caused by: java.io.IOException: Connection reset\n" + "\n".join(["\tat x.y(Z.java:1)"] * 40)
    assert headline(message) == "Caused by: java.io.IOException: Connection reset"
    assert headline("\tat only.frames(A.java:1)\n\t... 1 more") == "at only.frames(A.java:1)"
