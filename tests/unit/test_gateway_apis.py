"""The gateway's pure pieces of the Livy and DLI APIs: how a SparkBatch looks to each, Livy's log
paging, DLI's list filters as field selectors and its error shape (the e2e tests run them through
the vendors' clients)."""
from __future__ import annotations

from typing import Any

import pytest

from lakejob.gateway import dli, jobs, livy, logs

CR: dict[str, Any] = {
    "metadata": {"name": "livy-batch-3", "labels": {livy.LIVY_ID: "3"}, "annotations": {jobs.OWNER: "dli:bot"},
                 "creationTimestamp": "2026-12-03T10:00:00Z"},
    "spec": {"file": "a.jar", "className": "A", "queue": "q1", "name": "pi", "spark_version": "2.3.2"},
    "status": {"state": "success", "appId": "spark-1", "log": ["x", "Pi is roughly 3.14"], "sc_type": "A",
               "update_time": 1796292060000, "duration": 42000},
}


@pytest.mark.parametrize(("total", "from_", "size", "expected"), [
    (250, None, None, (150, 250)),  # Livy's default: the last 100 lines
    (250, 0, None, (0, 100)), (250, 240, 50, (240, 250)), (250, 300, 10, (250, 250)),
    (30, None, None, (0, 30)), (250, 5, -1, (5, 250)), (250, None, -1, (0, 250)), (0, None, None, (0, 0)),
])
def test_logs_page_as_livy_pages_them(total: int, from_: int | None, size: int | None,
                                      expected: tuple[int, int]) -> None:
    assert logs.page(total, from_, size) == expected


def test_a_sparkbatch_as_livy_shows_it() -> None:
    assert livy.view(CR) == {"id": 3, "name": "pi", "owner": None, "proxyUser": None, "state": "success",
                             "appId": "spark-1", "appInfo": {"driverLogUrl": None, "sparkUiUrl": None},
                             "log": ["x", "Pi is roughly 3.14"]}
    assert livy.state({"status": {}}) == "starting" and livy.livy_id({"metadata": {"labels": {}}}) is None


def test_a_sparkbatch_as_dli_shows_it() -> None:
    v = dli.view(CR)
    assert (v["id"], v["state"], v["appId"], v["owner"], v["queue"], v["cluster_name"], v["sc_type"]) == (
        "livy-batch-3", "success", "spark-1", "dli:bot", "q1", "q1", "A")
    assert v["create_time"] == 1796292000000 and v["update_time"] == 1796292060000 and v["duration"] == 42000
    fresh = dli.view({"metadata": {"name": "n", "creationTimestamp": "2026-12-03T10:00:00Z"}, "spec": {}})
    assert fresh["state"] == "starting" and fresh["update_time"] == fresh["create_time"] and "duration" not in fresh


def test_dli_filters_become_field_selectors_escaped() -> None:
    assert dli._selectors({}) == [""]
    assert dli._selectors({"state": "running", "job_name": "a,b=c"}) == ["status.state=running,spec.name=a\\,b\\=c"]
    assert dli._selectors({"job-id": "x", "cluster_name": "q"}) == ["metadata.name=x,spec.queue=q",
                                                                     "metadata.name=x,spec.cluster_name=q"]
    # A batch without status yet shows `starting`: an absent state matches that filter too.
    assert dli._selectors({"state": "starting", "queue_name": "q"}) == [
        "status.state=starting,spec.queue=q", "status.state=starting,spec.cluster_name=q",
        "status.state=,spec.queue=q", "status.state=,spec.cluster_name=q"]


def test_a_state_filter_matches_a_job_without_status_under_its_initial_state() -> None:
    from lakejob.gateway import jobs

    assert jobs.state_is("status.State", "Waiting", "Waiting") == ["status.State=Waiting", "status.State="]
    assert jobs.state_is("status.State", "Running", "Waiting") == ["status.State=Running"]
    assert jobs.any_of([]) == [""] and jobs.any_of(["a=1", "a="], [], ["b=2"]) == ["a=1,b=2", "a=,b=2"]


def test_errors_have_each_vendors_shape() -> None:
    assert dli.error(403, None, "no") == {"is_success": False, "error_code": "DLI.0003", "error_msg": "no"}
    assert dli.error(502, None, "down")["error_code"] == "DLI.0999"
    assert livy.error(404, None, "Session '5' not found.") == {"msg": "Session '5' not found."}


def test_a_flinkjarjob_as_dli_shows_it() -> None:
    from lakejob.gateway import dli_flink

    cr = {"metadata": {"name": "flink-job-7", "labels": {dli_flink.DLI_FLINK_ID: "7"},
                       "creationTimestamp": "2026-12-03T10:00:00Z"},
          "spec": {"name": "stream", "main_class": "M", "entrypoint_args": "-a 1", "queue_name": "q"},
          "status": {"status_name": "job_running", "restarts": 2, "last_checkpoint": "file:///ckpt/chk-3"}}
    v = dli_flink.view(cr, "p1")
    assert (v["job_id"], v["name"], v["status"], v["queue_name"], v["restart_times"], v["has_savepoint"]) == (
        7, "stream", "job_running", "q", 2, True)
    assert v["create_time"] == v["update_time"] == 1796292000000 and v["project_id"] == "p1"
    assert dli_flink.view({"metadata": {"name": "x"}}, "p")["job_id"] is None  # made with kubectl: no job_id


def test_a_job_another_resource_controls_is_never_patched_or_deleted_through_the_gateway() -> None:
    from lakejob.gateway import jobs

    child = {"kind": "SparkBatch", "metadata": {"name": "dag-pi", "namespace": "a", "uid": "u1", "ownerReferences": [
        {"kind": "DagJob", "name": "nightly", "uid": "u0", "controller": True}]}}
    with pytest.raises(jobs.ApiError) as e:
        jobs._ours(child)
    assert e.value.status == 409 and "controlled by DagJob nightly" in e.value.message
    assert jobs._ours({"kind": "SparkBatch", "metadata": {"name": "pi", "uid": "u2"}})["uid"] == "u2"
