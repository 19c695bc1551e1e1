"""Operator-wide settings: one typed object, built once at start from LAKEJOB_* env vars and flags.

`lakejob.cli` builds it (`Settings.from_env`, then `lakejob run`'s flags over it) and hands it to the
controllers (lakejob.operator keeps the one instance); nothing deeper reads the environment. Every
knob has an env var so the Helm chart and kustomize base can set it without rewriting the command
line. The fields' descriptions are the reference: docs/settings.md is generated from them
(`lakejob settings --markdown`; a unit test fails when it drifts).

A bad value stops the start with the variable's name and the rule it broke
("LAKEJOB_MAX_CONCURRENT_RECONCILES: must be ≥ 1, got 0"), never half-applied.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from lakejob.oss.client import AddressingStyle

ENV_PREFIX = "LAKEJOB_"


def _parse_map(text: str) -> dict[str, str]:
    """"3.5=apache/spark:3.5.7,3.4=..." → dict; empty entries ignored."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected KEY=VALUE,…, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _map_text(value: Mapping[Any, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in value.items())


# The operator's image as released (the chart's image.repository:appVersion): what an operator
# outside a pod runs its fetch/upload containers from when LAKEJOB_FETCHER_IMAGE is empty.
RELEASED_IMAGE = "ghcr.io/lakejob/operator:0.1.0"

# What a user's pod customisation may ask for only where the operator's policy allows it (lakejob.policy).
POD_POLICY_FEATURES = ("serviceAccountName", "hostPath", "hostNetwork", "hostPID", "hostIPC", "privileged",
                       "capabilities")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class PodPolicy:
    """LAKEJOB_POD_POLICY_ALLOW: the POD_POLICY_FEATURES allowed in every namespace, and per namespace."""

    everywhere: frozenset[str] = frozenset()
    namespaces: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, feature: str, namespace: str) -> bool:
        return feature in self.everywhere or feature in self.namespaces.get(namespace, frozenset())

    @classmethod
    def parse(cls, text: str) -> PodPolicy:
        """"serviceAccountName,team-a/hostPath" → serviceAccountName everywhere, hostPath in team-a."""
        everywhere: set[str] = set()
        namespaces: dict[str, set[str]] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            namespace, _, feature = item.rpartition("/")
            if feature not in POD_POLICY_FEATURES:
                raise ValueError(f"{item!r}: {feature!r} is not one of {', '.join(POD_POLICY_FEATURES)}")
            if not namespace:
                everywhere.add(feature)
            elif _NAMESPACE.match(namespace) and len(namespace) <= 63:
                namespaces.setdefault(namespace, set()).add(feature)
            else:
                raise ValueError(f"{item!r}: {namespace!r} is not a namespace name")
        return cls(frozenset(everywhere), {ns: frozenset(f) for ns, f in namespaces.items()})

    def text(self) -> str:
        """The LAKEJOB_POD_POLICY_ALLOW text that parses back to this policy."""
        return ",".join([*sorted(self.everywhere), *(f"{ns}/{f}" for ns, features in sorted(self.namespaces.items())
                                                     for f in sorted(features))])


class Settings(BaseModel):
    """Everything the operator can be told, each field with its LAKEJOB_* variable.

    `Settings()` is the defaults (tests, and the operator module before `lakejob run` configures
    it); `Settings.from_env()` reads the environment. Maps are KEY=VALUE,… and lists comma-separated,
    as the chart writes them."""

    # A plain model, not pydantic-settings' BaseSettings: the one environment source `from_env` reads
    # is a few lines, and that package cost the operator 1.1 MiB resident for it. Defaults are
    # validated as the environment's values are (a default spelled as its variable would be).
    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, extra="ignore",
                              validate_default=True)

    # Spark
    default_spark_version: str = Field(
        "3.5.7", description="Spark version of a job whose spec names none (DLI's `spark_version`).")
    spark_image_template: str = Field(
        "apache/spark:{version}",
        description="Image of a Spark version LAKEJOB_SPARK_IMAGES does not map, `{version}` standing for it; "
                    "empty: only the map's versions run, another is refused.")
    spark_images: dict[str, str] = Field(
        default_factory=dict,
        description="Spark version → image, `3.5=reg/spark:3.5,3.5.7=…`; the full version is looked up first, then "
                    "MAJOR.MINOR, then the template.")
    spark_uid: int = Field(185, ge=0, description="User the Spark pods run as (185: the apache/spark images').")
    spark_request_cores: str = Field(
        "", description="CPU request of Spark pods whose conf sets no spark.kubernetes.{driver,executor}.request.cores "
                        "(e.g. `100m` where DLI's whole-core sizes would not fit); empty: their whole cores, as Spark "
                        "does.")
    scheduling_timeout_s: int = Field(
        3 * 3600, ge=1, validation_alias=ENV_PREFIX + "SCHEDULING_TIMEOUT_SECONDS",
        description="A job whose pods get no resources for this long fails (DLI's ~3 hours); a spec's "
                    "schedulingTimeout overrides it.")
    default_max_retry_times: int = Field(
        20, ge=0, description="Retries of a Spark job with auto_recovery whose spec sets no max_retry_times "
                              "(DLI's default).")
    retry_backoff_s: float = Field(
        10.0, gt=0, validation_alias=ENV_PREFIX + "RETRY_BACKOFF_SECONDS",
        description="Delay before a Spark job's first retry; doubles per attempt.")
    retry_backoff_max_s: float = Field(
        300.0, gt=0, validation_alias=ENV_PREFIX + "RETRY_BACKOFF_MAX_SECONDS",
        description="Longest delay between a Spark job's retries.")
    driver_logs: bool = Field(
        True, description="Put the driver's last log lines into the status of a failed Spark job (reads the pod log "
                          "through the API server: needs a reachable kubelet).")
    driver_log_timeout_s: float = Field(
        3.0, gt=0, validation_alias=ENV_PREFIX + "DRIVER_LOG_TIMEOUT_SECONDS",
        description="How long to wait for those log lines.")
    driver_rbac: Literal["per-job", "per-namespace"] = Field(
        "per-namespace",
        description="The Spark driver's ServiceAccount/Role/RoleBinding: `per-namespace`, one shared set per "
                    "namespace (three writes fewer per job, outlives jobs, as in the other Spark operators), or "
                    "`per-job`, a set owned by each job and deleted with it. Neither confines a driver to its own "
                    "executors (a Role cannot name them).")
    # Notifications
    notification_topics: dict[str, str] = Field(
        default_factory=dict,
        description="Topic name → URL, `alerts=https://hooks.example.com/x,…`: where FlinkJarJob's smn_topic and a "
                    "DagJob's topic names are delivered. These URLs are the operator's own, always allowed.")
    notify_retries: int = Field(3, ge=0, description="Retries of a notification the endpoint did not accept.")
    notify_timeout_s: float = Field(
        5.0, gt=0, validation_alias=ENV_PREFIX + "NOTIFY_TIMEOUT_SECONDS",
        description="Timeout of one notification request.")
    notify_allowed_hosts: tuple[str, ...] = Field(
        (), description="Hosts a DagJob's own Topic.Endpoint may name, comma-separated (`hooks.example.com`, "
                        "`*.example.com`); any other is refused, since the operator would POST from inside the "
                        "cluster wherever a user points it.")
    # SparkSession
    spark_rest_url_template: str = Field(
        "http://{service}.{namespace}.svc:4040/api/v1/applications/{appId}/jobs",
        description="Where the operator reads a session's idle/busy (the driver's Spark REST jobs list): "
                    "`{service}` (the driver's Service), `{namespace}`, `{name}` (the CR), `{appId}`.")
    session_poll_interval_s: float = Field(
        5.0, gt=0, validation_alias=ENV_PREFIX + "SESSION_POLL_INTERVAL_SECONDS",
        description="REST poll period of a live session.")
    session_poll_timeout_s: float = Field(
        2.0, gt=0, validation_alias=ENV_PREFIX + "SESSION_POLL_TIMEOUT_SECONDS",
        description="Timeout of one session poll.")
    session_poll_concurrency: int = Field(32, ge=1, description="Session polls in flight at once, operator-wide.")
    session_poll_backoff_max_s: float = Field(
        60.0, gt=0, validation_alias=ENV_PREFIX + "SESSION_POLL_BACKOFF_MAX_SECONDS",
        description="An unreachable driver is polled ever less often, down to once per this.")
    session_idle_timeout_s: int = Field(
        3600, ge=0, validation_alias=ENV_PREFIX + "SESSION_IDLE_TIMEOUT_SECONDS",
        description="A session idle this long is ended, unless its spec says otherwise (heartbeatTimeoutInSecond's "
                    "default, Livy's 1 h session timeout); 0: never.")
    # FlinkJarJob
    default_flink_version: str = Field(
        "2.3.0", description="Flink version of a job whose spec names none (DLI's `flink_version`).")
    flink_image_template: str = Field(
        "flink:{version}-java17",
        description="Image of a Flink version LAKEJOB_FLINK_IMAGES does not map, `{version}` standing for it.")
    flink_images: dict[str, str] = Field(
        default_factory=dict,
        description="Flink version → image, `2.3=reg/flink:2.3,…`; the full version first, then MAJOR.MINOR.")
    flink_uid: int = Field(9999, ge=0, description="User the Flink pods run as (9999: the official flink images').")
    flink_cu_millicpu: int = Field(1000, ge=1, description="CPU of one CU, millicores (DLI: 1 vCPU).")
    flink_cu_memory_mib: int = Field(4096, ge=1, description="Memory of one CU, MiB (DLI: 4 GiB).")
    flink_rest_url_template: str = Field(
        "http://{service}.{namespace}.svc:8081",
        description="Where the operator reads a job's state, the JobManager's REST API: `{service}` (the JobManager "
                    "Service), `{namespace}`, `{name}` (the CR).")
    flink_rest_timeout_s: float = Field(
        2.0, gt=0, validation_alias=ENV_PREFIX + "FLINK_REST_TIMEOUT_SECONDS",
        description="Timeout of one JobManager REST request.")
    flink_poll_interval_s: float = Field(
        5.0, gt=0, validation_alias=ENV_PREFIX + "FLINK_POLL_INTERVAL_SECONDS",
        description="REST poll period of a running job.")
    flink_restart_delay_s: float = Field(
        10.0, ge=0, validation_alias=ENV_PREFIX + "FLINK_RESTART_DELAY_SECONDS",
        description="restart_when_exception: how long to wait before redeploying a failed job.")
    flink_checkpoints_retained: int = Field(
        3, ge=1, description="Flink's state.checkpoints.num-retained, so that the checkpoint polled last is still "
                             "there when a restart resumes from it.")
    # Leader election (lakejob run --leader-elect; lakejob.leader)
    leader_lease_name: str = Field(
        "lakejob", description="Name of the coordination.k8s.io Lease the replicas compete for "
                               "(`--leader-elect-lease` overrides it).")
    leader_lease_duration_s: float = Field(
        15.0, gt=0, validation_alias=ENV_PREFIX + "LEADER_LEASE_DURATION_SECONDS",
        description="A standby takes the Lease over once it has seen it unchanged this long.")
    leader_renew_deadline_s: float = Field(
        10.0, gt=0, validation_alias=ENV_PREFIX + "LEADER_RENEW_DEADLINE_SECONDS",
        description="The leader exits when it has not renewed within this (shorter than the duration: it stops "
                    "before anyone else starts).")
    leader_retry_period_s: float = Field(
        2.0, gt=0, validation_alias=ENV_PREFIX + "LEADER_RETRY_PERIOD_SECONDS",
        description="Period of the renewals and of a standby's attempts.")
    # Observability
    metrics_port: int = Field(9090, ge=0, le=65535, description="Port of the Prometheus metrics; 0: none served.")
    log_format: Literal["text", "json"] = Field(
        "text", description="`text` (one line per record) or `json` (one JSON object per line: time, level, logger, "
                            "message, and kind, namespace, name, from, to, reason where a record is about an object); "
                            "kopf's own records too. `lakejob run --log-format` overrides it.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged: at `info`, one line per state change and what goes wrong; "
                            "`debug` adds kopf's per-event handler lines. `lakejob run --log-level` overrides it.")
    # Object stores and the package store (render.packages)
    fetcher_image: str = Field(
        "",
        description="Image of the `fetch` init containers (Spark drivers, Flink pods, DagJob tasks) and of a DagJob "
                    "task's `upload` sidecar (`lakejob-oss`). Empty: the operator's own, read from its pod at "
                    "start-up, so whatever set the operator's image (Helm, a kustomize `images:` override) sets "
                    "this too; outside a pod, the released image.")
    packages_url: str = Field(
        "", description="Where DLI package names (`group/name`, `name`) live: `s3://BUCKET/PREFIX/` (`obs://` and "
                        "`s3a://` mean the same store) or `oss://…`; empty: a package name is refused, naming this "
                        "setting.")
    oss_endpoint: str = Field(
        "", description="Where the fetch and upload containers reach OSS (`oss://` paths); empty: they fail, saying so.")
    oss_addressing_style: AddressingStyle = Field(
        "virtual", description="OSS bucket addressing: `virtual` (what Alibaba OSS requires), `path`, `auto`.")
    oss_region: str = Field("", description="OSS region for request signing.")
    s3_endpoint: str = Field(
        "", description="Where the fetch and upload containers reach an S3-API store (`obs://`, `s3a://`, `s3://`); "
                        "empty: they fail, saying so.")
    s3_addressing_style: AddressingStyle = Field(
        "virtual", description="S3 bucket addressing: `virtual`, `path` (most local S3 servers), `auto`.")
    s3_region: str = Field("", description="S3 region for request signing.")
    blob_endpoint: str = Field(
        "", description="The Azure Blob service URL (`wasb(s)://`, `abfs(s)://` paths), `{account}` standing for the "
                        "path's storage account; empty: `https://{account}.blob.core.windows.net`.")
    store_secret: str = Field(
        "", description="A Secret in each job's namespace with the stores' keys (S3_ACCESS_KEY_ID, "
                        "S3_ACCESS_KEY_SECRET, OSS_ACCESS_KEY_ID, …, BLOB_ACCOUNT_KEY or BLOB_SAS_TOKEN), read by the "
                        "fetchers only; empty: anonymous requests.")
    # DagJob: images, node selection, PriorityClasses, queueing and BatchCompute's quotas
    dag_upload_grace_s: int = Field(
        120, ge=0, validation_alias=ENV_PREFIX + "DAG_UPLOAD_GRACE_SECONDS",
        description="A command task pod's terminationGracePeriodSeconds: the time its uploads get.")
    dag_default_image: str = Field(
        "python:3.12-slim", description="Image that runs a task's CommandLine when no ImageId maps to an image.")
    dag_images: dict[str, str] = Field(
        default_factory=dict, description="BatchCompute ImageId → container image, `img-ubuntu=ubuntu:24.04,…`.")
    dag_uid: int = Field(1000, ge=0, description="Non-root user command task pods run as.")
    dag_cluster_label: str = Field(
        "", description="Node label holding a ClusterId; empty: a ClusterId selects no nodes.")
    dag_instance_type_label: str = Field(
        "", description="Node label AutoCluster.InstanceType selects on; empty: not used.")
    dag_priority_classes: tuple[tuple[int, str], ...] = Field(
        ((0, "lakejob-priority-low"), (250, "lakejob-priority-medium"), (500, "lakejob-priority-high"),
         (750, "lakejob-priority-urgent")),
        description="Priority 0..1000 → PriorityClass, `LOWEST_PRIORITY=CLASS,…`, the first band from 0 (the chart "
                    "installs the classes); empty: pods get no priorityClassName.")
    dag_max_running: int = Field(
        100, ge=1, description="DagJobs Running at once, operator-wide; the rest wait, higher Priority first.")
    dag_max_job_task_count: int = Field(16, ge=1, description="Tasks per DagJob (QuotaExhausted.MaxJobTaskCount).")
    dag_max_task_instance_count: int = Field(
        1000, ge=1, description="Instances per task (QuotaExhausted.MaxTaskInstanceCount).")
    dag_max_instance_timeout: int = Field(
        7 * 86400, ge=1, description="Longest instance Timeout, seconds (QuotaExhausted.MaxInstanceTimeout).")
    dag_max_job_count: int = Field(10000, ge=1, description="DagJobs per namespace (QuotaExhausted.MaxJobCount).")
    # Queues (Kueue, docs/queues.md)
    queueing: Literal["auto", "required", "off"] = Field(
        "auto",
        description="Jobs naming a queue go through Kueue: `auto`, when Kueue is installed (else they run unqueued, "
                    "which the operator logs once); `required`, always (without Kueue they wait, Admitted=False "
                    "reason KueueNotInstalled); `off`, never (queue names are pod labels only).")
    queue_map: dict[str, str] = Field(
        default_factory=dict,
        description="Queue name → LocalQueue, `dli_queue=localqueue,…`, for names the rule does not fit (the name "
                    "trimmed, lower-cased, `_` → `-`) or several queues sharing one LocalQueue.")
    # Pods
    pod_policy: PodPolicy = Field(
        default_factory=PodPolicy, validation_alias=ENV_PREFIX + "POD_POLICY_ALLOW",
        description="Pod customisation allowed beyond the default (lakejob.policy: nothing by default), "
                    f"comma-separated, each everywhere or `NAMESPACE/` only: {', '.join(POD_POLICY_FEATURES)}.")
    workload_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node selector every driver, executor, JobManager, TaskManager and task pod gets under its "
                    "spec's own, `pool=batch,…`.")
    workload_tolerations: tuple[dict[str, Any], ...] = Field(
        (), description="Tolerations those pods get under their spec's own: a JSON list of Kubernetes tolerations.")
    # The reconcile loop (controllers.base)
    max_concurrent_reconciles: int = Field(
        64, ge=1, description="Reconcile passes in flight at once per kind; a burst is worked through in order, not "
                              "all at once.")
    resync_interval_s: float = Field(
        300.0, gt=0, validation_alias=ENV_PREFIX + "RESYNC_INTERVAL_SECONDS",
        description="Every live CR is reconciled once per interval whatever happens (spread over it): the safety net "
                    "against a lost watch event. Also the longest a decision's own timer is set for.")
    error_backoff_s: float = Field(
        1.0, gt=0, validation_alias=ENV_PREFIX + "ERROR_BACKOFF_SECONDS",
        description="A pass that ends in an error is tried again after this, doubling per failure in a row "
                    "(with jitter), so a refused request is never a hot loop.")
    error_backoff_max_s: float = Field(
        300.0, gt=0, validation_alias=ENV_PREFIX + "ERROR_BACKOFF_MAX_SECONDS",
        description="Longest delay before a failed pass is tried again.")

    # ------------------------------------------------------------------ parsing the env's text

    @field_validator("spark_images", "flink_images", "dag_images", "notification_topics", "workload_node_selector",
                     "queue_map", mode="before")
    @classmethod
    def _map(cls, value: Any) -> Any:
        return _parse_map(value) if isinstance(value, str) else value

    @field_validator("notify_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        hosts = value.split(",") if isinstance(value, str) else value
        return tuple(h.strip().lower() for h in hosts if h.strip())

    @field_validator("dag_priority_classes", mode="before")
    @classmethod
    def _bands(cls, value: Any) -> Any:
        """"0=low,500=high" → ((0, "low"), (500, "high")): bands by their lowest Priority, sorted."""
        if isinstance(value, str):
            try:
                value = sorted((int(lo), name) for lo, name in _parse_map(value).items())
            except ValueError as e:
                raise ValueError(f"expected LOWEST_PRIORITY=CLASS,…: {e}") from None
        bands = sorted(value)
        if bands and bands[0][0] != 0:
            raise ValueError("the first band must start at priority 0")
        return tuple(bands)

    @field_validator("pod_policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        return PodPolicy.parse(value) if isinstance(value, str) else value

    @field_validator("workload_tolerations", mode="before")
    @classmethod
    def _tolerations(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e}") from None
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise ValueError("expected a JSON list of tolerations (objects)")
        return tuple(value)

    @field_validator("packages_url")
    @classmethod
    def _packages_url(cls, url: str) -> str:
        url = url.strip()
        scheme, sep, rest = url.partition("://")
        if url and (not sep or scheme not in ("s3", "s3a", "obs", "oss") or not rest.strip("/")):
            raise ValueError("expected s3://BUCKET/PREFIX/ (or obs://, s3a://, oss://)")
        return url

    @field_validator("blob_endpoint")
    @classmethod
    def _blob_endpoint(cls, url: str) -> str:
        url = url.strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("expected https://{account}.blob.core.windows.net or, for an emulator, "
                             "http://HOST:PORT/{account}")
        return url

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    # ------------------------------------------------------------------ building

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The LAKEJOB_* variables (of `environ`, by default the process's) over the defaults, their
        names matched in any case; a value is taken as its variable spells it (maps KEY=VALUE,…,
        lists comma-separated: the validators parse them, never as JSON). ValueError naming every
        bad variable and its rule, one per line."""
        given = {name.lower(): value for name, value in (os.environ if environ is None else environ).items()}
        values = {field: given[variable.lower()] for field, variable in cls.env_names().items()
                  if variable.lower() in given}
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise ValueError("\n".join(_describe(error) for error in e.errors())) from None

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name → its environment variable."""
        return {name: info.validation_alias if isinstance(info.validation_alias, str) else ENV_PREFIX + name.upper()
                for name, info in cls.model_fields.items()}

    def env_text(self, name: str) -> str:
        """Field `name`'s value as its variable spells it (what from_env parses back to the value)."""
        value = getattr(self, name)
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, PodPolicy):
            return value.text()
        if isinstance(value, Mapping):
            return _map_text(value)
        if name == "workload_tolerations":
            return json.dumps(list(value)) if value else ""
        if name == "dag_priority_classes":
            return _map_text(dict(value))
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)

    # ------------------------------------------------------------------ reading

    def spark_image(self, version: str) -> str | None:
        """The image of `version`, None when neither the map nor a template gives one."""
        major_minor = ".".join(version.split(".")[:2])
        return self.spark_images.get(version) or self.spark_images.get(major_minor) or \
            (self.spark_image_template.format(version=version) if self.spark_image_template else None)


_RULES = {
    "greater_than_equal": "must be ≥ {ge}", "greater_than": "must be > {gt}", "less_than_equal": "must be ≤ {le}",
    "literal_error": "must be one of {expected}", "int_parsing": "must be an integer",
    "int_from_float": "must be an integer", "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}


def _describe(error: ErrorDetails) -> str:
    """"LAKEJOB_X: the rule, got the value" for one pydantic error of Settings."""
    loc = [str(part) for part in error["loc"]]
    names = Settings.env_names()
    variable = names.get(loc[0], loc[0]) if loc else "settings"
    where = variable + "".join(f"[{part}]" for part in loc[1:])
    if error["type"] == "value_error":  # our own validators' messages say what they got
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    rule = _RULES.get(error["type"])
    # A float field's bound comes back as a float: "> 0", not "> 0.0".
    ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in error.get("ctx", {}).items()}
    text = rule.format(**ctx) if rule else error["msg"]
    value = error["input"]
    return f"{where}: {text}, got {value if isinstance(value, str) and value.strip() else repr(value)}"


def markdown() -> str:
    """docs/settings.md: every variable, its default and what it does (from the fields' descriptions)."""
    defaults = Settings()
    rows = []
    for name, variable in Settings.env_names().items():
        info = Settings.model_fields[name]
        default = defaults.env_text(name)
        meaning = (info.description or "").replace("|", "\\|")  # a table cell
        rows.append(f"| `{variable}` | {f'`{default}`' if default else '*(empty)*'} | {meaning} |")
    return "\n".join([
        "# Settings",
        "",
        "<!-- Generated from lakejob/settings.py by `lakejob settings --markdown > docs/settings.md` (`make docs`);",
        "     a unit test fails when this file and the code disagree. -->",
        "",
        "`lakejob run` reads these environment variables at start; the Helm chart sets them from its values",
        "(any other through `extraEnv`). A bad value stops the start with the variable's name and the rule it",
        "broke. Maps are `KEY=VALUE,…`, lists comma-separated. `lakejob settings` prints the values in effect.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        *rows,
        "",
    ])
