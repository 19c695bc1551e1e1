"""The real world's faults, on a control plane of the tests' own (issue 11; `make test-faults`).

- kill -9 of the operator in the middle of a burst of 500 CRs, for each kind: after a restart,
  every CR ends as it should, none lost, no child created twice;
- kube-apiserver and etcd stopped for 30 s mid-run, then started again on the same data;
- the operator's watch connections cut for longer than etcd's compaction window, so that its
  watches resume from a compacted revision and get 410 Gone.
In the last two, CRs and a running job's driver pod are deleted while the operator cannot see it:
after the re-list it must have forgotten the deleted CRs (no status writes to them, no children
made for them, not counted in its metrics) and must not believe in the deleted pod.

The apiserver's audit log is the record of what the operator created (faults.py); the figures
(time to recover, CRs lost, children duplicated) go to docs/reliability.md's "Faults" table.
Each cluster here is KWOK-only with its own run directory and ports, so the session's cluster and
the tests running on it are never disturbed. Sizes: LAKEJOB_FAULTS_CRS (500 per kind for kill -9),
LAKEJOB_FAULTS_MIXED (CRs per kind in the other two).
"""
from __future__ import annotations

import os
import platform
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.faults import KINDS, Burst, FaultCluster, FaultOperator, Kind, Link, begun, \
    check_children, create_many, states, wait_terminal, write_figures
from tests.e2e.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.faults]

N = int(os.environ.get("LAKEJOB_FAULTS_CRS", "500"))
MIXED = int(os.environ.get("LAKEJOB_FAULTS_MIXED", "100"))
# Two clusters of ours, clear of the session's (16440), the control-plane tests' (17440, 18440)
# and a bench's.
PORT_BASE = int(os.environ.get("LAKEJOB_FAULTS_PORT_BASE", "18540"))
OUTAGE_S = 30
CUT_S = 40
# The watches whose 410 and re-list the blind-spell tests wait for (as kopf names them in its log).
WATCHED = {"sparkbatches.v1alpha1.lakejob.io", "sparksessions.v1alpha1.lakejob.io", "flinkjarjobs.v1alpha1.lakejob.io",
           "dagjobs.v1alpha1.lakejob.io", "pods.v1", "jobs.v1.batch"}
FIGURES: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for row in FIGURES:
        if reporter is not None:
            reporter.write_line(f"faults: {row}")
    write_figures(ROOT / "docs" / "reliability.md", FIGURES,
                  f"{os.cpu_count()} cores {platform.machine()}, everything on the one machine")


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultCluster, Kubectl]]:
    cluster = FaultCluster(tmp_path_factory.mktemp("faults") / "run", PORT_BASE)
    try:
        kubectl = cluster.up()
        yield cluster, kubectl
    finally:
        cluster.down()


def namespace(kubectl: Kubectl, prefix: str) -> str:
    return kubectl.fresh_namespace(prefix)


# ------------------------------------------------------------------------------------ kill -9


@pytest.mark.parametrize("kind_name", list(KINDS))
def test_kill_9_mid_burst_loses_and_duplicates_nothing(fault_cluster: tuple[FaultCluster, Kubectl], kind_name: str,
                                                       tmp_path: Path) -> None:
    cluster, kubectl = fault_cluster
    kind = KINDS[kind_name]
    ns = namespace(kubectl, f"kill-{kind.prefix}")
    names = [f"{kind.prefix}-{i:04d}" for i in range(N)]
    op = FaultOperator(cluster.kubeconfig, ns, tmp_path / "op1.log")
    op2 = FaultOperator(cluster.kubeconfig, ns, tmp_path / "op2.log")
    try:
        op.start()
        kubectl.wait_for(lambda: "lakejob operator started" in op.text(), "the operator to start")
        started = cluster.started(ns, kind.started[0])
        t0 = time.monotonic()
        burst = Burst(cluster.kubeconfig, ns, [kind.manifest(n, 5) for n in names])
        kubectl.wait_for(lambda: len(started()) >= N // 2, f"half of the {kind.name}s to have their first child",
                         timeout=300)
        op.kill()
        killed_at, at_kill = time.monotonic() - t0, len(started())
        burst.join()
        time.sleep(2)  # the simulated pods go on without an operator
        op2.start()
        restarted = time.monotonic()
        final = wait_terminal(kubectl, ns, [kind], {kind.name: set(names)}, timeout=900)[kind.name]
        recovery = time.monotonic() - restarted
        children = check_children(cluster.audit(), ns, kind, {n: final[n] for n in names})
        wrong = {n: s.get(kind.state_field) for n, s in final.items() if s.get(kind.state_field) != kind.done}
        FIGURES.append({"fault": "kill -9 of the operator mid-burst", "kind": kind.name, "crs": N,
                        "recovery_s": recovery, "lost": len(children.lost) + len(wrong),
                        "duplicated": len(children.duplicated),
                        "note": f"{N} CRs created in {burst.seconds:.0f} s; killed {killed_at:.0f} s in, "
                                f"{at_kill} with their first child; recovery: restart → every CR "
                                "terminal (5 s simulated runs)"})
        assert not wrong, f"{len(wrong)} ended otherwise than {kind.done}: {dict(list(wrong.items())[:10])}"
        assert not children.lost, children.lost[:20]
        assert not children.duplicated, children.duplicated[:20]
    finally:
        op.kill()
        op2.stop()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


# ------------------------------------------------------------------------------------ blind spells

# In the two tests below the operator cannot see the cluster for a while, and comes back to one that
# changed: CRs of each kind run for 1 s (done before the fault), 45 s (done while it is blind) or
# 150 s (still running when it is back); finished and running CRs are deleted, and so are the
# driver pods of running SparkBatches. It has recovered once every CR whose work ended has ended
# (the deleted drivers' SparkBatches `dead`, DriverPodMissing) and it counts no deleted CR.
QUICK, MID, LONG = 1, 45, 150


@dataclass
class Spell:
    names: dict[str, list[str]]  # kind → every CR made
    later: set[str] = field(default_factory=set)  # CRs still running when the operator is back
    deleted: dict[str, float] = field(default_factory=dict)  # CR → when it was deleted (epoch s)
    orphaned: list[str] = field(default_factory=list)  # SparkBatches whose driver pod was deleted

    def live(self) -> dict[str, set[str]]:
        return {k: {n for n in names if n not in self.deleted} for k, names in self.names.items()}


def mixed_burst(cluster: FaultCluster, ns: str) -> Spell:
    spell = Spell({})
    manifests = []
    for kind in KINDS.values():
        names = spell.names[kind.name] = [f"{kind.prefix}-{i:04d}" for i in range(MIXED)]
        seconds: list[int | None] = [QUICK if i < MIXED // 5 else MID if i < MIXED // 2 else LONG
                                     for i in range(MIXED)]
        if kind.name == "SparkBatch":  # the drivers to be deleted run until then, whatever the delays
            seconds[-10:-5] = [None] * 5
        # A DagJob's second task starts only once the operator sees the first one end: its end is later.
        spell.later |= {n for n, t in zip(names, seconds) if t == LONG or (t == MID and kind.name == "DagJob")}
        manifests += [kind.manifest(n, t) for n, t in zip(names, seconds)]
    Burst(cluster.kubeconfig, ns, manifests).join()
    return spell


def wait_mid_run(kubectl: Kubectl, ns: str, spell: Spell) -> None:
    """Until the quick fifth is terminal and every CR has started."""
    for kind in KINDS.values():
        wait_terminal(kubectl, ns, [kind], {kind.name: set(spell.names[kind.name][:MIXED // 5])}, timeout=300)
        kubectl.wait_for(lambda: len(begun(kubectl, kind, ns)) >= MIXED, f"every {kind.name} to have started",
                         timeout=300)


def delete_while_blind(kubectl: Kubectl, ns: str, spell: Spell) -> None:
    """Per kind 5 finished and 5 running CRs; the driver pods of 5 running SparkBatches."""
    for kind in KINDS.values():
        victims = spell.names[kind.name][:5] + spell.names[kind.name][-5:]
        kubectl.run("delete", kind.plural, "-n", ns, "--wait=false", *victims)
        spell.deleted.update({v: time.time() for v in victims})
    spell.orphaned = spell.names["SparkBatch"][-10:-5]
    # Removed at once (no kubelet, here KWOK, has to confirm): gone before the operator looks again.
    kubectl.run("delete", "pods", "-n", ns, "--grace-period=0", "--force", "--wait=false",
                *[f"{n}-driver-1" for n in spell.orphaned])


def expected_end(kind: Kind, name: str, spell: Spell) -> tuple[str, str | None]:
    if name in spell.orphaned:  # its driver vanished after it was seen running
        return "dead", "DriverPodMissing"
    return kind.done, None


def caught_up(kubectl: Kubectl, op: FaultOperator, ns: str, spell: Spell) -> list[str]:
    """What the operator has not caught up with yet: CRs that could have ended and did not (or not
    as they should), and its count of CRs against what exists (deleted ones must not count)."""
    behind = []
    metrics = op.metrics()
    for kind in KINDS.values():
        now = states(kubectl, kind, ns)
        for name in spell.live()[kind.name] - spell.later | (set(spell.orphaned) & set(spell.names[kind.name])):
            st = now.get(name, {})
            want = expected_end(kind, name, spell)
            if (st.get(kind.state_field), st.get("reason") if want[1] else None) != want:
                behind.append(f"{kind.name}/{name}: {st.get(kind.state_field)} {st.get('reason') or ''}")
        counted = sum(v for (metric, labels), v in metrics.items()
                      if metric == "lakejob_objects" and ("kind", kind.name) in labels)
        if counted != len(now):
            behind.append(f"the operator counts {counted:.0f} {kind.name}s, {len(now)} exist")
    return behind


def check_after_blind_spell(cluster: FaultCluster, kubectl: Kubectl, op: FaultOperator, ns: str, spell: Spell,
                            back: float, fault: str, how: str) -> None:
    behind: list[str] = []

    def check() -> bool:
        behind[:] = caught_up(kubectl, op, ns, spell)
        return not behind

    try:
        kubectl.wait_for(check, "the operator to catch up", timeout=300)
    except AssertionError:
        raise AssertionError(f"the operator did not catch up in 300 s: {behind[:20]}") from None
    recovery = time.monotonic() - back
    final = wait_terminal(kubectl, ns, KINDS.values(), spell.live(), timeout=600)
    finished = time.monotonic() - back
    audit = cluster.audit()
    problems: list[str] = []
    for kind in KINDS.values():
        mine = {n: final[kind.name][n] for n in spell.live()[kind.name]}
        children = check_children(audit, ns, kind, mine, spell.deleted)
        wrong = [f"{kind.name}/{n} ended {st.get(kind.state_field)} {st.get('reason')}" for n, st in mine.items()
                 if (st.get(kind.state_field), st.get("reason") if n in spell.orphaned else None)
                 != expected_end(kind, n, spell)]
        problems += wrong + children.lost + children.duplicated
        problems += [f"created for a deleted CR: {c}" for c in children.stale]
        FIGURES.append({"fault": fault, "kind": kind.name, "crs": MIXED, "recovery_s": recovery,
                        "lost": len(wrong) + len(children.lost), "duplicated": len(children.duplicated),
                        "note": f"{how}; recovery: the operator's link back → every CR whose work ended has "
                                f"ended, deleted CRs forgotten; the 150 s runs all ended {finished:.0f} s after"})
    # Forgotten at the first refusal: at most one status write refused (404) per deleted CR.
    refused = Counter(e["objectRef"]["name"] for e in audit
                      if e.get("verb") == "patch" and (e.get("objectRef") or {}).get("subresource") == "status"
                      and (e.get("objectRef") or {}).get("namespace") == ns
                      and (e.get("responseStatus") or {}).get("code") == 404)
    problems += [f"{n}: {c} status writes refused with 404" for n, c in refused.items() if c > 1]
    log = op.text()
    problems += [f"{n}: 404 retried in the log" for n in spell.deleted
                 if sum(f"/{n} " in line and " 404" in line for line in log.splitlines()) > 1]
    # The garbage collector removed the deleted CRs' children (by their owner references).
    for kind in KINDS.values():
        resource, selector = kind.started
        kubectl.wait_for(lambda: not [n for n in spell.deleted if n.startswith(kind.prefix + "-") and
                                      kubectl.list(resource, ns, f"{selector},lakejob.io/name={n}")],
                         f"the deleted {kind.name}s' children to be collected", timeout=120)
    assert not problems, "\n".join(problems[:40])


def test_apiserver_and_etcd_stopped_30s_mid_run(fault_cluster: tuple[FaultCluster, Kubectl], tmp_path: Path) -> None:
    """The control plane goes away under a running operator and comes back on the same etcd data.
    The operator's link stays shut a little longer while CRs and pods are deleted, so it comes
    back to a world that changed unseen: its watches resume from before the restart, which the new
    apiserver's watch cache cannot serve (410 Gone), and it re-lists."""
    cluster, kubectl = fault_cluster
    ns = namespace(kubectl, "outage")
    link = Link(cluster.apiserver)
    op = FaultOperator(link.kubeconfig(cluster.kubeconfig, tmp_path / "kubeconfig"), ns, tmp_path / "op.log")
    try:
        op.start()
        kubectl.wait_for(lambda: "lakejob operator started" in op.text(), "the operator to start")
        spell = mixed_burst(cluster, ns)
        wait_mid_run(kubectl, ns, spell)
        cluster.stop("kube-apiserver", "etcd")
        time.sleep(OUTAGE_S)
        link.cut()  # the operator stays blind while the world changes
        cluster.start("etcd", "kube-apiserver")
        delete_while_blind(kubectl, ns, spell)
        link.restore()
        back = time.monotonic()
        kubectl.wait_for(lambda: WATCHED <= op.relisted(), "the operator's watches to get 410 and re-list",
                         timeout=120)
        check_after_blind_spell(cluster, kubectl, op, ns, spell, back, f"kube-apiserver and etcd stopped {OUTAGE_S} s",
                                "then 10 CRs and 5 driver pods deleted before the operator's link is back")
    finally:
        op.stop()
        link.close()
        kubectl.ok("delete", "namespace", ns, "--wait=false")


def test_watch_cut_past_etcd_compaction_gets_410_and_relists(tmp_path_factory: pytest.TempPathFactory,
                                                            tmp_path: Path) -> None:
    """The operator's connections are cut for longer than etcd keeps history: this apiserver serves
    watches from etcd (no watch cache) and compacts every 10 s, so the operator's watches, resuming
    from the revision they last saw, get 410 Gone and must re-list."""
    cluster = FaultCluster(tmp_path_factory.mktemp("faults410") / "run", PORT_BASE + 20,
                           env={"LAKEJOB_ETCD_COMPACTION_INTERVAL": "10s", "LAKEJOB_WATCH_CACHE": "0"})
    kubectl = cluster.up()
    ns = namespace(kubectl, "cut")
    link = Link(cluster.apiserver)
    op = FaultOperator(link.kubeconfig(cluster.kubeconfig, tmp_path / "kubeconfig"), ns, tmp_path / "op.log")
    try:
        op.start()
        kubectl.wait_for(lambda: "lakejob operator started" in op.text(), "the operator to start")
        spell = mixed_burst(cluster, ns)
        wait_mid_run(kubectl, ns, spell)
        link.cut()
        cut = time.monotonic()
        delete_while_blind(kubectl, ns, spell)
        churn = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"churn-{i}", "labels": {"churn": "1"}}}
                 for i in range(200)]
        create_many(kubectl, ns, churn)  # etcd's revision moves on, past what the operator saw
        kubectl.run("delete", "configmaps", "-n", ns, "-l", "churn=1", "--wait=false")
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut)))  # four compactions
        link.restore()
        back = time.monotonic()
        kubectl.wait_for(lambda: WATCHED <= op.relisted(), "the operator's watches to get 410 and re-list",
                         timeout=120)
        check_after_blind_spell(cluster, kubectl, op, ns, spell, back,
                                f"watch cut {CUT_S} s, past etcd's compaction (410)",
                                "10 CRs and 5 driver pods deleted meanwhile; compaction every 10 s")
    finally:
        op.stop()
        link.close()
        cluster.down()
