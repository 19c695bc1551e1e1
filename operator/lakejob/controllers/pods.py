"""The summary of a pod that every kind with pods keeps in its kopf index (`summarize_pod`).

A kind's pods index holds this small dict per pod rather than the pod body: what the kinds'
decide functions read (role, phase, exit, why it waits or cannot be scheduled) and no more, so
thousands of pods cost little memory. Used by controllers.spark_driver (SparkBatch and
SparkSession drivers and executors) and controllers.flinkjarjob (JobManager and TaskManagers),
which adds its own fields on top, and, for the pods a kind's Service points at, `endpoint_fields`
(render.endpoints builds the Service's Endpoints from them).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakejob.controllers.base import ms
from lakejob.render import packages


def summarize_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """The little we keep of each pod in memory (what decide needs), from a pod body."""
    meta, status = body["metadata"], body.get("status") or {}
    labels = meta.get("labels") or {}
    out: dict[str, Any] = {
        "name": meta["name"],
        "role": labels.get("spark-role") or labels.get("lakejob.io/role"),
        "app": labels.get("spark-app-selector"),
        "phase": status.get("phase", "Pending"),
        "created_ms": ms(meta.get("creationTimestamp")) or 0,
        "deleting": bool(meta.get("deletionTimestamp")),
    }
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            out["unschedulable"] = cond.get("message") or cond.get("reason")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "ContainerCreating"):
            out["waiting_reason"] = state["waiting"].get("reason")
            out["waiting_message"] = state["waiting"].get("message")
        if "running" in state:
            out["started_ms"] = ms(state["running"].get("startedAt"))
        if "terminated" in state:
            t = state["terminated"]
            out.update(exit_code=t.get("exitCode"), term_reason=t.get("reason"), term_message=t.get("message"),
                       started_ms=ms(t.get("startedAt")), finished_ms=ms(t.get("finishedAt")))
    if (t := packages.failed_fetch(status)) is not None:  # the driver never started
        out.update(exit_code=t["exitCode"], term_reason=packages.FETCH_FAILED, term_message=t.get("message"),
                   finished_ms=ms(t.get("finishedAt")))
    if status.get("phase") == "Failed" and "term_reason" not in out:
        out["term_reason"], out["term_message"] = status.get("reason"), status.get("message")
    return out


def is_ready(body: Mapping[str, Any]) -> bool:
    """The pod's Ready condition (its readiness probes, if any, pass)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def endpoint_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """What Endpoints say of a pod: its IP, once it has one (Ready or not: the Services publish
    their pods before they are, render.endpoints)."""
    ip = (body.get("status") or {}).get("podIP")
    return {"ip": ip} if ip else {}
