"""Child names never collide (issue 11, ownership): between two CRs of one kind, of different kinds,
or of two DagJob task/run combinations in one namespace. A collision would make one CR's create
find the other's object: reported as a conflict since ownership is checked, but a job that cannot
run. Property tests over adversarial names built from the very tokens the name schemes use.
"""
from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from lakejob.render import dag, flink, spark
from lakejob.render.common import short_name

# The tokens our schemes append, so that drawn names are each other's prefixes and suffixes.
TOKENS = ["a", "b", "x", "driver", "session", "spark", "conf", "svc", "sa", "exec", "jm", "jobmanager",
          "flink", "config", "taskmanager", "oss", "r1", "r2", "a1", "s1", "1", "2", "12345678"]
name_parts = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6)
# Valid CR names: DNS subdomains (dots allowed), some longer than the 40 characters kept as they are.
cr_names = st.one_of(
    name_parts.map("-".join),
    st.tuples(name_parts, st.sampled_from([".", "-", "--"]), name_parts).map(lambda t: "-".join(t[0]) + t[1] + "-".join(t[2])),
    st.tuples(name_parts, st.integers(30, 120)).map(lambda t: ("-".join(t[0]) + "-" + "y" * t[1])[:253]),
).filter(lambda n: n[0].isalnum() and n[-1].isalnum())
KINDS = ["SparkBatch", "SparkSession", "FlinkJarJob", "DagJob"]


def children(kind: str, name: str, tasks: list[str]) -> Iterator[tuple[str, str]]:
    """(resource, name) of every object a CR of `kind` named `name` creates or causes, over a few attempts."""
    if kind in ("SparkBatch", "SparkSession"):
        n = spark.Names.of(name, kind)
        for attempt in (1, 2, 11):
            yield "pods", n.driver_pod(attempt)
            yield "pods", f"{n.executor_prefix(attempt)}-exec-1"  # Spark names executors <prefix>-exec-<id>
        yield "services", n.service
        for resource in ("serviceaccounts", "roles", "rolebindings"):
            yield resource, n.rbac
    elif kind == "FlinkJarJob":
        f = flink.Names.of(name)
        for attempt in (1, 2, 11):
            yield "pods", f.jobmanager(attempt)
        yield "services", f.service
        yield "configmaps", f.configmap
        yield "replicasets", f.taskmanagers
    else:
        for task in tasks:
            for run in (1, 2, 12):
                yield "jobs", dag.child_name(name, task, run)
        yield "secrets", dag.secret_name(name)


@settings(max_examples=150, deadline=None)
@given(st.lists(cr_names, min_size=1, max_size=6, unique=True),
       st.lists(st.sampled_from(["t", "t-r2", "T", "r2", "a-b", "b", "taskA", "task-a"]), min_size=1, max_size=4,
                unique=True))
def test_no_two_crs_share_a_child_name(names: list[str], tasks: list[str]) -> None:
    owner: dict[tuple[str, str], tuple[str, str]] = {}
    for kind in KINDS:  # every kind under every drawn name: same names, prefixes and suffixes of each other
        for name in names:
            for child in set(children(kind, name, tasks)):
                assert owner.setdefault(child, (kind, name)) == (kind, name), f"{child}: {(kind, name)}, {owner[child]}"


@settings(max_examples=150, deadline=None)
@given(st.lists(cr_names, min_size=2, max_size=10, unique=True))
def test_short_names_are_distinct_dns_labels(names: list[str]) -> None:
    shorts = [short_name(n) for n in names]
    assert len(set(shorts)) == len(names)
    for s in shorts:
        assert len(s) <= 40 and s[0].isalpha() and s[-1].isalnum() and set(s) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


def test_a_name_that_looks_hashed_is_not_another_names_short_name() -> None:
    hashed = short_name("etl.daily")  # dots are not allowed in a label: cleaned and hashed
    assert hashed.startswith("etl-daily--")
    assert short_name(hashed) != hashed  # a CR literally named so gets its own hash


@settings(max_examples=150, deadline=None)
@given(st.lists(cr_names, min_size=1, max_size=4, unique=True),
       st.lists(st.sampled_from(["t", "t-r2", "T", "t-r", "r2", "x-t", "taskA", "task-a", "a" * 70]), min_size=1,
                max_size=5, unique=True))
def test_dag_child_names_are_distinct_per_dagjob_task_and_run(dagjobs: list[str], tasks: list[str]) -> None:
    triples = [(d, t, run) for d in dagjobs for t in tasks for run in (1, 2, 3, 12)]
    names = [dag.child_name(*t) for t in triples]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 52 and n[0].isalpha() for n in names)
