"""`lakejob get dag NAME` (issue 15) as a user runs it, with a kubeconfig, on a DagJob the operator
ran to its end on KWOK: a fan-out and a fan-in, a SparkBatch task, and a task that failed after its
retries with the task it skipped. The header and every row of the tree, from the real status.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.kubectl import Kubectl, Operator
from tests.e2e.test_dagjob import command, dagjob, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SPARK = {"file": "local:///opt/spark/examples/jars/spark-examples.jar",
         "className": "org.apache.spark.examples.SparkPi",
         "driver": {"labels": {"sim.lakejob.io/outcome": "succeed"}, "annotations": {"sim.lakejob.io/delay": "1s"}}}


@pytest.fixture(scope="module", autouse=True)
def _priority_classes(priority_classes: None) -> None:
    """Every DagJob pod names one of the chart's PriorityClasses."""


def get_dag(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "lakejob"), "get", "dag", *args], capture_output=True,
                          text=True, env={**os.environ, "KUBECONFIG": kubeconfig}, timeout=60)


def test_get_dag_prints_the_tree_of_a_finished_dagjob(kubeconfig: str, kubectl: Kubectl, namespace: str,
                                                       operator: Operator) -> None:
    tasks = {"A": command(), "B": command(instances=2), "C": command(), "D": command(),
             "report": {"sparkBatch": SPARK},
             "flaky": command(retries=1, outcome="fail", delay="0s"), "after": command()}
    deps = {"A": ["B", "C"], "B": ["D"], "C": ["D"], "D": ["report"], "flaky": ["after"]}
    kubectl.apply(dagjob("tree", tasks, deps, fail_fast=False), namespace)
    st = wait_state(kubectl, "tree", namespace, "Failed", timeout=150)

    r = get_dag(kubeconfig, "tree", "-n", namespace)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    blank = out.index("")
    header = dict(line.split(":", 1) for line in out[:blank])
    assert header["Name"].strip() == "tree" and header["Namespace"].strip() == namespace
    assert header["Status"].strip() == "Failed (TaskFailed)" and header["Progress"].strip() == "5/7"
    assert {"Created", "Started", "Finished", "Duration", "Message"} <= set(header)

    table = out[blank + 1:]
    kind_at = table[0].index("KIND")
    assert table[0].split() == ["TASK", "KIND", "INSTANCES", "RUNS", "RETRIES", "DURATION", "MESSAGE"]
    assert [row[:kind_at].rstrip() for row in table[1:]] == [
        " ✖ tree",
        " ├─✔ A",
        " │ ├─✔ B",
        " │ │ └─✔ D (also after C)",
        " │ │   └─✔ report",
        " │ └─✔ C",
        " └─✖ flaky",
        "   └─○ after",
    ]
    name = re.compile(r"[✔✖◷●○] (\S+)")
    cells = {name.search(row[:kind_at]).group(1): row[kind_at:].split()  # type: ignore[union-attr]
             for row in table[2:]}
    assert cells["B"][:5] == ["command", "2/2", "1", "max", "0"]
    assert cells["report"][:4] == ["SparkBatch", "1/1", "1", "-"]
    assert cells["flaky"][:7] == ["command", "0/1", "(1", "failed)", "1", "max", "1"]
    assert "failed after 1 retries" in table[7]
    assert table[8].endswith("skipped: upstream task flaky failed")

    wide = get_dag(kubeconfig, "tree", "-n", namespace, "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    row_a = next(row for row in wide.stdout.splitlines() if row.startswith(" ├─✔ A "))
    assert st["Tasks"]["A"]["Child"] in row_a.split()

    missing = get_dag(kubeconfig, "nothing", "-n", namespace)
    assert missing.returncode == 2 and f"no DagJob named nothing in namespace {namespace}" in missing.stderr
