"""SparkSession: the model's admission rules, the generated CRD, the rendered Connect server, and
the state machine (decide) fed with REST payloads recorded from a real local Spark Connect server
(tests/e2e/data/sparksession_rest.json)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from lakejob import crds
from lakejob.controllers.sparkbatch_decide import DriverObs, Meta
from lakejob.controllers.sparksession_decide import (
    Action,
    Decision,
    Observed,
    RestActivity,
    RestObs,
    decide,
    iso,
    rest_activity,
    spark_time_ms,
)
from lakejob.models.spark import ExecutorCounts, resolve_sizing
from lakejob.models.sparksession import SparkSessionSpec, SparkSessionStatus
from lakejob.render import spark as render_spark
from lakejob.render import sparksession as r
from lakejob.repl import server as repl_server
from lakejob.render.common import Owner
from lakejob.render.spark import app_id
from lakejob.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RECORDED = json.loads((ROOT / "tests" / "e2e" / "data" / "sparksession_rest.json").read_text())
DLI = yaml.safe_load((ROOT / "examples" / "sparksession-dli.yaml").read_text())["spec"]
BASE = {"kind": "spark", "cluster_name": "c1"}
UID = "7d1e0b7a-3d2f-4e8b-a1c9-0f2d3e4a5b6c"
OWNER = Owner("lakejob.io/v1alpha1", "SparkSession", "nb", "team-a", UID)
SETTINGS = Settings()
T0 = 1_700_000_000_000
SECOND = 1000
META = Meta(name="nb", namespace="team-a", uid=UID, generation=1, created_ms=T0)
APP = app_id(UID, 1)


def spec_of(**fields: Any) -> SparkSessionSpec:
    return SparkSessionSpec.model_validate({**BASE, **fields})


def rejected(**fields: Any) -> str:
    with pytest.raises(ValidationError) as e:
        SparkSessionSpec.model_validate({k: v for k, v in {**BASE, **fields}.items() if v is not None})
    return str(e.value)


# ----------------------------------------------------------------------------- model


def test_the_dli_example_request_is_accepted_unchanged() -> None:
    spec = SparkSessionSpec.model_validate(DLI)
    assert spec.kind == "spark" and spec.cluster_name == "test_cluster" and spec.sc_type == "A"
    assert spec.groups and spec.groups[0].resources and spec.groups[0].resources[0].name == "gsjdbc2.jar"


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": None}, "kind"),
    ({"kind": "sparkr"}, "kind"),
    ({"cluster_name": None}, "cluster_name is required"),
    ({"queue": "q"}, "queue and cluster_name cannot coexist"),
    ({"spark_version": "3.3.2"}, "needs spark_version 3.4 or later"),
    ({"spark_version": "2.4"}, "needs spark_version 3.4 or later"),
    ({"driverMemory": "2048"}, "must include the unit"),
    ({"executorMemory": 4096}, "must include the unit"),
    ({"heartbeatTimeoutInSecond": -1}, "heartbeatTimeoutInSecond"),
    ({"name": "x" * 129}, "name"),
    ({"sc_type": "D"}, "sc_type"),
    ({"image": "me/spark:4"}, "image is valid only when feature is custom"),
    ({"spark_version": "3.5", "resources": [{"name": "a.jar"}]}, "not supported by spark_version 3.3 or later"),
    ({"file": "app.jar"}, "file"),
])
def test_invalid_sessions_are_rejected_naming_the_rule(fields: dict[str, Any], message: str) -> None:
    assert message in rejected(**fields)


def test_queue_alone_is_the_synonym_of_cluster_name_and_versions_from_3_4_pass() -> None:
    assert SparkSessionSpec.model_validate({"kind": "sql", "queue": "q"}).queue == "q"
    for version in ("3.4", "3.5.7", "4.0.1", "10.1"):
        assert spec_of(spark_version=version).spark_version == version


def test_pyspark_sessions_size_memory_for_python() -> None:
    assert resolve_sizing(spec_of(kind="pyspark", executorMemory="4G")).executor_overhead_mib == 1638
    assert resolve_sizing(spec_of(kind="spark", executorMemory="4G")).executor_overhead_mib == 409
    assert resolve_sizing(spec_of(driverCores=3)).sc_type == "CUSTOMIZED"


def crd() -> dict[str, Any]:
    (kind,) = [k for k in crds.KINDS if k.kind == "SparkSession"]
    return crds.crd(kind)


def test_crd_names_columns_and_mutable_fields() -> None:
    c = crd()
    assert c["spec"]["names"]["shortNames"] == ["ss"] and c["spec"]["names"]["categories"] == ["lakejob"]
    (v,) = c["spec"]["versions"]
    assert [col["name"] for col in v["additionalPrinterColumns"] if "priority" not in col] == ["State", "URL", "Age"]
    spec = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["kind"]
    for mutable in ("suspend", "heartbeatTimeoutInSecond"):
        assert not any(rule["rule"] == "self == oldSelf" for rule in spec["properties"][mutable].get(
            "x-kubernetes-validations", []))
    assert any(rule["rule"] == "self == oldSelf" for rule in spec["properties"]["kind"]["x-kubernetes-validations"])
    cel = [rule["rule"] for rule in spec["x-kubernetes-validations"]]
    for rule in SparkSessionSpec.__rules__:
        assert rule.cel in cel
    status = v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"connectUrl", "lastActivityTime", "idleSince", "state"} <= set(status)


# ----------------------------------------------------------------------------- render


def test_driver_runs_the_connect_server_and_serves_its_port() -> None:
    spec = spec_of()
    pod = r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, SETTINGS, "nb-spark")
    (c,) = pod["spec"]["containers"]
    assert c["args"] == ["driver", "--properties-file", render_spark.PROPERTIES_FILE,
                         "--conf", f"spark.driver.host={render_spark.DRIVER_HOST}", "--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "driver-rpc-port": 7078, "blockmanager": 7079, "spark-ui": 4040, "spark-connect": 15002}
    assert pod["metadata"]["name"] == "nb-session-1"
    assert pod["metadata"]["labels"]["lakejob.io/kind"] == "SparkSession"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "SparkSession"
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "7884Mi"}  # sc_type A: 7G + 716M


def test_the_driver_is_ready_when_the_connect_port_listens() -> None:
    spec = spec_of()
    (c,) = r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, SETTINGS, "nb-spark")["spec"]["containers"]
    assert c["readinessProbe"]["tcpSocket"] == {"port": 15002}


def test_the_statement_server_is_a_sidecar_in_the_sessions_image_from_the_driver_pods_conf_files() -> None:
    spec = spec_of(kind="sql", feature="custom", image="registry.example/spark:4.0.1")
    pod = r.driver_pod(spec, OWNER, resolve_sizing(spec), 1, SETTINGS, "nb-spark")
    (repl,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "repl"]
    assert repl["restartPolicy"] == "Always"  # native sidecar: the pod still ends with the driver
    assert repl["image"] == pod["spec"]["containers"][0]["image"] == "registry.example/spark:4.0.1"
    assert repl["command"] == ["python3", "/opt/spark/conf/lakejob-repl.py", "--port", "8999", "--kind", "sql",
                               "--remote", "sc://localhost:15002"]
    assert repl["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8999}
    assert repl["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "lakejob-repl-tmp", "emptyDir": {}} in pod["spec"]["volumes"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["conf.lakejob.io/lakejob-repl.py"] == (Path(repl_server.__file__)).read_text()
    assert {"path": "lakejob-repl.py", "fieldRef": {"fieldPath": "metadata.annotations['conf.lakejob.io/lakejob-repl.py']"}} \
        in pod["spec"]["volumes"][0]["downwardAPI"]["items"]


def test_service_exposes_connect_ui_and_statement_ports() -> None:
    svc = r.service(spec_of(), OWNER)
    assert svc["metadata"]["name"] == "nb-session-svc" and svc["spec"]["clusterIP"] == "None"
    # The operator's REST poller reaches the driver by this name before it is Ready (before Connect listens).
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {
        "driver-rpc-port": 7078, "blockmanager": 7079, "spark-ui": 4040, "spark-connect": 15002, "repl": 8999}
    assert "selector" not in svc["spec"]  # the operator writes its Endpoints (render.endpoints)


def test_properties_bind_the_connect_port_and_add_its_package_on_spark_3() -> None:
    spec = spec_of(conf={"spark.jars.packages": "org.postgresql:postgresql:42.7.4",
                         "spark.connect.grpc.binding.port": "1", "spark.ui.enabled": "false",
                         "spark.ui.port": "4041"})
    props = r.properties(spec, OWNER, resolve_sizing(spec), 1, SETTINGS)
    assert props["spark.connect.grpc.binding.port"] == "15002"
    # The operator reads idle/busy from the UI's REST API, at the Service's port.
    assert (props["spark.ui.enabled"], props["spark.ui.port"]) == ("true", "4040")
    assert props["spark.jars.packages"] == ("org.apache.spark:spark-connect_2.12:3.5.7,"
                                            "org.postgresql:postgresql:42.7.4")
    assert props["spark.dynamicAllocation.enabled"] == "false"
    assert props["spark.kubernetes.driver.pod.name"] == "nb-session-1"
    four = spec_of(spark_version="4.0.1", conf={"spark.dynamicAllocation.enabled": "true"})
    props4 = r.properties(four, OWNER, resolve_sizing(four), 1, SETTINGS)
    assert "spark.jars.packages" not in props4 and props4["spark.dynamicAllocation.enabled"] == "true"
    assert r.connect_package("3.4") == "org.apache.spark:spark-connect_2.12:3.4.0"


def test_the_drivers_spark_properties_are_the_sessions() -> None:
    spec = spec_of()
    text = r.driver_pod(spec, OWNER, resolve_sizing(spec), 2, SETTINGS, "sa")["metadata"]["annotations"][
        "conf.lakejob.io/spark.properties"]
    assert "spark.connect.grpc.binding.port=15002\n" in text
    assert "spark.kubernetes.driver.pod.name=nb-session-2\n" in text


def test_urls() -> None:
    assert r.connect_url("nb", "team-a") == "sc://nb-session-svc.team-a.svc:15002"
    assert r.rest_url(SETTINGS.spark_rest_url_template, "nb", "team-a", APP) == \
        f"http://nb-session-svc.team-a.svc:4040/api/v1/applications/{APP}/jobs"
    assert r.rest_url("http://127.0.0.1:9/{namespace}/{name}/{appId}", "nb", "ns", "a1") == "http://127.0.0.1:9/ns/nb/a1"


# ----------------------------------------------------------------------------- REST payloads (recorded)


def test_recorded_payloads_mean_idle_busy_idle() -> None:
    assert rest_activity(RECORDED["jobs_idle"]) == RestActivity(running_jobs=0, last_activity_ms=None)
    busy = rest_activity(RECORDED["jobs_busy"])
    assert busy is not None and busy.running_jobs == 1
    assert busy.last_activity_ms == spark_time_ms(RECORDED["jobs_busy"][0]["submissionTime"])
    after = rest_activity(RECORDED["jobs_idle_after"])
    assert after is not None and after.running_jobs == 0
    assert after.last_activity_ms == spark_time_ms(RECORDED["jobs_idle_after"][0]["completionTime"])
    assert after.last_activity_ms - busy.last_activity_ms == 10_000  # the recorded job ran 10 s
    assert rest_activity(RECORDED["starting_text"]) is None  # the UI's "Spark is starting up" page
    assert rest_activity(None) is None and rest_activity({"jobs": []}) is None


def test_spark_time() -> None:
    assert spark_time_ms("1970-01-01T00:00:01.500GMT") == 1500


# ----------------------------------------------------------------------------- decide


def drv(phase: str, attempt: int = 1, **kw: Any) -> DriverObs:
    return DriverObs(name=f"nb-session-{attempt}", phase=phase, created_ms=T0, **kw)


def obs(now: int, driver: DriverObs | None = None, payload: Any = "none", heartbeat: str | None = None,
        app: str = APP, ready: bool | None = None) -> Observed:
    """What a pass sees; a Running driver is Ready (its Connect port answers) unless `ready` says not."""
    rest = None if payload == "none" else RestObs(app=app, at_ms=now, activity=rest_activity(payload))
    ready = driver is not None and driver.phase == "Running" if ready is None else ready
    return Observed(now_ms=now, driver=driver, executors=ExecutorCounts(), rest=rest, heartbeat=heartbeat,
                    driver_ready=ready)


def step(status: SparkSessionStatus, observed: Observed, spec: SparkSessionSpec | None = None,
         settings: Settings = SETTINGS) -> Decision:
    return decide(spec or spec_of(), None, META, status, observed, settings)


def cond(status: SparkSessionStatus, type_: str) -> str:
    (c,) = [c for c in status.conditions or [] if c.type == type_]
    return c.status


def ended(status: SparkSessionStatus) -> str | None:
    """The one of Complete, Failed, Suspended that is True, or None."""
    true = [c.type for c in status.conditions or [] if c.type in ("Complete", "Failed", "Suspended")
            and c.status == "True"]
    assert len(true) <= 1
    return true[0] if true else None


def idle_session(spec: SparkSessionSpec, now: int = T0 + 20 * SECOND) -> SparkSessionStatus:
    s = step(SparkSessionStatus(), obs(T0), spec).status
    s = step(s, obs(T0 + 10 * SECOND, drv("Running")), spec).status
    s = step(s, obs(now, drv("Running"), RECORDED["jobs_idle"]), spec).status
    assert s.state == "idle"
    return s


def job(status: str, submitted_ms: int, completed_ms: int | None = None) -> dict[str, Any]:
    """A jobs-list entry with the recorded shape and our times."""
    entry = dict(RECORDED["jobs_idle_after" if completed_ms else "jobs_busy"][0])
    entry["status"] = status
    entry["submissionTime"] = iso(submitted_ms).replace("Z", ".000GMT")
    if completed_ms:
        entry["completionTime"] = iso(completed_ms).replace("Z", ".000GMT")
    return entry


def test_new_session_records_the_attempt_and_creates_its_driver() -> None:
    d = step(SparkSessionStatus(), obs(T0 + 100))
    s = d.status
    assert s.state == "not_started" and s.reason == "DriverCreated" and s.kind == "spark"
    assert s.attempt == 1 and s.driverPod == "nb-session-1" and s.appId == APP and s.sc_type == "A"
    assert s.connectUrl == "sc://nb-session-svc.team-a.svc:15002" and s.cluster_name == "c1"
    assert d.actions == [Action("ensure_children", 1), Action("create_driver", 1, "nb-session-1")]
    assert [e[1] for e in d.events] == ["DriverCreated"]


def test_running_driver_is_starting_until_rest_answers_then_idle() -> None:
    s = step(SparkSessionStatus(), obs(T0)).status
    d = step(s, obs(T0 + 5 * SECOND, drv("Running")))
    assert d.status.state == "starting" and cond(d.status, "Ready") == "False"
    d = step(d.status, obs(T0 + 6 * SECOND, drv("Running"), RECORDED["starting_text"]))
    assert d.status.state == "starting" and d.requeue_after_s is not None
    d = step(d.status, obs(T0 + 9 * SECOND, drv("Running"), RECORDED["jobs_idle"]))
    s = d.status
    assert s.state == "idle" and cond(s, "Ready") == "True" and cond(s, "RestReachable") == "True"
    assert s.idleSince == iso(T0 + 9 * SECOND) and s.runningJobs == 0
    assert d.requeue_after_s == pytest.approx(3600.1)  # the operator's default idle timeout


def test_rest_answering_is_not_idle_until_the_driver_is_ready_then_idle() -> None:
    # On the real node Spark's REST API answered a minute before the Connect server listened.
    s = step(SparkSessionStatus(), obs(T0)).status
    s = step(s, obs(T0 + 5 * SECOND, drv("Running"), ready=False)).status
    d = step(s, obs(T0 + 9 * SECOND, drv("Running"), RECORDED["jobs_idle"], ready=False))
    assert d.status.state == "starting" and d.status.reason == "WaitingForConnect"
    assert "15002" in (d.status.message or "") and cond(d.status, "Ready") == "False"
    assert cond(d.status, "RestReachable") == "True" and [e[1] for e in d.events] == ["WaitingForConnect"]
    assert d.requeue_after_s is not None
    again = step(d.status, obs(T0 + 12 * SECOND, drv("Running"), RECORDED["jobs_idle"], ready=False))
    assert again.status.state == "starting" and again.events == []  # one Event, not one per pass
    d = step(d.status, obs(T0 + 15 * SECOND, drv("Running"), RECORDED["jobs_idle"], ready=True))
    assert d.status.state == "idle" and cond(d.status, "Ready") == "True"
    assert d.status.idleSince == iso(T0 + 15 * SECOND)


def test_a_connect_server_that_never_listens_is_a_start_timeout_saying_so() -> None:
    spec = spec_of(schedulingTimeout="60s")
    s = step(SparkSessionStatus(), obs(T0), spec).status
    s = step(s, obs(T0 + 5 * SECOND, drv("Running"), RECORDED["jobs_idle"], ready=False), spec).status
    d = step(s, obs(T0 + 61 * SECOND, drv("Running"), RECORDED["jobs_idle"], ready=False), spec)
    assert d.status.state == "error" and d.status.reason == "StartTimeout"
    assert d.status.log == ["StartTimeout: the Spark Connect server did not listen on port 15002 within 60s"]
    assert d.actions == [Action("delete_driver", pod="nb-session-1")]


def test_idle_busy_idle_with_recorded_payloads_and_the_idle_clock_restarts() -> None:
    spec = spec_of(heartbeatTimeoutInSecond=60)
    s = idle_session(spec)
    busy_at = spark_time_ms(RECORDED["jobs_busy"][0]["submissionTime"])
    d = step(s, obs(busy_at + SECOND, drv("Running"), RECORDED["jobs_busy"]), spec)
    assert d.status.state == "busy" and d.status.idleSince is None and d.status.runningJobs == 1
    assert d.status.lastActivityTime == iso(busy_at)
    done_at = spark_time_ms(RECORDED["jobs_idle_after"][0]["completionTime"])
    d = step(d.status, obs(done_at + 2 * SECOND, drv("Running"), RECORDED["jobs_idle_after"]), spec)
    assert d.status.state == "idle" and d.status.idleSince == iso(done_at)
    # due when 60 s have passed since idleSince (whole seconds, as status shows it): 2 s have
    assert d.requeue_after_s == pytest.approx((done_at // 1000 * 1000 + 60 * SECOND - done_at - 2 * SECOND) / 1000 + 0.1)
    assert [e[1] for e in d.events] == ["Idle"]


def test_idle_timeout_shuts_down_then_dead_and_everything_deleted() -> None:
    spec = spec_of(heartbeatTimeoutInSecond=30)
    s = idle_session(spec, now=T0 + 20 * SECOND)
    d = step(s, obs(T0 + 49 * SECOND, drv("Running"), RECORDED["jobs_idle"]), spec)
    assert d.status.state == "idle" and d.actions == [] and d.requeue_after_s == pytest.approx(1.1)
    d = step(s, obs(T0 + 50 * SECOND, drv("Running"), RECORDED["jobs_idle"]), spec)
    assert d.status.state == "shutting_down" and d.status.reason == "IdleTimeout"
    assert d.actions == [Action("delete_driver", pod="nb-session-1")]
    d = step(d.status, obs(T0 + 51 * SECOND, drv("Running", deleting=True)), spec)
    assert d.status.state == "shutting_down" and d.actions == []
    d = step(d.status, obs(T0 + 52 * SECOND, None), spec)
    s = d.status
    assert s.state == "dead" and s.reason == "IdleTimeout" and s.connectUrl is None
    assert d.actions == [Action("delete_children", 1)]
    # The idle timeout is an end the spec asked for (heartbeatTimeoutInSecond), not a failure.
    assert ended(s) == "Complete" and cond(s, "Ready") == "False"
    assert step(s, obs(T0 + 90 * SECOND, None), spec).actions == []  # final


def test_a_job_between_two_polls_resets_the_idle_clock() -> None:
    spec = spec_of(heartbeatTimeoutInSecond=30)
    s = idle_session(spec)
    payload = [job("SUCCEEDED", T0 + 40 * SECOND, T0 + 42 * SECOND)]
    d = step(s, obs(T0 + 45 * SECOND, drv("Running"), payload), spec)
    assert d.status.state == "idle" and d.status.idleSince == iso(T0 + 42 * SECOND)
    assert step(d.status, obs(T0 + 55 * SECOND, drv("Running"), payload), spec).status.state == "idle"


def test_heartbeat_annotation_resets_the_clock_and_zero_disables_the_timeout() -> None:
    spec = spec_of(heartbeatTimeoutInSecond=30)
    s = idle_session(spec)
    d = step(s, obs(T0 + 45 * SECOND, drv("Running"), RECORDED["jobs_idle"], heartbeat="2026-11-22T10:00:00Z"), spec)
    assert d.status.idleSince == iso(T0 + 45 * SECOND) and d.status.heartbeat == "2026-11-22T10:00:00Z"
    assert d.status.state == "idle"
    # The same value again is not activity.
    d = step(d.status, obs(T0 + 75 * SECOND, drv("Running"), RECORDED["jobs_idle"],
                           heartbeat="2026-11-22T10:00:00Z"), spec)
    assert d.status.state == "shutting_down"
    never = spec_of(heartbeatTimeoutInSecond=0)
    s = idle_session(never)
    d = step(s, obs(T0 + 10 ** 8, drv("Running"), RECORDED["jobs_idle"]), never)
    assert d.status.state == "idle" and d.actions == [] and d.requeue_after_s is None


def test_unreachable_rest_keeps_the_state_says_so_and_holds_the_idle_timeout() -> None:
    spec = spec_of(heartbeatTimeoutInSecond=30)
    s = idle_session(spec)
    d = step(s, obs(T0 + 60 * SECOND, drv("Running"), None), spec)
    assert d.status.state == "idle" and d.actions == []
    assert cond(d.status, "RestReachable") == "False"
    assert [e[:2] for e in d.events] == [("Warning", "RestUnreachable")]
    # Still unreachable: no second Event; timed out long ago, but not shut down blind.
    d = step(d.status, obs(T0 + 90 * SECOND, drv("Running"), None), spec)
    assert d.status.state == "idle" and d.events == [] and d.actions == []
    d = step(d.status, obs(T0 + 91 * SECOND, drv("Running"), RECORDED["jobs_idle"]), spec)
    assert cond(d.status, "RestReachable") == "True" and d.status.state == "shutting_down"


def test_a_poll_of_an_older_attempt_does_not_count() -> None:
    s = step(SparkSessionStatus(), obs(T0)).status
    s = step(s, obs(T0 + SECOND, drv("Running"))).status
    d = step(s, obs(T0 + 2 * SECOND, drv("Running"), RECORDED["jobs_idle"], app="spark-old"))
    assert d.status.state == "starting"


def test_suspend_shuts_down_to_success() -> None:
    s = idle_session(spec_of())
    stop = spec_of(suspend=True)
    d = step(s, obs(T0 + 30 * SECOND, drv("Running"), RECORDED["jobs_idle"]), stop)
    assert d.status.state == "shutting_down" and d.status.reason == "Stopped"
    assert d.actions == [Action("delete_driver", pod="nb-session-1")]
    assert ended(d.status) is None  # Suspended once the driver is gone
    d = step(d.status, obs(T0 + 31 * SECOND, None), stop)
    assert d.status.state == "success" and d.actions == [Action("delete_children", 1)]
    # A stop is neither success nor failure, though DLI names its state success.
    assert ended(d.status) == "Suspended" and cond(d.status, "Complete") == "False"
    created_stopped = step(SparkSessionStatus(), obs(T0), stop)
    assert created_stopped.status.state == "success" and created_stopped.actions == []
    assert ended(created_stopped.status) == "Suspended"


def test_driver_failure_is_error_or_recovering_with_auto_recovery() -> None:
    failed = drv("Failed", exit_code=1, term_reason="Error", term_message="OutOfMemoryError")
    s = idle_session(spec_of())
    d = step(s, obs(T0 + 30 * SECOND, failed))
    assert d.status.state == "error" and d.status.reason == "Error" and d.status.connectUrl is None
    assert "exit code 1" in (d.status.message or "") and d.actions == []
    assert ended(d.status) == "Failed" and cond(d.status, "Complete") == "False"
    spec = spec_of(auto_recovery=True, max_retry_times=1)
    s = idle_session(spec)
    d = step(s, obs(T0 + 30 * SECOND, failed), spec)
    assert d.status.state == "recovering" and d.requeue_after_s == 10
    d = step(d.status, obs(T0 + 41 * SECOND, None), spec)
    assert d.status.state == "not_started" and d.status.attempt == 2 and d.status.appId == app_id(UID, 2)
    assert d.actions == [Action("ensure_children", 2), Action("create_driver", 2, "nb-session-2")]
    d = step(d.status, obs(T0 + 50 * SECOND, drv("Failed", attempt=2, exit_code=1)), spec)
    assert d.status.state == "error" and "after 1 recoveries" in (d.status.message or "")


def test_a_server_that_exits_with_zero_is_success_and_a_lost_driver_an_error() -> None:
    s = idle_session(spec_of())
    d = step(s, obs(T0 + 30 * SECOND, drv("Succeeded", exit_code=0)))
    assert d.status.state == "success" and d.status.reason == "DriverExited"
    assert d.actions == [Action("delete_children", 1)]
    assert ended(d.status) == "Complete"
    d = step(s, obs(T0 + 30 * SECOND, None))
    assert d.status.state == "error" and d.status.reason == "DriverPodMissing"


def test_an_unschedulable_driver_is_an_error_after_the_scheduling_timeout() -> None:
    spec = spec_of(schedulingTimeout="60s")
    s = step(SparkSessionStatus(), obs(T0), spec).status
    pending = drv("Pending", unschedulable="0/4 nodes are available: 4 Insufficient cpu.")
    d = step(s, obs(T0 + 30 * SECOND, pending), spec)
    assert d.status.state == "not_started" and d.requeue_after_s == 30.5  # at the timeout (60 - 30 + 0.5)
    d = step(s, obs(T0 + 61 * SECOND, pending), spec)
    assert d.status.state == "error" and d.status.reason == "FailedScheduling"
    assert d.actions == [Action("delete_driver", pod="nb-session-1")]


def test_default_spark_version_without_connect_is_an_error_not_a_crash() -> None:
    d = step(SparkSessionStatus(), obs(T0), settings=Settings(default_spark_version="3.3.4"))
    assert d.status.state == "error" and "3.4 or later" in (d.status.message or "") and d.actions == []


def test_a_version_with_no_image_is_an_error_naming_it_and_nothing_is_made() -> None:
    only_35 = Settings(spark_image_template="", spark_images={"3.5": "apache/spark:3.5.7"})
    d = step(SparkSessionStatus(), obs(T0), spec_of(spark_version="4.0.1"), settings=only_35)
    assert d.status.state == "error" and d.status.reason == "NoImage" and d.actions == []
    assert "4.0.1" in (d.status.message or "") and "LAKEJOB_SPARK_IMAGES" in (d.status.message or "")


@pytest.mark.parametrize(("driver", "why"), [
    # kill -9 of the JVM on the real node: tini exits 137, the log's tail is an unrelated INFO line.
    (dict(exit_code=137, term_reason="Error", term_message="32:10 INFO SessionHolder: Session with userId"),
     "killed by SIGKILL"),
    (dict(exit_code=1, term_reason="Error", term_message="INFO x\njava.lang.IllegalStateException: boom\n\tat a.b(C)"),
     "java.lang.IllegalStateException: boom"),
    (dict(exit_code=137, term_reason="OOMKilled", term_message=""), "OOMKilled"),
])
def test_a_failed_driver_is_explained_in_one_line(driver: dict[str, Any], why: str) -> None:
    d = step(idle_session(spec_of()), obs(T0 + 30 * SECOND, drv("Failed", **driver)))
    assert d.status.state == "error"
    assert d.status.message == f"driver pod nb-session-1 failed with exit code {driver['exit_code']}: {why}"
