#!/usr/bin/env python3
"""Write Argo CD's resource customisations for lakejob's kinds (`make argocd`).

The output is Argo CD's own contribution layout, docs/argocd/resource_customizations/lakejob.io/<Kind>/:
health.lua with health_test.yaml and testdata/, and, for a kind with a stop switch, actions/
(discovery.lua, <action>/action.lua, action_test.yaml, testdata/); plus docs/argocd/argocd-cm.yaml,
the same scripts as the argocd-cm keys a user installs. One template per script; per kind, the state
→ health table and the actions below. The states come from lakejob.models, and rendering fails when
one is left unmapped.

Run by `make argocd`; tests/unit/test_argocd_health.py checks the files are this output and runs
every health_test.yaml and action_test.yaml in a Lua 5.1 VM; tests/e2e/test_argocd_real.py installs
argocd-cm.yaml into a real Argo CD.
"""
from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
from lakejob.models import dagjob, flinkjarjob, sparkbatch, sparksession  # noqa: E402

GROUP = "lakejob.io"
API_VERSION = f"{GROUP}/v1alpha1"
OUT = ROOT / "docs" / "argocd"
LAYOUT = Path("resource_customizations") / GROUP
# Argo CD's own words: its controller answers "Pending deletion" for any object with a deletionTimestamp
# before it runs a health script (gitops-engine's GetResourceHealth); the script says the same where it
# is run by itself (Argo CD's script tests, `argocd admin settings resource-overrides health`).
DELETING = "Pending deletion"
NO_STATUS = "Waiting for the lakejob operator"


@dataclass(frozen=True)
class Action:
    """A resource action: what it sets in the spec, and when it is disabled: when any of `disabled`
    holds, among "suspended" (spec.suspend is true), "not suspended" and "ended" (a final state)."""

    name: str
    display: str
    icon: str
    disabled: tuple[str, ...]
    lua: str  # the statements that change obj
    twin: Callable[[dict[str, Any]], None]  # the same change of a spec in Python: the test's expected output
    description: str


STOP = Action("stop", "Stop", "fa fa-fw fa-stop", ("suspended", "ended"), "obj.spec.suspend = true",
              lambda spec: spec.update(suspend=True), "sets spec.suspend: true")
RESUME = Action("resume", "Resume", "fa fa-fw fa-play", ("not suspended",), "obj.spec.suspend = false",
                lambda spec: spec.update(suspend=False), "sets spec.suspend: false")
RESUME_UNLESS_ENDED = Action("resume", "Resume", "fa fa-fw fa-play", ("not suspended", "ended"),
                             "obj.spec.suspend = false", lambda spec: spec.update(suspend=False),
                             "sets spec.suspend: false")
RESTART = Action("restart", "Run again", "fa fa-fw fa-redo", ("suspended",),
                 "obj.spec.restartNonce = (obj.spec.restartNonce or 0) + 1",
                 lambda spec: spec.update(restartNonce=spec.get("restartNonce", 0) + 1), "adds 1 to spec.restartNonce")


@dataclass(frozen=True)
class Kind:
    name: str
    states: tuple[str, ...]     # every value the status field can take (from lakejob.models)
    ended: tuple[str, ...]      # the final ones: a stop does nothing there
    field: str                  # status field with the state
    detail: str                 # status field with the human-readable why
    health: dict[str, str]      # state → Argo CD health
    samples: dict[str, tuple[str, str]]  # state → (reason, detail) as the operator writes them (testdata)
    spec: dict[str, Any]        # a small valid spec (testdata)
    stop: tuple[str, str, str]  # (state, reason, detail) once a stop is done (testdata)
    label: str | None = None    # a status field shown beside the state
    labels: dict[str, str] | None = None  # state → label value (testdata)
    by_reason: dict[tuple[str, str], tuple[str, str]] | None = None  # (state, reason) → (health, detail)
    actions: tuple[Action, ...] = ()


PI = "local:///opt/spark/examples/src/main/python/pi.py"

# Semantics (docs/argocd/README.md): a batch that runs is Progressing until it ends (as Argo CD treats a
# Job); a service that runs (a streaming FlinkJarJob, an idle or busy SparkSession) is Healthy; what a
# user stopped is Suspended; what failed is Degraded.
KINDS = (
    Kind("SparkBatch", sparkbatch.STATES, sparkbatch.TERMINAL_STATES, "state", "message", {
        "starting": "Progressing", "running": "Progressing", "recovering": "Progressing",
        "success": "Healthy", "dead": "Degraded", "killed": "Suspended"}, {
        "starting": ("DriverCreated", "driver pod pi-driver-1 created (attempt 1)"),
        "running": ("DriverRunning", "driver pod pi-driver-1 is running"),
        "recovering": ("DriverFailed", "driver pod pi-driver-1 failed (exit code 1); attempt 2 of 3 in 10s"),
        "success": ("Completed", "driver pod pi-driver-1 succeeded"),
        "dead": ("DriverFailed", "driver pod pi-driver-1 failed (exit code 1); no retries left"),
        "killed": ("Suspended", "stopped by spec.suspend")},
        {"file": PI, "args": ["100"], "name": "pi"}, stop=("killed", "Suspended", "stopped by spec.suspend"),
        actions=(STOP,)),
    Kind("SparkSession", sparksession.STATES, sparksession.TERMINAL_STATES, "state", "message", {
        "not_started": "Progressing", "starting": "Progressing", "recovering": "Progressing",
        "idle": "Healthy", "busy": "Healthy", "shutting_down": "Progressing",
        "success": "Healthy", "error": "Degraded", "dead": "Suspended"}, {
        "not_started": ("DriverCreated", "driver pod notebook-driver-1 created (attempt 1)"),
        "starting": ("DriverRunning", "driver pod notebook-driver-1 is running; waiting for Spark"),
        "recovering": ("DriverFailed", "driver pod notebook-driver-1 failed; new driver 2 of 3 in 10s"),
        "idle": ("Idle", "no Spark job running"),
        "busy": ("JobsRunning", "2 Spark job(s) running"),
        "shutting_down": ("Stopped", "stopped by spec.suspend"),
        "success": ("DriverExited", "the Spark Connect server in notebook-driver-1 exited with code 0"),
        "error": ("StartTimeout", "Spark did not come up within 600s schedulingTimeout"),
        "dead": ("IdleTimeout", "idle for longer than heartbeatTimeoutInSecond (3600s)")},
        {"kind": "spark", "cluster_name": "test_cluster"}, stop=("success", "Stopped", "stopped by spec.suspend"),
        # A session a user stopped ends in success, as DLI's does; its reason tells it from one whose
        # server exited by itself.
        by_reason={("success", "Stopped"): ("Suspended", "stopped by spec.suspend")},
        actions=(STOP,)),
    Kind("FlinkJarJob", flinkjarjob.PHASES, flinkjarjob.TERMINAL_PHASES, "state", "status_desc", {
        "Pending": "Progressing", "Running": "Healthy", "Restarting": "Progressing",
        "Cancelling": "Progressing", "Succeeded": "Healthy", "Failed": "Degraded", "Cancelled": "Suspended"}, {
        "Pending": ("JobManagerCreated", "JobManager pod stream-jm-1 created (attempt 1)"),
        "Running": ("JobRunning", "Flink reports the job RUNNING"),
        "Restarting": ("JobFailed", "the job failed; restart 1 in 10s"),
        "Cancelling": ("Suspended", "stopping: the JobManager and TaskManagers are being deleted"),
        "Succeeded": ("JobFinished", "Flink reports the job FINISHED"),
        "Failed": ("JobFailed", "the job failed and restart_when_exception is false"),
        "Cancelled": ("Suspended", "stopped by spec.suspend; every pod was removed")},
        {"name": "stream", "cu_number": 2, "entrypoint": "javaQueueStream.jar",
         "main_class": "org.apache.flink.examples.streaming.JavaQueueStream"},
        stop=("Cancelled", "Suspended", "stopped by spec.suspend; every pod was removed"),
        # `state` is the lifecycle phase: DLI's job_running_exception is both "a restart is coming"
        # and "failed for good", which only the phase tells apart. DLI's status is in the message.
        label="status_name", labels={
            "Pending": "job_init", "Running": "job_running", "Restarting": "job_running_exception",
            "Cancelling": "job_canceling", "Succeeded": "job_finish", "Failed": "job_running_exception",
            "Cancelled": "job_cancel_success"},
        actions=(STOP, RESUME, RESTART)),
    Kind("DagJob", dagjob.STATES, dagjob.TERMINAL_STATES, "State", "message", {
        "Waiting": "Progressing", "Running": "Progressing", "Finished": "Healthy", "Failed": "Degraded",
        "Stopped": "Suspended"}, {
        "Waiting": ("Queued", "waiting for a slot (Priority orders the queue)"),
        "Running": ("Admitted", "a slot is free; starting the tasks whose upstream tasks finished"),
        "Finished": ("AllTasksFinished", "1 tasks finished"),
        "Failed": ("TaskFailed", "task pi failed"),
        "Stopped": ("Suspended", "stopped by spec.suspend")},
        {"Name": "pi", "Priority": 1, "Type": "DAG", "JobFailOnInstanceFail": True,
         "DAG": {"Tasks": {"pi": {"sparkBatch": {"file": PI}}}}},
        stop=("Stopped", "Suspended", "stopped by spec.suspend"),
        actions=(STOP, RESUME_UNLESS_ENDED)),
)

HEALTH_LUA = """-- Argo CD health check of {group}/{kind}: generated by hack/render_argocd.py (docs/argocd/README.md).
local health = {{
{table}
}}
{by_reason}local hs = {{}}
if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "{deleting}"
  return hs
end
local status = obj.status
if status == nil or status.{field} == nil then
  hs.status = "Progressing"
  hs.message = "{no_status}"
  return hs
end
if obj.metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local state = status.{field}
hs.status = health[state] or "Unknown"
{reason_lookup}hs.message = state
{label}if status.{detail} ~= nil and status.{detail} ~= "" then
  hs.message = hs.message .. ": " .. status.{detail}
end
return hs
"""

BY_REASON_LUA = """-- (state, reason) pairs whose health is not their state's
local byReason = {{
{table}
}}
"""
REASON_LOOKUP_LUA = """if status.reason ~= nil and byReason[state .. "/" .. status.reason] ~= nil then
  hs.status = byReason[state .. "/" .. status.reason]
end
"""
LABEL_LUA = """if status.{label} ~= nil then
  hs.message = hs.message .. " (" .. status.{label} .. ")"
end
"""

DISCOVERY_LUA = """-- Argo CD resource actions of {group}/{kind}: generated by hack/render_argocd.py (docs/argocd/README.md).
-- Every action is listed; the ones that would change nothing now are disabled.
local final = {{
{final}
}}
local suspended = obj.spec.suspend == true
local ended = obj.status ~= nil and obj.status.{field} ~= nil and final[obj.status.{field}] == true
local actions = {{}}
{actions}return actions
"""
ACTION_LUA = """-- Argo CD action "{name}" of {group}/{kind} ({description}): generated by hack/render_argocd.py.
{lua}
return obj
"""


def _lua_table(rows: dict[str, str]) -> str:
    return "\n".join(f'  ["{k}"] = "{v}",' for k, v in sorted(rows.items()))


def health_lua(k: Kind) -> str:
    by_reason = {f"{s}/{r}": h for (s, r), (h, _) in (k.by_reason or {}).items()}
    return HEALTH_LUA.format(
        group=GROUP, kind=k.name, table=_lua_table(k.health), field=k.field, detail=k.detail,
        deleting=DELETING, no_status=NO_STATUS,
        by_reason=BY_REASON_LUA.format(table=_lua_table(by_reason)) if by_reason else "",
        reason_lookup=REASON_LOOKUP_LUA if by_reason else "",
        label=LABEL_LUA.format(label=k.label) if k.label else "")


def discovery_lua(k: Kind) -> str:
    final = "\n".join(f'  ["{s}"] = true,' for s in k.ended)
    actions = "".join(f'actions["{a.name}"] = {{["displayName"] = "{a.display}", ["iconClass"] = "{a.icon}", '
                      f'["disabled"] = {" or ".join(a.disabled)}}}\n' for a in k.actions)
    return DISCOVERY_LUA.format(group=GROUP, kind=k.name, final=final, field=k.field, actions=actions)


# ----------------------------------------------------------------------------- testdata


def _obj(k: Kind, state: str | None, reason: str = "", detail: str = "", *, spec: dict[str, Any] | None = None,
         generation: int = 1, observed: int = 1, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": k.name.lower(), "namespace": "analytics", "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": k.name, "metadata": meta,
                           "spec": {**k.spec, **(spec or {})}}
    if state is not None:
        status: dict[str, Any] = {k.field: state, "reason": reason, k.detail: detail, "observedGeneration": observed}
        if k.label and k.labels:
            status[k.label] = k.labels[state]
        obj["status"] = status
    return obj


def _message(k: Kind, state: str, detail: str) -> str:
    """What health.lua says for a state: the Python twin of the template, which the test holds it to."""
    label = f" ({k.labels[state]})" if k.label and k.labels else ""
    return f"{state}{label}: {detail}" if detail else f"{state}{label}"


def health_tests(k: Kind) -> dict[str, Any]:
    """health_test.yaml and its testdata: every state, a stop told by its reason, no status yet, a
    spec the operator has not seen, and an object being deleted."""
    files: dict[str, Any] = {}
    tests: list[dict[str, Any]] = []

    def case(name: str, obj: dict[str, Any], status: str, message: str) -> None:
        files[f"testdata/{name}.yaml"] = obj
        tests.append({"healthStatus": {"status": status, "message": message}, "inputPath": f"testdata/{name}.yaml"})

    for state in k.states:
        reason, detail = k.samples[state]
        case(f"{k.health[state].lower()}_{state}", _obj(k, state, reason, detail), k.health[state],
             _message(k, state, detail))
    for (state, reason), (health, detail) in sorted((k.by_reason or {}).items()):
        case(f"{health.lower()}_{state}_{reason}", _obj(k, state, reason, detail), health,
             _message(k, state, detail))
    case("progressing_noStatus", _obj(k, None), "Progressing", NO_STATUS)
    running = next(s for s in k.states if k.health[s] in ("Healthy", "Progressing") and s not in k.ended)
    case("progressing_newGeneration", _obj(k, running, *k.samples[running], generation=2), "Progressing",
         "Waiting for the operator to observe generation 2")
    case("progressing_deleting", _obj(k, running, *k.samples[running], deleting=True), "Progressing", DELETING)
    return {"health_test.yaml": {"tests": tests}, **files}


def action_tests(k: Kind) -> dict[str, Any]:
    """action_test.yaml and its testdata: discovery on a live, a stopped and an ended object; every
    action on every one of them it is enabled for."""
    live = next(s for s in k.states if s not in k.ended and k.health[s] in ("Healthy", "Progressing"))
    last = next(s for s in k.states if s in k.ended and k.health[s] != "Suspended")
    objs = {
        "live": _obj(k, live, *k.samples[live]),
        "stopped": _obj(k, *k.stop, spec={"suspend": True}, generation=2, observed=2),
        "ended": _obj(k, last, *k.samples[last]),
    }
    facts = {"live": {"suspended": False, "not suspended": True, "ended": False},
             "stopped": {"suspended": True, "not suspended": False, "ended": k.stop[0] in k.ended},
             "ended": {"suspended": False, "not suspended": True, "ended": True}}

    def disabled(a: Action, which: str) -> bool:
        # The Python twin of discovery.lua's condition, which the test holds the Lua to.
        return any(facts[which][c] for c in a.disabled)

    files: dict[str, Any] = {f"testdata/{name}.yaml": obj for name, obj in objs.items()}
    discovery = [{"inputPath": f"testdata/{name}.yaml",
                  "result": [{"name": a.name, "displayName": a.display, "iconClass": a.icon,
                              "disabled": disabled(a, name)} for a in k.actions]} for name in objs]
    runs = []
    for a in k.actions:
        for source in (name for name in objs if not disabled(a, name)):
            after = copy.deepcopy(objs[source])
            a.twin(after["spec"])
            out = f"testdata/{source}_after_{a.name}.yaml"
            files[out] = after
            runs.append({"action": a.name, "inputPath": f"testdata/{source}.yaml", "expectedOutputPath": out})
    return {"action_test.yaml": {"discoveryTests": discovery, "actionTests": runs}, **files}


# ----------------------------------------------------------------------------- output


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line strings (the Lua in argocd-cm.yaml) as literal blocks, readable as written."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120)


def render() -> dict[str, str]:
    """Every generated file, path relative to docs/argocd → text."""
    out: dict[str, str] = {}
    cm: dict[str, str] = {}
    for k in KINDS:
        unmapped = set(k.states) ^ set(k.health)
        if unmapped:
            raise SystemExit(f"render_argocd: {k.name} states without a health, or unknown: {sorted(unmapped)}")
        base = LAYOUT / k.name
        out[str(base / "health.lua")] = health = health_lua(k)
        for rel, data in health_tests(k).items():
            out[str(base / rel)] = _dump(data)
        cm[f"resource.customizations.health.{GROUP}_{k.name}"] = health
        if not k.actions:
            continue
        discovery = discovery_lua(k)
        out[str(base / "actions" / "discovery.lua")] = discovery
        definitions = []
        for a in k.actions:
            lua = ACTION_LUA.format(name=a.name, group=GROUP, kind=k.name, description=a.description, lua=a.lua)
            out[str(base / "actions" / a.name / "action.lua")] = lua
            definitions.append({"name": a.name, "action.lua": lua})
        for rel, data in action_tests(k).items():
            out[str(base / "actions" / rel)] = _dump(data)
        cm[f"resource.customizations.actions.{GROUP}_{k.name}"] = _dump(
            {"discovery.lua": discovery, "definitions": definitions})
    # A whole ConfigMap (no namespace): a merge patch of a user's argocd-cm, and what `argocd admin settings
    # resource-overrides --argocd-cm-path` reads to run the scripts in Argo CD's own Lua VM.
    out["argocd-cm.yaml"] = (
        "# lakejob's Argo CD health checks and resource actions as argocd-cm keys: generated by\n"
        "# hack/render_argocd.py from resource_customizations/ (docs/argocd/README.md). Merge into argocd-cm:\n"
        "#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file docs/argocd/argocd-cm.yaml\n"
        + _dump({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "argocd-cm", "labels": {"app.kubernetes.io/part-of": "argocd"}}, "data": cm}))
    return out


def main() -> int:
    files = render()
    # Files this generator no longer writes would linger and still be run by the tests.
    for path in sorted((OUT / LAYOUT).rglob("*")):
        if path.is_file() and str(path.relative_to(OUT)) not in files:
            path.unlink()
    for rel, text in files.items():
        path = OUT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"render_argocd: {len(files)} files under {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
