"""lakejob: Spark, Flink and DAG jobs as Kubernetes resources (the operator, its gateway, lakejob-oss).

`version()` is what `lakejob --version` prints and lakejob_build_info reports.
"""
from __future__ import annotations

from importlib import metadata


def version() -> str:
    """The installed distribution's version (pyproject's), "unknown" when run from a bare source tree."""
    try:
        return metadata.version("lakejob")
    except metadata.PackageNotFoundError:
        return "unknown"
