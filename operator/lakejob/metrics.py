"""Prometheus metrics of the operator (names and labels: docs/metrics.md).

controllers.base records transitions, reconcile and run durations, first-pod latencies and the
passes in flight as they happen; the per-state object counts and the queue depths are computed at
scrape time from the reconcilers' in-memory state, so they never drift from what the operator
sees. lakejob.operator serves them on LAKEJOB_METRICS_PORT.
"""
from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lakejob import version

BUILD = Info("lakejob_build", "The operator's version (the value is always 1).")
BUILD.info({"version": version()})

SUBMISSIONS = Counter("lakejob_submissions_total", "Custom resources the operator started working on.", ["kind"])
FAILURES = Counter("lakejob_failures_total", "Transitions into a failed terminal state.", ["kind", "reason"])
RETRIES = Counter("lakejob_retries_total", "Transitions into a retrying state (a new attempt is coming).", ["kind"])
TRANSITIONS = Counter("lakejob_transitions_total", "State transitions.", ["kind", "state"])
RECONCILE_ERRORS = Counter(
    "lakejob_reconcile_errors_total", "Reconcile passes that ended in an error, by what kind of error.",
    ["kind", "error"])
RECONCILE_SECONDS = Histogram(
    "lakejob_reconcile_duration_seconds", "Time of one reconcile pass (observe, decide, apply).", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
FIRST_POD_SECONDS = Histogram(
    "lakejob_first_pod_latency_seconds",
    "From the custom resource's creationTimestamp to the operator's create of its first pod.", ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
RUN_SECONDS = Histogram(
    "lakejob_run_duration_seconds", "From a run's start to its terminal state (the start per kind: docs/metrics.md).",
    ["kind"], buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200))
IN_FLIGHT = Gauge(
    "lakejob_reconciles_in_flight",
    "Reconcile passes running now (at most LAKEJOB_MAX_CONCURRENT_RECONCILES per kind).", ["kind"])
QUEUE_DEPTH = Gauge(
    "lakejob_reconcile_queue_depth",
    "Custom resources with a pass queued that has not started (waiting for a slot or for their own pass to end).",
    ["kind"])


class _StateCollector(Collector):
    """lakejob_objects{kind,state}: counted at scrape time from the operator's view of the CRs."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], Iterable[str | None]]] = {}  # kind → states of its CRs

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("lakejob_objects", "Custom resources by kind and state.", labels=["kind", "state"])
        for kind, states in sorted(self.sources.items()):
            counts = Tally((state or "none") for state in states())
            for state, n in sorted(counts.items()):
                family.add_metric([kind, state], n)
        yield family


STATES = _StateCollector()
REGISTRY.register(STATES)
