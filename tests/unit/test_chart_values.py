"""charts/lakejob/values.schema.json accepts values.yaml and rejects bad values with a clear path."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "lakejob"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_default_values_are_valid() -> None:
    assert errors(VALUES) == []


def test_every_default_key_is_in_the_schema() -> None:
    """The schema forbids unknown keys, so a key in values.yaml it does not list would fail above;
    this names the other direction: the schema documents nothing values.yaml lacks at top level."""
    assert set(SCHEMA["properties"]) == set(VALUES)


def _set(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(VALUES)
    node = values
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return values


@pytest.mark.parametrize(("path", "value", "where"), [
    ("replicas", 0, "replicas"),
    ("replicas", "two", "replicas"),
    ("leaderElection.retryPeriodSeconds", 0, "leaderElection.retryPeriodSeconds"),
    ("leaderElection.leaseName", "Lake_Job", "leaderElection.leaseName"),
    ("watchNamespaces", ["Bad_Name"], "watchNamespaces.0"),
    ("spark.driverRBAC", "per-pod", "spark.driverRBAC"),
    ("spark.defaultVersion", "latest", "spark.defaultVersion"),
    ("spark.imageTemplate", "apache/spark:3.5", "spark.imageTemplate"),
    ("notifications.topics", {"ops": "ftp://x"}, "notifications.topics.ops"),
    ("metrics.port", 70000, "metrics.port"),
    ("logFormat", "xml", "logFormat"),
    ("logLevel", "trace", "logLevel"),
    ("image.pullPolicy", "Sometimes", "image.pullPolicy"),
    ("timeouts.schedulingSeconds", 0, "timeouts.schedulingSeconds"),
    ("extraEnv", [{"name": "PATH", "value": "/x"}], "extraEnv.0.name"),
    ("dag.uploadGraceSeconds", 0, "dag.uploadGraceSeconds"),
    ("stores.oss.addressingStyle", "vhost", "stores.oss.addressingStyle"),
    ("stores.oss.endpoint", "https://oss.example.com/bucket/key", "stores.oss.endpoint"),
    ("stores.oss.bucket", "b", "stores.oss"),
    ("stores.s3.endpoint", "https://obs.example.com/bucket", "stores.s3.endpoint"),
    ("stores.packagesUrl", "https://example.com/pkgs", "stores.packagesUrl"),
    ("stores.secretName", "Store_Keys", "stores.secretName"),
    ("spark.requestCores", "a lot", "spark.requestCores"),
    ("dag.priorityClasses.preemptionPolicy", "Always", "dag.priorityClasses.preemptionPolicy"),
    ("imagePullSecrets", ["regcred"], "imagePullSecrets.0"),
    ("serviceAccount.name", "Operator_SA", "serviceAccount.name"),
    ("serviceAccount.token", True, "serviceAccount"),
    ("priorityClassName", "High Priority", "priorityClassName"),
    ("topologySpreadConstraints", {"maxSkew": 1}, "topologySpreadConstraints"),
    ("unknownKey", 1, ""),
])
def test_bad_values_are_rejected_naming_the_key(path: str, value: Any, where: str) -> None:
    found = errors(_set(path, value))
    assert found, f"{path}={value!r} was accepted"
    assert any(e.startswith(f"{where}:") for e in found), found


def test_global_takes_whatever_a_parent_chart_shares() -> None:
    assert errors(_set("global", {"imageRegistry": "registry.example", "labels": {"team": "data"}})) == []


def test_every_setting_the_chart_passes_is_one_the_operator_reads() -> None:
    import re

    from lakejob.settings import Settings

    template = (CHART / "templates" / "deployment.yaml").read_text()
    passed = set(re.findall(r"LAKEJOB_[A-Z0-9_]+", template))
    read = set(Settings.env_names().values())
    assert passed and passed <= read, f"the chart sets settings nobody reads: {sorted(passed - read)}"


def test_dag_defaults_agree_with_the_operator_settings() -> None:
    """The chart passes its values as LAKEJOB_* settings; where it passes nothing special the
    operator's own defaults must say the same, so a bare `lakejob run` behaves like the chart."""
    from lakejob.settings import RELEASED_IMAGE, Settings

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    defaults = Settings()
    # fetch/upload run the operator's own image (it has lakejob-oss): "" in both means that
    # (lakejob.own_image); outside a pod the released image, the chart's default one.
    assert VALUES["stores"]["fetcherImage"] == defaults.fetcher_image == ""
    assert RELEASED_IMAGE == f"{VALUES['image']['repository']}:{chart['appVersion']}"
    assert VALUES["dag"]["uploadGraceSeconds"] == defaults.dag_upload_grace_s
    stores = VALUES["stores"]
    assert stores["oss"] == {"endpoint": defaults.oss_endpoint, "addressingStyle": defaults.oss_addressing_style,
                             "region": defaults.oss_region}
    assert stores["s3"] == {"endpoint": defaults.s3_endpoint, "addressingStyle": defaults.s3_addressing_style,
                            "region": defaults.s3_region}
    assert (stores["packagesUrl"], stores["secretName"]) == (defaults.packages_url, defaults.store_secret)
    assert VALUES["spark"]["requestCores"] == defaults.spark_request_cores
