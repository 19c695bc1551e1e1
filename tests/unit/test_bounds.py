"""Everything the operator writes is bounded (issue 11): status text cut by decide, ConfigMaps and
Secrets refused by render before they reach the API server.

A driver that prints a 2 MB line and fails, ten thousand lines, a multi-byte character where the
cut falls, a 2 MB REST answer or child message: each status stays an object etcd accepts, says
where it was cut, and a repeated observation is no new transition. A ConfigMap over 1 MiB, or a
driver pod whose conf files make its annotations larger than 256 KiB, is an ObjectTooLarge naming
the object, its size and the limit.
"""
from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from lakejob.controllers import decide_common
from lakejob.controllers import dagjob_decide as dag
from lakejob.controllers import flinkjarjob_decide as flink
from lakejob.controllers import sparkbatch_decide as batch
from lakejob.controllers import sparksession_decide as session
from lakejob.controllers.decide_common import LOG_BYTES, LOG_LINE_BYTES, MESSAGE_BYTES, Meta, clip, tail
from lakejob.models.dagjob import DagJobSpec, DagJobStatus
from lakejob.models.flinkjarjob import FlinkJarJobSpec, FlinkJarJobStatus, TaskManagerCounts
from lakejob.models.spark import ExecutorCounts
from lakejob.models.sparkbatch import SparkBatchSpec, SparkBatchStatus
from lakejob.models.sparksession import SparkSessionSpec, SparkSessionStatus
from lakejob.render import common
from lakejob.render import dag as render_dag
from lakejob.render import flink as render_flink
from lakejob.render import spark as render_spark
from lakejob.render.common import ObjectTooLarge, Owner
from lakejob.settings import Settings

T0 = 1_700_000_000_000
META = Meta(name="pi", namespace="team-a", uid="uid-1", generation=1, created_ms=T0)
SETTINGS = Settings()
MB2 = 2 * 1024 * 1024
# A whole status stays far below what etcd takes for the object (1.5 MiB, the spec included).
STATUS_BYTES = 32 * 1024


def utf8(text: str) -> int:
    return len(text.encode())


def status_bytes(status: BaseModel) -> int:
    return utf8(json.dumps(status.model_dump(exclude_none=True, mode="json"), ensure_ascii=False))


# ----------------------------------------------------------------------------- clip and tail


def test_clip_leaves_text_that_fits_as_it_is() -> None:
    assert clip("é" * 10, 20) == "é" * 10 and clip("", 64) == ""


@pytest.mark.parametrize("char", ["x", "é", "€", "😀"])
@pytest.mark.parametrize("budget", [64, 65, 66, 67, 4096])
def test_clip_cuts_on_a_character_boundary_and_says_so(char: str, budget: int) -> None:
    text = char * 5000
    out = clip(text, budget)
    assert utf8(out) <= budget
    kept, mark = out.split(" …[cut: ")
    assert text.startswith(kept) and len(kept) > 0  # whole characters only: the prefix decodes as it was
    assert mark == f"{utf8(text)} bytes in all]"
    assert utf8(out) > budget - len(char.encode())  # nothing more was dropped than the boundary needs


def test_clip_counts_a_lone_surrogate_rather_than_failing() -> None:
    assert clip("\ud800" * 100, 64).endswith("bytes in all]")


def test_tail_of_ten_thousand_lines_is_the_last_ones() -> None:
    lines = [f"line {i}" for i in range(10_000)]
    assert tail(lines, 10) == lines[-10:]


def test_tail_cuts_a_2mb_line_and_keeps_the_lines_after_it() -> None:
    out = tail(["start", "x" * MB2, "ValueError: boom"], 10)
    assert out[0] == "start" and out[2] == "ValueError: boom"
    assert utf8(out[1]) <= LOG_LINE_BYTES and out[1].endswith(f"[cut: {MB2} bytes in all]")


def test_tail_keeps_the_end_within_the_total() -> None:
    lines = ["é" * 5000 for _ in range(9)] + ["the end"]
    out = tail(lines, 10)
    assert out[-1] == "the end" and sum(map(utf8, out)) <= LOG_BYTES
    assert out[0].endswith("bytes in all]")  # the earliest kept line is cut to what was left, and says so


# ----------------------------------------------------------------------------- SparkBatch


def _failed_batch(log: list[str], term_message: str) -> batch.Decision:
    """A SparkBatch whose driver failed with this log tail and termination message."""
    spec = SparkBatchSpec.model_validate({"file": "local:///app.py"})
    started = batch.decide(spec, None, META, SparkBatchStatus(), batch.Observed(T0, None, ExecutorCounts()), SETTINGS)
    assert started.status.state == "starting"
    drv = batch.DriverObs(name=started.status.driverPod or "", phase="Failed", created_ms=T0, exit_code=1,
                          term_reason="Error", term_message=term_message)
    return batch.decide(spec, None, META, started.status,
                        batch.Observed(T0 + 1000, drv, ExecutorCounts(), log_tail=log), SETTINGS)


@pytest.mark.parametrize("log", [
    ["x" * MB2],  # the issue's example: one 2 MB line, then the driver fails
    [f"Traceback line {i}" for i in range(10_000)],
    ["😀" * (LOG_LINE_BYTES // 4 + 1)] * 50,  # a four-byte character where every cut falls
], ids=["2MB-line", "10000-lines", "multibyte-at-the-cut"])
def test_a_failed_drivers_log_of_any_size_makes_a_small_status(log: list[str]) -> None:
    s = _failed_batch(log, term_message="x" * MB2).status
    assert s.state == "dead" and s.log is not None and 1 < len(s.log) <= batch.LOG_LINES
    assert all(utf8(line) <= LOG_LINE_BYTES for line in s.log) and sum(map(utf8, s.log)) <= LOG_BYTES
    assert s.log[-1].startswith("exit code 1, reason Error: ")
    assert s.message is not None and utf8(s.message) <= MESSAGE_BYTES and s.message.endswith("bytes in all]")
    assert all(utf8(c.message) <= MESSAGE_BYTES for c in s.conditions or [])
    assert status_bytes(s) <= STATUS_BYTES


class _Step(decide_common.StateStep[SparkBatchStatus, str]):
    def outcome_of(self, state: str, reason: str) -> decide_common.Outcome:
        return "Failed"


def test_an_unchanged_long_reason_is_no_new_transition() -> None:
    """Compared after the cut: else every pass would see a new reason and post another Event."""
    step = _Step(META, SparkBatchStatus(), T0)
    step.transition("dead", "R" * 1000, "m")
    step.transition("dead", "R" * 1000, "m")
    assert len(step.d.events) == 1
    assert step.s.reason is not None and utf8(step.s.reason) <= decide_common.REASON_BYTES


# ----------------------------------------------------------------------------- SparkSession


def _live_session() -> tuple[SparkSessionSpec, SparkSessionStatus]:
    spec = SparkSessionSpec.model_validate({"kind": "spark", "cluster_name": "c"})
    d = session.decide(spec, None, META, SparkSessionStatus(), session.Observed(T0, None, ExecutorCounts()), SETTINGS)
    return spec, d.status


def test_a_session_drivers_2mb_termination_message_is_cut_in_log_and_message() -> None:
    spec, s = _live_session()
    drv = batch.DriverObs(name=s.driverPod or "", phase="Failed", created_ms=T0, exit_code=1,
                          term_message=("é" * MB2) + "\nboom")
    d = session.decide(spec, None, META, s, session.Observed(T0 + 1000, drv, ExecutorCounts()), SETTINGS)
    assert d.status.state == "error" and d.status.log and utf8(d.status.log[0]) <= LOG_LINE_BYTES
    assert d.status.message is not None and utf8(d.status.message) <= MESSAGE_BYTES
    assert status_bytes(d.status) <= STATUS_BYTES


def test_a_huge_heartbeat_annotation_is_kept_short_and_the_same_one_is_no_activity() -> None:
    spec, s = _live_session()
    running = batch.DriverObs(name=s.driverPod or "", phase="Running", created_ms=T0)
    beat = "b" * (256 * 1024)  # what an annotation may hold
    d = session.decide(spec, None, META, s, session.Observed(T0 + 1000, running, ExecutorCounts(), heartbeat=beat),
                       SETTINGS)
    assert d.status.heartbeat is not None and utf8(d.status.heartbeat) <= session.HEARTBEAT_BYTES
    seen = d.status.lastActivityTime
    again = session.decide(spec, None, META, d.status,
                           session.Observed(T0 + 5000, running, ExecutorCounts(), heartbeat=beat), SETTINGS)
    assert again.status.lastActivityTime == seen


# ----------------------------------------------------------------------------- FlinkJarJob


def _running_flink() -> tuple[FlinkJarJobSpec, FlinkJarJobStatus, flink.PodObs]:
    spec = FlinkJarJobSpec.model_validate({"name": "wc", "entrypoint": "local:///job.jar",
                                           "restart_when_exception": True, "resume_checkpoint": True})
    d = flink.decide(spec, None, META, FlinkJarJobStatus(), flink.Observed(T0, None, TaskManagerCounts()), SETTINGS)
    jm = flink.PodObs(name=d.status.jobManagerPod or "", phase="Running", created_ms=T0)
    return spec, d.status, jm


def test_a_2mb_rest_answer_makes_a_small_status_and_no_new_transition_when_repeated() -> None:
    spec, s, jm = _running_flink()
    rest = flink.RestObs(state="RESTARTING" + "X" * MB2, exception="é" * MB2)
    d = flink.decide(spec, None, META, s, flink.Observed(T0 + 1000, jm, TaskManagerCounts(), rest=rest), SETTINGS)
    assert d.status.flinkState is not None and utf8(d.status.flinkState) <= decide_common.REASON_BYTES
    rest = flink.RestObs(state="RESTARTING", exception="é" * MB2)
    d = flink.decide(spec, None, META, d.status, flink.Observed(T0 + 2000, jm, TaskManagerCounts(), rest=rest),
                     SETTINGS)
    assert d.status.status_name == "job_running_exception"
    assert d.status.status_desc is not None and utf8(d.status.status_desc) <= MESSAGE_BYTES
    assert status_bytes(d.status) <= STATUS_BYTES
    again = flink.decide(spec, None, META, d.status, flink.Observed(T0 + 3000, jm, TaskManagerCounts(), rest=rest),
                         SETTINGS)
    assert again.events == [] and again.status.update_time == d.status.update_time


def test_a_checkpoint_path_longer_than_a_path_is_not_resumed_from() -> None:
    spec, s, jm = _running_flink()
    ok = flink.RestObs(state="RUNNING", last_checkpoint="s3://b/ckpt/chk-1")
    d = flink.decide(spec, None, META, s, flink.Observed(T0 + 1000, jm, TaskManagerCounts(), rest=ok), SETTINGS)
    junk = flink.RestObs(state="RUNNING", last_checkpoint="s3://b/" + "x" * MB2)
    d = flink.decide(spec, None, META, d.status, flink.Observed(T0 + 2000, jm, TaskManagerCounts(), rest=junk),
                     SETTINGS)
    assert d.status.last_checkpoint == "s3://b/ckpt/chk-1"


# ----------------------------------------------------------------------------- DagJob


def test_a_childs_2mb_message_makes_a_small_dag_status() -> None:
    spec = DagJobSpec.model_validate({"Name": "dj", "Priority": 1, "Type": "DAG", "JobFailOnInstanceFail": True,
                                      "DAG": {"Tasks": {"S": {"sparkBatch": {"file": "local:///a.py"}}}}})
    d = dag.decide(spec, None, META, DagJobStatus(), dag.Observed(T0), SETTINGS)
    assert d.status.Tasks is not None
    child = d.status.Tasks["S"].Child or ""
    d = dag.decide(spec, None, META, d.status, dag.Observed(
        T0 + 1000, children={child: dag.ChildObs(name=child, state="dead", message="😀" * MB2)}), SETTINGS)
    assert d.status.State == "Failed" and d.status.Tasks is not None
    message = d.status.Tasks["S"].Message
    assert message is not None and utf8(message) <= MESSAGE_BYTES and message.endswith("bytes in all]")
    assert d.status.message is not None and utf8(d.status.message) <= MESSAGE_BYTES
    assert status_bytes(d.status) <= STATUS_BYTES


# ----------------------------------------------------------------------------- ConfigMaps and Secrets


def test_check_size_names_the_object_its_size_and_the_limit() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"},
           "data": {"k": "é" * 600_000}}
    with pytest.raises(ObjectTooLarge) as e:
        common.check_size(obj, "spec.conf")
    size = utf8(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    assert str(e.value) == (f"ConfigMap ns/cm would be {size} bytes, more than the 1048576 bytes Kubernetes "
                            "accepts; it holds spec.conf: make them smaller")
    assert isinstance(e.value, ValueError)
    obj["data"] = {"k": "é" * 500_000}  # 1,000,000 bytes: fits
    assert common.check_size(obj, "spec.conf") is obj


def test_a_spark_driver_whose_conf_files_are_over_256kib_is_refused_before_it_is_created() -> None:
    # The model allows 256 conf values of 4096 characters (1 MiB); a pod's annotations hold 256 KiB.
    spec = SparkBatchSpec.model_validate({"file": "local:///a.py",
                                          "conf": {f"spark.x.k{i}": "é" * 4096 for i in range(64)}})
    owner = Owner("lakejob.io/v1alpha1", "SparkBatch", "big", "ns", "uid")
    with pytest.raises(ObjectTooLarge, match=r"^Pod ns/big-driver-1's annotations would be \d+ bytes, more than "
                                             r"the 262144 bytes .*spec\.conf"):
        render_spark.driver_pod(spec, owner, batch.resolve_sizing(spec), 1, SETTINGS, "sa")
    fits = spec.model_copy(update={"conf": {f"spark.x.k{i}": "é" * 4096 for i in range(30)}})  # 240 KiB
    assert render_spark.driver_pod(fits, owner, batch.resolve_sizing(fits), 1, SETTINGS, "sa")["kind"] == "Pod"


def test_check_annotations_size_counts_keys_and_values_in_utf8() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "annotations": {"k": "é" * (131072 - 1)}}}
    assert common.check_annotations_size(pod, "x") is pod  # 1 + 262,142 bytes
    pod["metadata"]["annotations"] = {"kk": "é" * (131072 - 1)}
    assert common.check_annotations_size(pod, "x") is pod  # 262,144 bytes: exactly the limit
    pod["metadata"]["annotations"] = {"kkk": "é" * (131072 - 1)}
    with pytest.raises(ObjectTooLarge, match=r"^Pod ns/p's annotations would be 262145 bytes, more than the "
                                             r"262144 bytes Kubernetes accepts; they hold x: make them smaller"):
        common.check_annotations_size(pod, "x")


def test_a_flink_configmap_over_1mib_is_refused() -> None:
    # Past what the model allows (an object admitted by an older CRD): the builder still refuses it.
    spec = FlinkJarJobSpec.model_validate({"name": "f", "entrypoint": "local:///job.jar"})
    spec = spec.model_copy(update={"runtime_config": "".join(f"k{i}: {'v' * 1000}\n" for i in range(1100))})
    owner = Owner("lakejob.io/v1alpha1", "FlinkJarJob", "f", "ns", "uid")
    with pytest.raises(ObjectTooLarge, match=r"^ConfigMap ns/f-flink-config .*runtime_config"):
        render_flink.configmap(spec, owner, render_flink.resolve_sizing(spec, SETTINGS), SETTINGS)


def test_an_oss_secret_over_1mib_is_refused() -> None:
    spec = DagJobSpec.model_validate({"Name": "dj", "Priority": 1, "Type": "DAG", "JobFailOnInstanceFail": True,
                                      "DAG": {"Tasks": {"A": {
                                          "InstanceCount": 1, "Timeout": 60,
                                          "Mounts": {"OSS": {"AccessKeyId": "id", "AccessKeySecret": "s"}},
                                          "Parameters": {"Command": {"CommandLine": "true"},
                                                         "StdoutRedirectPath": "oss://bucket/o/",
                                                         "StderrRedirectPath": "oss://bucket/o/"}}}}})
    task = spec.DAG.Tasks["A"]
    assert task.Mounts is not None and task.Mounts.OSS is not None
    task.Mounts.OSS.AccessSecurityToken = "t" * (1024 * 1024 + 1)  # past the model's bound, as above
    with pytest.raises(ObjectTooLarge, match=r"^Secret ns/dj-oss .*OSS keys"):
        render_dag.oss_secret(spec, Owner("lakejob.io/v1alpha1", "DagJob", "dj", "ns", "uid"))
