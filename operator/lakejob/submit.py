"""The user's commands on the vendors' bodies, straight to the Kubernetes API with the user's own
kubeconfig (no gateway needed): `lakejob submit FILE.json --api dli|livy|batchcompute [--watch]`
makes the custom resource the body stands for and prints it, then follows its state;
`lakejob logs NAME` prints its driver's (JobManager's) log; `lakejob stop NAME` stops it the way
its kind stops (`spec.suspend`); `lakejob get dag NAME` prints a DagJob's tasks as a tree
(lakejob.dagview).

Which kind a body is: Livy's and DLI's Spark batch bodies are SparkBatch, DLI's Flink JAR job
body (it has `entrypoint`) FlinkJarJob, DLI's session body (`kind`, no `file`) SparkSession, a
BatchCompute job body DagJob. Called by lakejob.cli.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError

from lakejob import crds, dagview
from lakejob.kube import Kube, KubeError, controller_uid, describe_owner, path, register_kind
from lakejob.models.common import describe_errors

GROUP_VERSION = f"{crds.GROUP}/{crds.VERSION}"
KINDS = {k.kind: k for k in crds.KINDS}
for _kind in crds.KINDS:
    register_kind(GROUP_VERSION, _kind.kind, _kind.plural)
# The field that says how far each kind has got, and its values that end it.
PROGRESS = {"SparkBatch": ("state", ("success", "dead", "killed")),
            "SparkSession": ("state", ("error", "dead", "success")),
            "FlinkJarJob": ("status_name", ("job_finish", "job_cancel_success", "job_submit_fail", "job_running_fail")),
            "DagJob": ("State", ("Finished", "Failed"))}
LOG_LINES = 100_000


class Refused(Exception):
    """Bad input or a refusal; the message is one line for the user."""


def kind_of(body: dict[str, Any], api: str) -> str:
    if api == "batchcompute":
        return "DagJob"
    if api == "livy":
        return "SparkBatch"
    if "entrypoint" in body:
        return "FlinkJarJob"
    return "SparkBatch" if "file" in body else "SparkSession"


def manifest(body: dict[str, Any], api: str, name: str | None) -> dict[str, Any]:
    """The custom resource of a vendor body (checked by the kind's model first: the error names
    the field)."""
    kind = kind_of(body, api)
    model: type[BaseModel] = KINDS[kind].spec
    try:
        model.model_validate(body)
    except ValidationError as e:
        raise Refused(f"{kind}: {describe_errors(e)}") from None
    meta = {"name": name} if name else {"generateName": f"{api}-"}
    return {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": meta, "spec": body}


async def _find(kube: Kube, namespace: str, name: str, kind: str | None) -> dict[str, Any]:
    kinds = [kind] if kind else list(KINDS)
    found = [obj for k in kinds if (obj := await kube.get(GROUP_VERSION, k, namespace, name)) is not None]
    if not found:
        raise Refused(f"no {kind or 'lakejob job'} named {name} in namespace {namespace}")
    if len(found) > 1:
        raise Refused(f"{name} names a {' and a '.join(o['kind'] for o in found)}: say which with --kind")
    return found[0]


def _progress(obj: dict[str, Any]) -> tuple[str | None, bool]:
    field, ends = PROGRESS[obj["kind"]]
    value = (obj.get("status") or {}).get(field)
    return value, value in ends


async def _follow(kube: Kube, kind: str, namespace: str, obj: dict[str, Any], out: TextIO) -> int:
    """Print each state of `obj` as it comes (a watch on it) until it ends: 0 on success."""
    name, last = obj["metadata"]["name"], None
    current: dict[str, Any] | None = obj
    while True:
        if current is None:
            print(f"{kind} {name} was deleted", file=out)
            return 1
        value, ended = _progress(current)
        if value != last:
            st = current.get("status") or {}
            why = st.get("reason") or st.get("status_desc") or st.get("Message") or ""
            print(f"{kind} {name}: {value or 'created'}" + (f" ({why})" if why else ""), file=out, flush=True)
            last = value
        if ended:
            return 0 if value in ("success", "job_finish", "Finished") else 1
        news = False
        async with contextlib.aclosing(kube.watch_one(GROUP_VERSION, kind, namespace, name,
                                                      current["metadata"]["resourceVersion"])) as events:
            async for event, changed in events:
                if event == "ERROR":
                    break  # e.g. 410 Gone: that version was compacted away
                current = None if event == "DELETED" else changed
                if current is None or _progress(current) != (last, False):
                    news = True
                    break
        if not news:
            # The stream ended (its timeout) or failed: read the object afresh and watch from there.
            current = await kube.get(GROUP_VERSION, kind, namespace, name)


async def submit(namespace: str, body: dict[str, Any], api: str, name: str | None, watch: bool,
                 out: TextIO) -> int:
    obj = manifest(body, api, name)
    kube = await Kube.connect()
    try:
        status, created = await kube.request("POST", path(GROUP_VERSION, obj["kind"], namespace), obj)
        if status >= 300:
            message = created.get("message", created) if isinstance(created, dict) else created
            raise Refused(f"the apiserver refused the {obj['kind']}: {message}")
        print(json.dumps(created, indent=2), file=out)
        if not watch:
            return 0
        return await _follow(kube, obj["kind"], namespace, created, out)
    finally:
        await kube.close()


async def logs(namespace: str, name: str, kind: str | None, out: TextIO) -> int:
    kube = await Kube.connect()
    try:
        obj = await _find(kube, namespace, name, kind)
        st = obj.get("status") or {}
        pod = st.get("driverPod") or st.get("jobManagerPod")
        if not pod:
            if obj["kind"] == "DagJob":
                raise Refused(f"DagJob {name} has no one log: its tasks' output goes to their StdoutRedirectPath "
                              "(stdout.JobId.TaskId.InstanceId), and each task pod has its own")
            raise Refused(f"{obj['kind']} {name} has no driver pod yet")
        # Its last lines, as the operator kept them, when the pod's own log is out of reach.
        lines = await kube.pod_log_tail(namespace, pod, LOG_LINES, 30) or st.get("log") or []
        if not lines:
            raise Refused(f"the log of pod {pod} cannot be read")
        out.write("\n".join(lines) + "\n")
        return 0
    finally:
        await kube.close()


async def stop(namespace: str, name: str, kind: str | None, out: TextIO) -> int:
    kube = await Kube.connect()
    try:
        obj = await _find(kube, namespace, name, kind)
        if controller_uid(obj) is not None:  # a DagJob's task: its owner stops it, or the two would fight
            raise Refused(f"{obj['kind']} {name} is {describe_owner(obj)}: stop that instead")
        # Its uid in the patch: a same-named successor made in between is refused, not stopped.
        status, payload = await kube.request(
            "PATCH", path(GROUP_VERSION, obj["kind"], namespace, name),
            {"metadata": {"uid": obj["metadata"]["uid"]}, "spec": {"suspend": True}},
            content_type="application/merge-patch+json")
        if status >= 300:
            raise Refused(f"cannot stop {obj['kind']} {name}: {payload.get('message') if isinstance(payload, dict) else payload}")
        print(f"{obj['kind']} {name}: stop requested (spec.suspend: true)", file=out)
        return 0
    finally:
        await kube.close()


async def get_dag(namespace: str, name: str, wide: bool, out: TextIO) -> int:
    kube = await Kube.connect()
    try:
        obj = await _find(kube, namespace, name, "DagJob")
    finally:
        await kube.close()
    out.write("\n".join(dagview.lines(obj, datetime.now(timezone.utc), wide)) + "\n")
    return 0


def run(coro: Any) -> int:
    try:
        return int(asyncio.run(coro))
    except Refused as e:
        print(f"lakejob: {e}", file=sys.stderr)
        return 2
    except KubeError as e:
        print(f"lakejob: {e}", file=sys.stderr)
        return 1
