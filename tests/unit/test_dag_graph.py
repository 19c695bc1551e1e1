"""lakejob.dag_graph: BatchCompute's downstream map inverted, checked and ordered."""
from __future__ import annotations

import gc
import itertools

import pytest

from lakejob import dag_graph

DIAMOND = {"A": ["B", "C"], "B": ["D"], "C": ["D"]}


def test_upstream_inverts_downstream_lists_for_every_task() -> None:
    assert dag_graph.upstream(DIAMOND, "ABCDE") == {"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"], "E": []}


def test_upstream_of_no_dependencies() -> None:
    assert dag_graph.upstream({}, ["x", "y"]) == {"x": [], "y": []}


@pytest.mark.parametrize(("deps", "tasks", "unknown"), [
    ({"A": ["B"]}, "AB", []),
    ({"A": ["Z"]}, "AB", ["Z"]),
    ({"Z": ["A"]}, "AB", ["Z"]),
    ({"Y": ["Z", "A"], "A": ["Z"]}, "AB", ["Y", "Z"]),
    ({}, "A", []),
])
def test_unknown_names(deps: dict[str, list[str]], tasks: str, unknown: list[str]) -> None:
    assert dag_graph.unknown_names(deps, tasks) == unknown


@pytest.mark.parametrize(("deps", "cycle"), [
    ({"A": ["A"]}, ["A", "A"]),
    ({"A": ["B"], "B": ["A"]}, ["A", "B", "A"]),
    ({"A": ["B"], "B": ["C"], "C": ["A"]}, ["A", "B", "C", "A"]),
    ({"start": ["A"], "A": ["B"], "B": ["C"], "C": ["A"]}, ["A", "B", "C", "A"]),
    ({"A": ["B", "C"], "C": ["D"], "D": ["C"]}, ["C", "D", "C"]),
])
def test_find_cycle_prints_a_closed_path(deps: dict[str, list[str]], cycle: list[str]) -> None:
    assert dag_graph.find_cycle(deps) == cycle


@pytest.mark.parametrize("deps", [{}, DIAMOND, {"A": ["B"], "B": ["C"]}, {"A": ["C"], "B": ["C"], "C": []}])
def test_no_cycle(deps: dict[str, list[str]]) -> None:
    assert dag_graph.find_cycle(deps) is None


def test_a_found_cycle_is_a_real_cycle() -> None:
    # every 3-node graph: a reported cycle must follow edges and close, and exist iff there is one
    nodes = "ABC"
    edges = [(a, b) for a in nodes for b in nodes]
    for chosen in itertools.chain.from_iterable(itertools.combinations(edges, k) for k in range(4)):
        deps: dict[str, list[str]] = {}
        for a, b in chosen:
            deps.setdefault(a, []).append(b)
        cycle = dag_graph.find_cycle(deps)
        if cycle is None:
            dag_graph.topological_order(deps, nodes)  # acyclic: orderable
            continue
        assert cycle[0] == cycle[-1]
        assert all(b in deps[a] for a, b in zip(cycle, cycle[1:]))


def test_find_cycle_leaves_no_garbage_for_the_cycle_collector() -> None:
    # It runs on every DagJob pass: garbage in cycles piles up until Python's next full collection.
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            dag_graph.find_cycle(DIAMOND)
        assert gc.collect() == 0  # nothing unreachable: all of it was freed as it went
    finally:
        gc.enable()


def test_topological_order_puts_upstream_first_and_takes_the_first_ready_name() -> None:
    assert dag_graph.topological_order(DIAMOND, "DCBAE") == ["A", "B", "C", "D", "E"]


def test_topological_order_respects_every_edge_of_a_chain() -> None:
    chain = {f"t{i:03}": [f"t{i + 1:03}"] for i in range(199)}
    order = dag_graph.topological_order(chain, [f"t{i:03}" for i in range(200)])
    assert order == [f"t{i:03}" for i in range(200)]


def test_topological_order_names_the_cycle() -> None:
    with pytest.raises(ValueError, match="Dependencies form a cycle: A -> B -> A"):
        dag_graph.topological_order({"A": ["B"], "B": ["A"]}, "AB")


def test_descendants_are_transitive() -> None:
    assert dag_graph.descendants(DIAMOND, "A") == {"B", "C", "D"}
    assert dag_graph.descendants(DIAMOND, "B") == {"D"}
    assert dag_graph.descendants(DIAMOND, "D") == set()
