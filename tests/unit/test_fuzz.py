"""Fuzz (hypothesis): random and adversarial specs through parse → decide → render, for every kind.

The property (issue 11): parse gives a spec or an error string; decide, given either and plausible
observations, gives a Decision whose status round-trips through its model and stays small; render
of a spec that decide started gives the manifests; nothing else escapes (the one error render may
raise is ObjectTooLarge, its deliberate refusal of a ConfigMap or Secret over 1 MiB, or of a driver
pod whose conf files are over 256 KiB of annotations).

Specs: an example (examples/, plus a DagJob with every kind of task) with a few fields, at any depth,
replaced by values of their type (boundaries, the longest allowed, unicode, shell and format
metacharacters, values matching the field's pattern), by other types or junk, or removed; a model's
fields alone (names and types from the pydantic models); junk. Observations: a child's phases, exit
codes, reasons, termination messages and log tails of any size (a 2 MB line, 10,000 lines), REST
answers of any shape, time moving on by up to days, and now and then another spec (one that got
past admission's immutability). Beside the sampled runs, a sweep puts each of a few hostile strings
into every text field of every example, so that what sampling finds only by luck (an open quote in
a DagJob task's command line) is found on every run.

Derandomized and without an example database: a run is repeatable and independent of the last
(hypothesis keeps only its caches in .hypothesis/, which ignores itself in git). Findings
are pinned in test_fuzz_findings.py and test_bounds.py. LAKEJOB_FUZZ_EXAMPLES raises the examples
per kind for a longer hunt (10,000 per kind: about 15 minutes on 2 cores).
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from lakejob.controllers import dagjob, flinkjarjob, sparkbatch, sparksession
from lakejob.controllers import dagjob_decide, flinkjarjob_decide, sparkbatch_decide, sparksession_decide
from lakejob.controllers.decide_common import MESSAGE_BYTES, Meta
from lakejob.models.dagjob import DagJobSpec, DagJobStatus
from lakejob.models.flinkjarjob import FlinkJarJobSpec, FlinkJarJobStatus, TaskManagerCounts
from lakejob.models.spark import ExecutorCounts, resolve_sizing
from lakejob.models.sparkbatch import SparkBatchSpec, SparkBatchStatus
from lakejob.models.sparksession import SparkSessionSpec, SparkSessionStatus
from lakejob.render import dag as render_dag
from lakejob.render import flink as render_flink
from lakejob.render import spark as render_spark
from lakejob.render import sparksession as render_session
from lakejob.render.common import ObjectTooLarge, Owner, Unrenderable
from lakejob.settings import Settings

EXAMPLES = int(os.environ.get("LAKEJOB_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
SETTINGS = Settings(notification_topics={"alerts": "http://hook/alerts"})
T0 = 1_700_000_000_000
# What a status may grow to: far below etcd's 1.5 MiB for the whole object (the spec shares it).
STATUS_BYTES = 128 * 1024
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Big:
    """`part` repeated `times` times, made by `real` only when the test uses it: hypothesis keeps
    every value drawn in a run (thousands of examples), so megabytes drawn per example would take
    gigabytes; and a failure then shows as Big('x', 2097152), not as two million x's."""

    part: str | tuple[Any, ...]
    times: int


def real(value: Any) -> Any:
    """A drawn value with every Big made (a new value: what hypothesis keeps stays small)."""
    if isinstance(value, Big):
        made = value.part * value.times
        return [real(v) for v in made] if isinstance(made, tuple) else made
    if isinstance(value, dict):
        return {real(k): real(v) for k, v in value.items()}
    if isinstance(value, list):
        return [real(v) for v in value]
    return value


def _sized(chars: list[str], sizes: list[int]) -> st.SearchStrategy[Big]:
    return st.builds(Big, st.sampled_from(chars), st.sampled_from(sizes))


# Strings that have broken parsers before: quotes, escapes, separators, format and shell syntax,
# control characters, multi-byte and astral characters, and sizes around every limit (4096, 1 MiB).
INTERESTING = ["", " ", "'", '"', "\\", "\n", "\r\n", "a\nb", " x", "x ", "=", ":", ": ", "#x", "!x", ",", ";",
               "{}", "{0}", "{name}", "%s", "$(x)", "`x`", "-", "--", ".", "..", "/", "//", "*", "\x00", "\t",
               "é", "😀", "\u200b", "a b", "3", "-1", "1e9", "true", "null", "~", "- x", "[", "{", "&a", "*a",
               "oss://bucket/", "oss://bucket/f", "local:///x", "file:///x", "https://h/x", "s3a://b/p"]
JOINED = st.lists(st.sampled_from([*INTERESTING, "a", "x.y", "python", "9"]), min_size=2, max_size=6).map("".join)
TEXT = st.one_of(st.text(max_size=30), st.sampled_from(INTERESTING), JOINED, JOINED,
                 _sized(["a", "é", "😀", "'", "\n"], [63, 64, 128, 129, 1024, 1025, 4096, 4097]))
HUGE_TEXT = _sized(["x", "é", "😀", "a\n"], [70_000, 1024 * 1024 + 1, 2 * 1024 * 1024])
INTS = st.one_of(st.integers(-3, 20), st.sampled_from([-1, 0, 255, 256, 10_000, 10_001, 2**31, 2**63, -(2**63),
                                                        10**30]))
LEAF = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False, allow_infinity=False), TEXT)
JUNK: st.SearchStrategy[Any] = st.recursive(
    st.one_of(LEAF, HUGE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12)


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """min_length, max_length, ge, le, pattern of a field, from pydantic's metadata at any depth."""
    out: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.update(_constraints(m.metadata))
            if isinstance(m.json_schema_extra, dict) and "pattern" in m.json_schema_extra:
                out["pattern"] = m.json_schema_extra["pattern"]
        for name in ("min_length", "max_length", "ge", "le", "pattern"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


def _string(c: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    options = [TEXT]
    if "pattern" in c:
        options += [st.from_regex(c["pattern"], fullmatch=True)] * 3
    if "max_length" in c:
        options.append(_sized(["a", "é", "😀"], [c["max_length"], c["max_length"] + 1]))
    return st.one_of(options)


def _int(c: Mapping[str, Any]) -> st.SearchStrategy[int]:
    lo, hi = c.get("ge"), c.get("le")
    edges = [v for b in (lo, hi) if b is not None for v in (b - 1, b, b + 1)]
    options: list[st.SearchStrategy[int]] = [INTS]
    if lo is not None or hi is not None:
        options.append(st.integers(lo, hi))
    if edges:
        options.append(st.sampled_from(edges))
    return st.one_of(options)


def typed(annotation: Any, depth: int = 0, c: Mapping[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values for a field's type, mostly of that type (junk sometimes, at any depth)."""
    return _typed(annotation, depth, tuple(sorted((c or {}).items())))


@functools.cache  # built once per field: building strategies costs more than drawing from them
def _typed(annotation: Any, depth: int, constraints: tuple[tuple[str, Any], ...]) -> st.SearchStrategy[Any]:
    c = dict(constraints)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return typed(args[0], depth, {**c, **_constraints(list(args[1:]))})
    if origin in (typing.Union, types.UnionType):
        return st.one_of([typed(a, depth, c) for a in args])
    if annotation is type(None):
        return st.none()
    if depth > 5:
        return LEAF
    base: st.SearchStrategy[Any]
    if origin is typing.Literal:
        base = st.sampled_from(args)
    elif annotation is bool:
        base = st.booleans()
    elif annotation is int:
        base = _int(c)
    elif annotation is float:
        base = st.one_of(st.floats(allow_nan=False, allow_infinity=False), _int(c))
    elif annotation is str:
        base = _string(c)
    elif origin is list:
        base = st.lists(typed(args[0], depth + 1), max_size=min(c.get("max_length", 4) + 1, 5))
    elif origin is dict:
        base = st.dictionaries(_string({}), typed(args[1], depth + 1), max_size=min(c.get("max_length", 4) + 1, 5))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        base = fields_of(annotation, depth + 1)
    else:
        raise AssertionError(f"no strategy for {annotation!r}")
    return st.one_of(base, base, base, JUNK)


def fields_of(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of a model's fields (each present or not, so required ones go missing too)."""
    return st.fixed_dictionaries({}, optional={name: typed(f.annotation, depth, _constraints(f.metadata))
                                               for name, f in model.model_fields.items()})


def _model_in(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("one" | "dict" | "list", the model) when a field holds a model, a dict or a list of them."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _model_in(args[0])
    if origin in (typing.Union, types.UnionType):
        return next((m for m in map(_model_in, args) if m is not None), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "one", annotation
    if origin in (dict, list):
        inner = _model_in(args[-1])
        return (("dict" if origin is dict else "list"), inner[1]) if inner and inner[0] == "one" else None
    return None


def _holds_text(annotation: Any) -> bool:
    """Whether a field holds a string (perhaps optional, constrained), or strings in a list or map."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _holds_text(args[0])
    if origin is dict:
        return _holds_text(args[1])
    if origin in (typing.Union, types.UnionType, list):
        return any(map(_holds_text, args))
    return annotation is str


Spot = tuple[tuple[Any, ...], type[BaseModel], str]  # (path to a dict, its model, one of its fields)


def spots(value: dict[str, Any], model: type[BaseModel], path: tuple[Any, ...] = ()) -> list[Spot]:
    """Every field of every model in `value`, at any depth (a DagJob's task's command line too)."""
    out: list[Spot] = [(path, model, name) for name in sorted(model.model_fields)]
    for name, f in sorted(model.model_fields.items()):
        inner, current = _model_in(f.annotation), value.get(name)
        if inner is None:
            continue
        shape, sub = inner
        if shape == "one" and isinstance(current, dict):
            out += spots(current, sub, (*path, name))
        elif shape == "dict" and isinstance(current, dict):
            out += [p for k, v in sorted(current.items()) if isinstance(v, dict)
                    for p in spots(v, sub, (*path, name, k))]
        elif shape == "list" and isinstance(current, list):
            out += [p for i, v in enumerate(current) if isinstance(v, dict) for p in spots(v, sub, (*path, name, i))]
    return out


def _at(value: Any, path: tuple[Any, ...]) -> dict[str, Any] | None:
    """The dict at `path`, or None when an earlier mutation replaced something on the way."""
    for step in path:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value if isinstance(value, dict) else None


def mutated(seed: dict[str, Any], model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """`seed` with one to three of its fields, at any depth, replaced by values of their type or
    junk, or removed. Half the changes go to text fields (names, paths, command lines, conf: where
    parsers and escaping break) and keep to the field's type, so that the spec stays valid more
    often and reaches render."""
    every = spots(seed, model)
    texts = [s for s in every if _holds_text(s[1].model_fields[s[2]].annotation)]
    return _mutated(seed, every, texts)


@st.composite
def _mutated(draw: st.DrawFn, seed: dict[str, Any], every: list[Spot], texts: list[Spot]) -> dict[str, Any]:
    out = copy.deepcopy(seed)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        text = draw(st.booleans())
        path, owner, name = draw(st.sampled_from(texts if text else every))
        target = _at(out, path)
        if target is None:
            continue
        f = owner.model_fields[name]
        how = "typed" if text else draw(st.sampled_from(["typed", "typed", "typed", "junk", "drop"]))
        if how == "junk":
            target[name] = draw(JUNK)
        elif how == "drop":
            target.pop(name, None)
        else:
            target[name] = draw(typed(f.annotation, len(path), _constraints(f.metadata)))
    return out


def _example(kind: str) -> list[dict[str, Any]]:
    specs = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == kind:
                specs.append(doc["spec"])
    assert specs, kind
    return specs


SPARKBATCH_SEEDS = _example("SparkBatch")
SESSION_SEEDS = _example("SparkSession")
FLINK_SEEDS = _example("FlinkJarJob")
DAG_SEEDS = [*_example("DagJob"), {
    "Name": "etl", "Priority": 700, "Type": "DAG", "JobFailOnInstanceFail": False, "AutoRelease": True,
    "Notification": {"Topic": {"Name": "alerts", "Events": ["OnJobFailed", "OnInstanceFinished"]}},
    "DAG": {"Dependencies": {"cmd": ["spark"], "spark": ["flink"]}, "Tasks": {
        "cmd": {"InstanceCount": 3, "MaxRetryCount": 1, "Timeout": 60,
                "Mounts": {"OSS": {"AccessKeyId": "id", "AccessKeySecret": "secret"}},
                "OutputMapping": {"/out/": "oss://bucket/out/"}, "LogMapping": {"/var/log/x.log": "oss://bucket/l/"},
                "pod": {"env": [{"name": "A", "value": "1"}]},
                "Parameters": {"Command": {"CommandLine": "python w.py --n 3", "EnvVars": {"K": "v"}},
                               "StdoutRedirectPath": "oss://bucket/o/", "StderrRedirectPath": "oss://bucket/e/"}},
        # Small embedded specs (their own kinds' runs vary every field): the command's fields get the changes.
        "spark": {"sparkBatch": {"file": "local:///app/job.py", "args": ["1"]}},
        "flink": {"flinkJarJob": {"name": "f", "entrypoint": "job.jar", "entrypoint_args": "-n 1"}}}}}]


def specs(model: type[BaseModel], seeds: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Mostly mutated seeds (they reach decide and render), some of the model's fields alone, some junk."""
    near = st.one_of([mutated(seed, model) for seed in seeds])
    return st.one_of(near, near, near, st.sampled_from(seeds), fields_of(model), JUNK)


# ----------------------------------------------------------------------------- observations

PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
OPT_TEXT = st.one_of(st.none(), TEXT, HUGE_TEXT)
LOG_TAIL = st.one_of(
    st.none(), st.lists(TEXT, max_size=20),
    st.builds(lambda line, n: Big((line,), n), st.sampled_from(["Traceback:", "ValueError: é😀",
                                                                 "25/11/29 18:45:04 INFO A: x"]),
              st.sampled_from([400, 10_000])),
    st.builds(lambda big, before: [*before, big], HUGE_TEXT, st.lists(TEXT, max_size=3)))
EXIT_CODES = st.one_of(st.none(), st.sampled_from([0, 1, 137, 143, 1443, -1, 2**31]))
# What a Spark driver's REST API answers for its jobs: a jobs list, with anything in its fields, or junk.
SPARK_JOBS = st.one_of(JUNK, st.lists(st.fixed_dictionaries({}, optional={
    "status": st.one_of(st.sampled_from(["RUNNING", "SUCCEEDED", "FAILED"]), JUNK),
    "submissionTime": st.one_of(st.just("2026-11-22T18:41:06.711GMT"), TEXT),
    "completionTime": st.one_of(st.just("2026-11-22T18:45:00.000GMT"), JUNK)}), max_size=4))
STEP_MS = st.sampled_from([0, 1, 1000, 11_000, 300_000, 3 * 3_600_000 + 1, 2 * 86_400_000])
CR_NAMES = st.one_of(st.sampled_from(["pi", "a", "x" * 63, "a.b.c", "0day", "a" * 253]),
                     st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,60}[a-z0-9])?", fullmatch=True))


@st.composite
def metas(draw: st.DrawFn) -> Meta:
    return Meta(name=draw(CR_NAMES), namespace="team-a", uid="5e1c0b7a-3d2f-4e8b-a1c9-0f2d3e4a5b6c",
                generation=draw(st.integers(1, 3)), created_ms=T0)


def pod_fields(draw: st.DrawFn, name: str | None, now: int) -> dict[str, Any]:
    """What a pod shows, as the controllers summarize it."""
    return real({"name": name or "gone", "phase": draw(st.sampled_from(PHASES)), "created_ms": now,
                 "deleting": draw(st.booleans()), "unschedulable": draw(OPT_TEXT), "waiting_reason": draw(OPT_TEXT),
                 "waiting_message": draw(OPT_TEXT), "exit_code": draw(EXIT_CODES), "term_reason": draw(OPT_TEXT),
                 "term_message": draw(OPT_TEXT)})


def counts(draw: st.DrawFn, cls: type[BaseModel]) -> Any:
    return cls(**{k: draw(st.integers(0, 50)) for k in cls.model_fields})


def check(d: Any, status_model: type[BaseModel]) -> None:
    """What every decision must be: a status that writes and reads back and is bounded, well-formed
    actions and Events, a requeue that is a delay."""
    dumped = d.status.model_dump(exclude_none=True, mode="json")
    assert status_model.model_validate(dumped) == d.status
    size = len(json.dumps(dumped, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    assert size <= STATUS_BYTES, f"status of {size} bytes"
    for event in getattr(d, "events", []):
        assert len(event) == 3 and all(isinstance(x, str) for x in event)
        assert len(event[2].encode("utf-8", "surrogatepass")) <= MESSAGE_BYTES + 64  # "<state>: <message>"
    for note in getattr(d, "notes", []):
        assert len(note.message.encode("utf-8", "surrogatepass")) <= MESSAGE_BYTES
    assert d.requeue_after_s is None or (math.isfinite(d.requeue_after_s) and d.requeue_after_s >= 0)


def rendered(build: Callable[[], Any]) -> None:
    """Render, which may refuse an object too large for Kubernetes, and nothing else."""
    try:
        out = build()
    except ObjectTooLarge as e:
        assert "bytes" in str(e)
        outcome = "render: ObjectTooLarge"
    except Unrenderable as e:  # a file the settings cannot resolve (a spec changed after admission)
        assert ": " in str(e)
        outcome = "render: Unrenderable"
    else:
        json.dumps(out)  # what kube.py sends
        outcome = "render: manifests"
    if currently_in_test_context():  # the sweep below renders outside hypothesis
        event(outcome)


# ----------------------------------------------------------------------------- the kinds


Respec = Callable[[], tuple[Any, str | None]]  # another spec, parsed: one that got past admission's immutability


def run_spark(data: st.DataObject, spec: Any, error: str | None, respec: Respec, session: bool) -> None:
    meta = data.draw(metas())
    owner = Owner("lakejob.io/v1alpha1", "SparkSession" if session else "SparkBatch", meta.name, meta.namespace,
                  meta.uid)
    status: Any = SparkSessionStatus() if session else SparkBatchStatus()
    now = T0
    for _ in range(data.draw(st.integers(1, 6))):
        now += data.draw(STEP_MS)
        if not data.draw(st.integers(0, 7)):
            spec, error = respec()
        driver = None
        if status.driverPod is not None and data.draw(st.integers(0, 4)):
            driver = sparkbatch_decide.DriverObs(**pod_fields(data.draw, status.driverPod, now))
        execs = counts(data.draw, ExecutorCounts)
        if session:
            rest = None
            if data.draw(st.booleans()):
                payload = real(data.draw(SPARK_JOBS))
                app = status.appId if data.draw(st.integers(0, 3)) else "spark-other"
                rest = sparksession_decide.RestObs(app=app or "", at_ms=now,
                                                   activity=sparksession_decide.rest_activity(payload))
            obs: Any = sparksession_decide.Observed(now_ms=now, driver=driver, executors=execs, rest=rest,
                                                    heartbeat=real(data.draw(OPT_TEXT)))
            d: Any = sparksession_decide.decide(spec, error, meta, status, obs, SETTINGS)
            check(d, SparkSessionStatus)
        else:
            obs = sparkbatch_decide.Observed(now_ms=now, driver=driver, executors=execs,
                                             log_tail=real(data.draw(LOG_TAIL)))
            d = sparkbatch_decide.decide(spec, error, meta, status, obs, SETTINGS)
            check(d, SparkBatchStatus)
        status = d.status
        render_spark_actions(spec, owner, d.actions, session)


def render_spark_actions(spec: Any, owner: Owner, actions: list[Any], session: bool) -> None:
    """What the Spark reconcilers render for decide's actions."""
    for a in actions if spec is not None else []:
        sz = resolve_sizing(spec)
        if a.verb == "ensure_children" and session:
            rendered(lambda: render_session.service(spec, owner))
        elif a.verb == "ensure_children":
            rendered(lambda: render_spark.driver_service(spec, owner))
            rendered(lambda: render_spark.driver_rbac(spec, owner))
        elif a.verb == "create_driver":
            module: Any = render_session if session else render_spark
            rendered(lambda: module.driver_pod(spec, owner, sz, a.attempt, SETTINGS, "sa"))


def run_flink(data: st.DataObject, spec: FlinkJarJobSpec | None, error: str | None, respec: Respec) -> None:
    meta = data.draw(metas())
    owner = Owner("lakejob.io/v1alpha1", "FlinkJarJob", meta.name, meta.namespace, meta.uid)
    status = FlinkJarJobStatus()
    now = T0
    for _ in range(data.draw(st.integers(1, 6))):
        now += data.draw(STEP_MS)
        if not data.draw(st.integers(0, 7)):
            spec, error = respec()
        jm = None
        if status.jobManagerPod is not None and data.draw(st.integers(0, 4)):
            jm = flinkjarjob_decide.PodObs(**pod_fields(data.draw, status.jobManagerPod, now))
        rest = None
        if data.draw(st.booleans()):
            rest = flinkjarjob_decide.RestObs(
                state=real(data.draw(st.one_of(st.sampled_from(["RUNNING", "RESTARTING", "FAILING", "FAILED",
                                                                "FINISHED", "CANCELED", "INITIALIZING"]),
                                               TEXT, HUGE_TEXT))),
                last_checkpoint=real(data.draw(OPT_TEXT)), exception=real(data.draw(OPT_TEXT)))
        obs = flinkjarjob_decide.Observed(
            now_ms=now, jobmanager=jm, taskmanagers=counts(data.draw, TaskManagerCounts), rest=rest,
            pods_left=data.draw(st.integers(0, 3)),
            checkpoint_conflict=real(data.draw(st.one_of(st.none(), st.none(), st.none(), TEXT))))
        d = flinkjarjob_decide.decide(spec, error, meta, status, obs, SETTINGS)
        check(d, FlinkJarJobStatus)
        for _url, cloud_event in d.notifications:
            json.dumps(cloud_event)
        status = d.status
        render_flink_actions(spec, owner, d.actions)


def render_flink_actions(spec: FlinkJarJobSpec | None, owner: Owner, actions: list[Any]) -> None:
    """What the FlinkJarJob reconciler renders for decide's actions."""
    for a in actions if spec is not None else []:
        sz = render_flink.resolve_sizing(spec, SETTINGS)
        if a.verb == "ensure_children":
            rendered(lambda: render_flink.configmap(spec, owner, sz, SETTINGS))
            rendered(lambda: render_flink.service(spec, owner))
            rendered(lambda: render_flink.taskmanager_replicaset(spec, owner, sz, SETTINGS))
        elif a.verb == "create_jobmanager":
            rendered(lambda: render_flink.jobmanager_pod(spec, owner, sz, a.attempt, a.savepoint, SETTINGS))


def _indexes(draw: st.DrawFn, n: int) -> str:
    """A Job's index set as Kubernetes writes it ("0-2,5")."""
    chosen = sorted(draw(st.sets(st.integers(0, max(0, n - 1)), max_size=min(n, 6))))
    return ",".join(str(i) for i in chosen)


def run_dag(data: st.DataObject, spec: DagJobSpec | None, error: str | None, respec: Respec) -> None:
    meta = data.draw(metas())
    owner = Owner("lakejob.io/v1alpha1", "DagJob", meta.name, meta.namespace, meta.uid)
    status = DagJobStatus()
    now = T0
    for _ in range(data.draw(st.integers(1, 8))):
        now += data.draw(STEP_MS)
        if not data.draw(st.integers(0, 7)):
            spec, error = respec()
        jobs, children = {}, {}
        for name, t in sorted((status.Tasks or {}).items()):
            if t.Child is None or not data.draw(st.integers(0, 4)):
                continue
            if t.Type == "command":
                n = data.draw(st.integers(1, 5))
                jobs[t.Child] = dagjob_decide.JobObs(
                    name=t.Child, completions=n, active=data.draw(st.integers(0, n)),
                    completed_indexes=_indexes(data.draw, n), failed_indexes=_indexes(data.draw, n),
                    suspended=data.draw(st.booleans()),
                    outcome=data.draw(st.sampled_from([None, "Complete", "Failed"])),
                    message=real(data.draw(OPT_TEXT)))
            else:
                children[t.Child] = dagjob_decide.ChildObs(
                    name=t.Child, state=real(data.draw(st.one_of(st.none(), st.sampled_from(
                        [*dagjob_decide.CHILD_STATES, "running", "job_running"]), TEXT, HUGE_TEXT))),
                    message=real(data.draw(OPT_TEXT)), suspended=data.draw(st.booleans()))
        obs = dagjob_decide.Observed(now_ms=now, jobs=jobs, children=children, admitted=data.draw(st.booleans()),
                                     jobs_in_namespace=data.draw(st.integers(1, 5)))
        d = dagjob_decide.decide(spec, error, meta, status, obs, SETTINGS)
        check(d, DagJobStatus)
        status = d.status
        render_dag_actions(spec, owner, d.actions)


def render_dag_actions(spec: DagJobSpec | None, owner: Owner, actions: list[Any]) -> None:
    """What the DagJob reconciler renders for decide's actions."""
    for a in actions if spec is not None else []:
        if a.verb == "create_job":
            rendered(lambda: render_dag.task_job(spec, a.task, owner, SETTINGS, a.run))
            rendered(lambda: render_dag.oss_secret(spec, owner))
        elif a.verb == "create_child":
            rendered(lambda: render_dag.child_resource(spec, a.task, owner, SETTINGS, a.run))


OWNER_META = Meta(name="j", namespace="ns", uid="uid-1", generation=1, created_ms=T0)


def start(kind: str, spec: Any, error: str | None) -> None:
    """A new CR's first pass: decide, and render what it asks for (the DagJob has a slot)."""
    meta = OWNER_META
    owner = Owner("lakejob.io/v1alpha1", kind, meta.name, meta.namespace, meta.uid)
    d: Any
    if kind in ("SparkBatch", "SparkSession"):
        module: Any = sparkbatch_decide if kind == "SparkBatch" else sparksession_decide
        status: Any = SparkBatchStatus() if kind == "SparkBatch" else SparkSessionStatus()
        d = module.decide(spec, error, meta, status, module.Observed(T0, None, ExecutorCounts()), SETTINGS)
        check(d, type(status))
        render_spark_actions(spec, owner, d.actions, session=kind == "SparkSession")
    elif kind == "FlinkJarJob":
        d = flinkjarjob_decide.decide(spec, error, meta, FlinkJarJobStatus(),
                                      flinkjarjob_decide.Observed(T0, None, TaskManagerCounts()), SETTINGS)
        check(d, FlinkJarJobStatus)
        render_flink_actions(spec, owner, d.actions)
    else:
        d = dagjob_decide.decide(spec, error, meta, DagJobStatus(), dagjob_decide.Observed(T0), SETTINGS)
        check(d, DagJobStatus)
        render_dag_actions(spec, owner, d.actions)


@dataclass(frozen=True)
class Kind:
    name: str
    parse: Callable[[Mapping[str, Any]], tuple[Any, str | None]]  # the controller's parse_spec
    model: type[BaseModel]
    seeds: list[dict[str, Any]]
    run: Callable[[st.DataObject, Any, str | None, Respec], None]  # decide over a few observations, and render

    @functools.cached_property
    def specs(self) -> st.SearchStrategy[Any]:
        return specs(self.model, self.seeds)

    def __repr__(self) -> str:
        return self.name  # what hypothesis shows of a failing case


KINDS = [
    Kind("SparkBatch", sparkbatch.parse_spec, SparkBatchSpec, SPARKBATCH_SEEDS,
         lambda data, spec, error, respec: run_spark(data, spec, error, respec, session=False)),
    Kind("SparkSession", sparksession.parse_spec, SparkSessionSpec, SESSION_SEEDS,
         lambda data, spec, error, respec: run_spark(data, spec, error, respec, session=True)),
    Kind("FlinkJarJob", flinkjarjob.parse_spec, FlinkJarJobSpec, FLINK_SEEDS, run_flink),
    Kind("DagJob", dagjob.parse_spec, DagJobSpec, DAG_SEEDS, run_dag),
]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@FUZZ
@given(data=st.data())
def test_parse_decide_render_raise_nothing_but_a_validation_error(kind: Kind, data: st.DataObject) -> None:
    def parsed(label: str) -> tuple[Any, str | None]:
        spec, error = kind.parse({"spec": real(data.draw(kind.specs, label=label))})
        assert (spec is None) != (error is None) and (error is None or isinstance(error, str))
        return spec, error

    spec, error = parsed("spec")
    event("spec: valid" if spec is not None else "spec: invalid")  # --hypothesis-show-statistics
    kind.run(data, spec, error, lambda: parsed("changed spec"))


# What breaks parsers and escapes most often: quotes, a trailing backslash, newlines, format and
# YAML syntax, NUL, astral and multi-byte characters, nothing, the longest a field takes.
HOSTILE = ["'", '"', "a\\", "\n", "{0}", "%s", "\x00", "😀", "", " ", "- x", "*a", "#x", "é" * 4096]


def _hostile_values(annotation: Any, current: Any, text: str) -> list[Any]:
    """`text` in the shape of a field: itself, in a list, as a map's value and key."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _hostile_values(args[0], current, text)
    if origin in (typing.Union, types.UnionType):
        return [v for a in args if a is not type(None) for v in _hostile_values(a, current, text)]
    if origin is list:
        return [[text]]
    if origin is dict:
        mine = dict(current) if isinstance(current, dict) else {}
        first = next(iter(mine), "k")
        return [{**mine, first: text}, {**mine, text: "v"}]
    return [text] if annotation is str else []


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_every_text_field_of_every_example_takes_every_hostile_string(kind: Kind) -> None:
    """The same property, swept rather than sampled: each HOSTILE string in each text field (at any
    depth: a DagJob task's command line too) of each example, through parse, decide and render."""
    for seed in kind.seeds:
        for path, model, name in spots(seed, kind.model):
            annotation = model.model_fields[name].annotation
            if not _holds_text(annotation):
                continue
            for text in HOSTILE:
                for value in _hostile_values(annotation, (_at(seed, path) or {}).get(name), text):
                    body = copy.deepcopy(seed)
                    target = _at(body, path)
                    assert target is not None
                    target[name] = value
                    spec, error = kind.parse({"spec": body})
                    start(kind.name, spec, error)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_every_example_parses(kind: Kind) -> None:
    """The seeds are valid, so the mutations around them reach decide and render."""
    for seed in kind.seeds:
        assert kind.parse({"spec": seed})[1] is None
