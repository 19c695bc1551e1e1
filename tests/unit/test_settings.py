"""lakejob.settings: the LAKEJOB_* variables, their errors, and the reference generated from them."""
from __future__ import annotations

from pathlib import Path

import pytest

from lakejob import cli
from lakejob.settings import PodPolicy, Settings, markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


@pytest.fixture(autouse=True)
def no_lakejob_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the variables it sets itself."""
    for variable in Settings.env_names().values():
        monkeypatch.delenv(variable, raising=False)


def test_every_setting_has_a_description_and_a_lakejob_variable() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description and len(info.description) > 20, f"{name} has no description"
        assert Settings.env_names()[name].startswith("LAKEJOB_")
    assert len(set(Settings.env_names().values())) == len(Settings.model_fields)


def test_the_variables_keep_their_names() -> None:
    names = Settings.env_names()
    assert names["scheduling_timeout_s"] == "LAKEJOB_SCHEDULING_TIMEOUT_SECONDS"
    assert names["pod_policy"] == "LAKEJOB_POD_POLICY_ALLOW"
    assert names["max_concurrent_reconciles"] == "LAKEJOB_MAX_CONCURRENT_RECONCILES"
    assert names["spark_images"] == "LAKEJOB_SPARK_IMAGES"


def test_each_default_spelled_as_its_variable_reads_back_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    for name, variable in Settings.env_names().items():
        monkeypatch.setenv(variable, defaults.env_text(name))
    assert Settings.from_env() == defaults


def test_values_spelled_as_variables_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    given = Settings(spark_images={"3.5": "reg/spark:3.5", "3.5.7": "reg/spark:357"},
                     dag_priority_classes=((0, "low"), (600, "high")), notify_allowed_hosts=("a.example", "*.b"),
                     pod_policy=PodPolicy.parse("privileged,team-a/hostPath,team-a/hostPID"),
                     workload_tolerations=({"key": "pool", "operator": "Exists"},), driver_logs=False,
                     driver_rbac="per-job", retry_backoff_s=2.5, max_concurrent_reconciles=3)
    for name, variable in Settings.env_names().items():
        monkeypatch.setenv(variable, given.env_text(name))
    assert Settings.from_env() == given


def test_variables_fill_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_SPARK_IMAGES", " 3.5=apache/spark:3.5.7 , 3.4=x/spark:3.4,")
    monkeypatch.setenv("LAKEJOB_SCHEDULING_TIMEOUT_SECONDS", "60")
    monkeypatch.setenv("LAKEJOB_DRIVER_LOGS", "false")
    monkeypatch.setenv("LAKEJOB_DAG_PRIORITY_CLASSES", "500=high,0=low")
    s = Settings.from_env()
    assert s.spark_images == {"3.5": "apache/spark:3.5.7", "3.4": "x/spark:3.4"}
    assert (s.scheduling_timeout_s, s.driver_logs) == (60, False)
    assert s.dag_priority_classes == ((0, "low"), (500, "high"))
    assert s.max_concurrent_reconciles == 64  # unset: the default


def test_settings_built_in_code_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_MAX_CONCURRENT_RECONCILES", "0")
    assert Settings().max_concurrent_reconciles == 64
    assert Settings(max_concurrent_reconciles=2).max_concurrent_reconciles == 2


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("LAKEJOB_MAX_CONCURRENT_RECONCILES", "0", "LAKEJOB_MAX_CONCURRENT_RECONCILES: must be ≥ 1, got 0"),
    ("LAKEJOB_SCHEDULING_TIMEOUT_SECONDS", "3h", "LAKEJOB_SCHEDULING_TIMEOUT_SECONDS: must be an integer, got 3h"),
    ("LAKEJOB_RETRY_BACKOFF_SECONDS", "0", "LAKEJOB_RETRY_BACKOFF_SECONDS: must be > 0, got 0"),
    ("LAKEJOB_METRICS_PORT", "70000", "LAKEJOB_METRICS_PORT: must be ≤ 65535, got 70000"),
    ("LAKEJOB_DRIVER_LOGS", "maybe", "LAKEJOB_DRIVER_LOGS: must be true or false, got maybe"),
    ("LAKEJOB_DRIVER_RBAC", "per-pod", "LAKEJOB_DRIVER_RBAC: must be one of 'per-job' or 'per-namespace', got per-pod"),
    ("LAKEJOB_SPARK_IMAGES", "3.5", "LAKEJOB_SPARK_IMAGES: expected KEY=VALUE,…, got '3.5'"),
    ("LAKEJOB_DAG_PRIORITY_CLASSES", "100=low", "LAKEJOB_DAG_PRIORITY_CLASSES: the first band must start at priority 0"),
    ("LAKEJOB_DAG_PRIORITY_CLASSES", "low=x", "LAKEJOB_DAG_PRIORITY_CLASSES: expected LOWEST_PRIORITY=CLASS,…"),
    ("LAKEJOB_DAG_UPLOAD_GRACE_SECONDS", "", "LAKEJOB_DAG_UPLOAD_GRACE_SECONDS: must be an integer, got ''"),
])
def test_a_bad_variable_is_named_with_its_rule(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                               message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as info:
        Settings.from_env()
    assert str(info.value).startswith(message)


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_SPARK_UID", "-1")
    monkeypatch.setenv("LAKEJOB_NOTIFY_RETRIES", "many")
    with pytest.raises(ValueError) as info:
        Settings.from_env()
    assert str(info.value).splitlines() == ["LAKEJOB_SPARK_UID: must be ≥ 0, got -1",
                                            "LAKEJOB_NOTIFY_RETRIES: must be an integer, got many"]


def test_docs_settings_md_is_generated_from_the_fields() -> None:
    assert DOCS.read_text() == markdown(), "docs/settings.md drifted: run `make docs`"
    for variable in Settings.env_names().values():
        assert f"| `{variable}` |" in DOCS.read_text()


def test_lakejob_settings_prints_the_values_in_effect(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAKEJOB_SPARK_IMAGES", "3.5=a/b:1")
    assert cli.main(["settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "LAKEJOB_SPARK_IMAGES=3.5=a/b:1" in lines and "LAKEJOB_SPARK_UID=185" in lines
    assert len(lines) == len(Settings.model_fields)
    monkeypatch.setenv("LAKEJOB_SPARK_UID", "root")
    assert cli.main(["settings"]) == 2
    assert "LAKEJOB_SPARK_UID: must be an integer, got root" in capsys.readouterr().err


def test_lakejob_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"lakejob {metadata.version('lakejob')}\n"
