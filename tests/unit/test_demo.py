"""hack/demo.py without a cluster: its one verdict (the last lines and the exit code) from the examples'
states, how an example's state is read, and when its release makes the chart's PriorityClasses."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lakejob_hack_demo", ROOT / "hack" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the dataclass looks its module up
    spec.loader.exec_module(module)
    return module


demo = _load()


def ex(name: str, state: str, settled: bool, reason: str = "", message: str = "",
       namespace: str = "default", kind: str = "SparkBatch") -> Any:
    return demo.Example(namespace, kind, name, state, reason, message, settled)


def test_every_example_settled_is_one_ok_line_and_exit_0() -> None:
    lines, code = demo.verdict([ex("pi", "success", True), ex("retry", "dead", True)], 93.4)
    assert (lines, code) == (["demo: OK: all 2 examples settled in 93 s"], 0)


def test_an_unsettled_example_fails_the_demo_naming_it_its_state_and_why() -> None:
    lines, code = demo.verdict([
        ex("pi", "success", True),
        ex("testjob", "Running", False, kind="DagJob",
           message="task taskA: pods cannot be created: no PriorityClass with name lakejob-priority-low was found"),
        ex("pyspark", "starting", False, reason="Pending", namespace="lakejob-demo"),
        ex("new", "(no status yet)", False),
    ], 600.2)
    assert code == 1
    assert lines == [
        "demo: FAILED: 3 of 4 examples did not settle in 600 s:",
        "  DagJob default/testjob: Running task taskA: pods cannot be created: no PriorityClass with name "
        "lakejob-priority-low was found",
        "  SparkBatch lakejob-demo/pyspark: starting (Pending)",
        "  SparkBatch default/new: (no status yet)",
        "  (`kubectl describe lakejob -A` and `kubectl get events -A` say more)",
    ]
    assert not any("OK" in line for line in lines)


def test_no_example_at_all_is_a_failure() -> None:
    lines, code = demo.verdict([], 600)
    assert code == 1 and lines[0].startswith("demo: FAILED: no example was found")


def _item(kind: str, namespace: str, status: dict[str, Any] | None) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "x", "namespace": namespace}, **({"status": status} if status else {})}


def test_a_dagjob_waiting_on_a_task_is_unsettled_with_the_tasks_message() -> None:
    e = demo.example(_item("DagJob", "default", {"State": "Running", "Tasks": {
        "b": {"State": "Waiting"}, "a": {"State": "Running", "Message": "no PriorityClass lakejob-priority-low"}}}))
    assert (e.state, e.settled, e.message) == ("Running", False, "task a: no PriorityClass lakejob-priority-low")


def test_a_real_example_settles_when_it_has_shown_what_it_does() -> None:
    ended = demo.example(_item("DagJob", demo.REAL_NS, {"State": "Finished", "message": "3 tasks finished"}))
    assert (ended.state, ended.message, ended.settled) == ("Finished", "3 tasks finished", True)
    assert not demo.example(_item("SparkBatch", demo.REAL_NS, None)).settled
    assert demo.example(_item("SparkBatch", demo.REAL_NS, None)).state == "(no status yet)"


def test_a_simulated_batch_settles_once_it_runs_a_real_one_only_when_it_ends() -> None:
    # A vendor's example carries no sim.lakejob.io/outcome: its KWOK driver runs no code and never ends.
    assert demo.example(_item("SparkBatch", "default", {"state": "running"})).settled
    assert not demo.example(_item("SparkBatch", "default", {"state": "starting"})).settled
    assert not demo.example(_item("SparkBatch", demo.REAL_NS, {"state": "running"})).settled


RELEASE, NS = "lakejob-demo", "lakejob-demo-operator"
OURS = {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NS}


def test_the_release_makes_the_priority_classes_when_none_exists_or_they_are_its_own() -> None:
    assert demo.owns_priority_classes(RELEASE, NS, {})
    # A second run: had it stopped listing them, its upgrade would have deleted them.
    assert demo.owns_priority_classes(RELEASE, NS, {"lakejob-priority-low": OURS, "lakejob-priority-high": OURS})


def test_priority_classes_of_another_owner_are_used_not_made() -> None:
    assert not demo.owns_priority_classes(RELEASE, NS, {"lakejob-priority-low": {}})  # kubectl-applied (e2e)
    other = {**OURS, "meta.helm.sh/release-name": "lakejob"}
    assert not demo.owns_priority_classes(RELEASE, NS, {"lakejob-priority-low": OURS, "lakejob-priority-high": other})
