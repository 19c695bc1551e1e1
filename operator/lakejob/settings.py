"""Operator-wide settings: one typed object, built once at start from flags and LAKEJOB_* env vars.

`lakejob.cli` builds it and hands it to the controllers (lakejob.operator keeps the one instance);
nothing deeper reads the environment. Every knob has an env var so the Helm chart and kustomize
base can set it without rewriting the command line.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lakejob.oss.client import ADDRESSING_STYLES


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LAKEJOB_{name}", default)


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default)
    if value not in allowed:
        raise ValueError(f"LAKEJOB_{name}={value!r}: must be one of {', '.join(allowed)}")
    return value


def _packages_url(url: str) -> str:
    """LAKEJOB_PACKAGES_URL: empty, or SCHEME://BUCKET[/PREFIX] of an object store."""
    scheme, sep, rest = url.strip().partition("://")
    if url.strip() and (not sep or scheme not in ("s3", "s3a", "obs", "oss") or not rest.strip("/")):
        raise ValueError(f"LAKEJOB_PACKAGES_URL={url!r}: expected s3://BUCKET/PREFIX/ (or obs://, s3a://, oss://)")
    return url.strip()


def _blob_endpoint(url: str) -> str:
    """LAKEJOB_BLOB_ENDPOINT: empty, or an http(s) URL, `{account}` standing for the account."""
    url = url.strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"LAKEJOB_BLOB_ENDPOINT={url!r}: expected https://{{account}}.blob.core.windows.net "
                         "or, for an emulator, http://HOST:PORT/{account}")
    return url


def _tolerations(text: str) -> tuple[dict[str, Any], ...]:
    """LAKEJOB_WORKLOAD_TOLERATIONS: a JSON list of Kubernetes tolerations (empty: none)."""
    if not text.strip():
        return ()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"LAKEJOB_WORKLOAD_TOLERATIONS: not JSON: {e}") from None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("LAKEJOB_WORKLOAD_TOLERATIONS: expected a JSON list of tolerations (objects)")
    return tuple(value)


def _parse_map(text: str) -> dict[str, str]:
    """"3.5=apache/spark:3.5.7,3.4=..." → dict; empty entries ignored."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _priority_classes(text: str) -> tuple[tuple[int, str], ...]:
    """"0=low,500=high" → ((0, "low"), (500, "high")): bands by their lowest Priority, sorted."""
    try:
        bands = sorted((int(lo), name) for lo, name in _parse_map(text).items())
    except ValueError as e:
        raise ValueError(f"DAG_PRIORITY_CLASSES: expected LOWEST_PRIORITY=CLASS,…: {e}") from e
    if bands and bands[0][0] != 0:
        raise ValueError("DAG_PRIORITY_CLASSES: the first band must start at priority 0")
    return tuple(bands)


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
                raise ValueError(f"POD_POLICY_ALLOW: {item!r}: {feature!r} is not one of {', '.join(POD_POLICY_FEATURES)}")
            if not namespace:
                everywhere.add(feature)
            elif _NAMESPACE.match(namespace) and len(namespace) <= 63:
                namespaces.setdefault(namespace, set()).add(feature)
            else:
                raise ValueError(f"POD_POLICY_ALLOW: {item!r}: {namespace!r} is not a namespace name")
        return cls(frozenset(everywhere), {ns: frozenset(f) for ns, f in namespaces.items()})


@dataclass(frozen=True)
class Settings:
    # Spark
    default_spark_version: str = "3.5.7"
    # spark_version → image: the map first ("3.5.7", then "3.5"), then the template; an empty
    # template makes the map the whole list, and a version it does not name is refused.
    spark_image_template: str = "apache/spark:{version}"
    spark_images: dict[str, str] = field(default_factory=dict)  # "3.5" or "3.5.7" → image
    spark_uid: int = 185  # the user of the apache/spark images
    # The CPU request of Spark pods whose conf sets no spark.kubernetes.{driver,executor}.request.cores
    # (e.g. "100m" where DLI's whole-core sizes would not fit); empty: their whole cores, as Spark does.
    spark_request_cores: str = ""
    scheduling_timeout_s: int = 3 * 3600  # DLI: a job that gets no resources for ~3 hours is dead
    default_max_retry_times: int = 20  # DLI's default
    retry_backoff_s: float = 10.0  # first retry delay; doubles per attempt
    retry_backoff_max_s: float = 300.0
    driver_logs: bool = True  # fetch the driver's last log lines on failure (needs a reachable kubelet)
    driver_log_timeout_s: float = 3.0
    # per-namespace: one shared ServiceAccount/Role/RoleBinding per namespace (the default, as in the
    # other Spark operators: three writes fewer per job, outlives jobs); per-job: a set owned by each
    # job (deleted with it). Neither confines a driver to its own executors (a Role cannot name them).
    driver_rbac: str = "per-namespace"
    # Notifications: topic name → URL (FlinkJarJob smn_topic; DagJob topics may give a URL directly)
    notification_topics: dict[str, str] = field(default_factory=dict)
    notify_retries: int = 3
    notify_timeout_s: float = 5.0
    # SparkSession: where the operator reads idle/busy (the driver's Spark REST jobs list). {service}
    # (the driver's Service), {namespace}, {name} (the CR), {appId}. Tests point it at a local server.
    spark_rest_url_template: str = "http://{service}.{namespace}.svc:4040/api/v1/applications/{appId}/jobs"
    session_poll_interval_s: float = 5.0  # REST poll period of a live session
    session_poll_timeout_s: float = 2.0
    session_poll_concurrency: int = 32  # polls in flight at once, operator-wide
    session_poll_backoff_max_s: float = 60.0  # an unreachable driver is polled ever less often, up to this
    session_idle_timeout_s: int = 3600  # heartbeatTimeoutInSecond's default (Livy's session timeout, 1h); 0: never
    # FlinkJarJob
    default_flink_version: str = "2.3.0"
    flink_image_template: str = "flink:{version}-java17"
    flink_images: dict[str, str] = field(default_factory=dict)  # "2.3" or "2.3.0" → image
    flink_uid: int = 9999  # the user of the official flink images
    flink_cu_millicpu: int = 1000  # one CU: DLI's 1 vCPU + 4 GiB
    flink_cu_memory_mib: int = 4096
    # Where the operator reads a job's state: the JobManager's REST API. {name} (the CR), {namespace},
    # {service} (the JobManager Service). Tests point it at a local Flink.
    flink_rest_url_template: str = "http://{service}.{namespace}.svc:8081"
    flink_rest_timeout_s: float = 2.0
    flink_poll_interval_s: float = 5.0  # REST poll period of a running job
    flink_restart_delay_s: float = 10.0  # restart_when_exception: wait this long before redeploying
    flink_checkpoints_retained: int = 3  # Flink's num-retained, so the checkpoint last polled is still there
    # Leader election between replicas (lakejob run --leader-elect; lakejob.leader): a standby takes
    # the Lease over once it has seen it unchanged for the duration; the leader exits when it has not
    # renewed within the deadline (shorter: it stops before anyone else starts). Renewals every period.
    leader_lease_name: str = "lakejob"
    leader_lease_duration_s: float = 15.0
    leader_renew_deadline_s: float = 10.0
    leader_retry_period_s: float = 2.0
    metrics_port: int = 9090  # 0 disables the metrics endpoint
    # Object stores and the package store (render.packages). The image of the `fetch` init
    # containers (Spark drivers, Flink pods, DagJob tasks) and of a DagJob task's `upload` sidecar
    # (`lakejob-oss`). Empty: the operator's own, learnt from its pod at start-up (lakejob.own_image),
    # so that whatever set the operator's image (Helm, a kustomize `images:` override) sets this too.
    fetcher_image: str = ""
    # Where DLI package names (`group/name`, `name`) live: s3://BUCKET/PREFIX/ (obs:// and s3a:// mean
    # the same store) or oss://…; empty: a package name is refused, naming this setting.
    packages_url: str = ""
    # Where lakejob-oss reaches OSS (oss:// paths) and any S3-API store (obs://, s3a://, s3://):
    # {OSS,S3}_ENDPOINT, _ADDRESSING_STYLE, _REGION in the fetch (and upload) containers. No
    # endpoint: those containers fail, saying so.
    oss_endpoint: str = ""
    oss_addressing_style: str = "virtual"  # what Alibaba OSS requires; "path" for most local S3 servers
    oss_region: str = ""
    s3_endpoint: str = ""
    s3_addressing_style: str = "virtual"
    s3_region: str = ""
    # Azure Blob (wasb(s)://, abfs(s)://): the Blob service URL, `{account}` standing for the path's
    # storage account; empty: https://{account}.blob.core.windows.net (BLOB_ENDPOINT in the fetcher).
    blob_endpoint: str = ""
    # A Secret in each job's namespace with the stores' keys (S3_ACCESS_KEY_ID, S3_ACCESS_KEY_SECRET,
    # OSS_ACCESS_KEY_ID, …, BLOB_ACCOUNT_KEY or BLOB_SAS_TOKEN), read by the fetchers only; empty:
    # unsigned (anonymous) requests.
    store_secret: str = ""
    # DagJob: images, node selection, PriorityClasses, queueing and BatchCompute's quotas
    dag_upload_grace_s: int = 120  # the pod's terminationGracePeriodSeconds: time for the uploads
    dag_default_image: str = "python:3.12-slim"  # runs CommandLine when no ImageId maps to an image
    dag_images: dict[str, str] = field(default_factory=dict)  # BatchCompute ImageId → container image
    dag_uid: int = 1000  # command pods run as this non-root user
    dag_cluster_label: str = ""  # node label holding a ClusterId (empty: ClusterId selects no nodes)
    dag_instance_type_label: str = ""  # node label for AutoCluster.InstanceType (empty: not used)
    # Priority 0..1000 → PriorityClass: (lowest priority of the band, class name), ascending; the chart
    # installs the classes. Empty: pods get no priorityClassName.
    dag_priority_classes: tuple[tuple[int, str], ...] = (
        (0, "lakejob-priority-low"), (250, "lakejob-priority-medium"), (500, "lakejob-priority-high"),
        (750, "lakejob-priority-urgent"))
    dag_max_running: int = 100  # DagJobs Running at once, operator-wide; the rest wait, higher Priority first
    dag_max_job_task_count: int = 16  # QuotaExhausted.MaxJobTaskCount
    dag_max_task_instance_count: int = 1000  # QuotaExhausted.MaxTaskInstanceCount
    dag_max_instance_timeout: int = 7 * 86400  # QuotaExhausted.MaxInstanceTimeout (seconds)
    dag_max_job_count: int = 10000  # QuotaExhausted.MaxJobCount: DagJobs per namespace
    # Pod customisation refused unless allowed here: serviceAccountName, hostPath volumes, the host
    # namespaces, privileged, added capabilities (lakejob.policy; nothing allowed by default).
    pod_policy: PodPolicy = field(default_factory=PodPolicy)
    # Hosts a DagJob's own Topic.Endpoint may name ("hooks.example.com", "*.example.com"); any other
    # is refused (the operator would POST from inside the cluster wherever a user points it). The
    # URLs LAKEJOB_NOTIFICATION_TOPICS maps topic names to are the operator's own and always allowed.
    notify_allowed_hosts: tuple[str, ...] = ()
    # Where the jobs' pods run unless a spec says otherwise (render.common.place): a node selector
    # and tolerations every driver, executor, JobManager, TaskManager and task pod gets, under the
    # spec's own (e.g. a Spark node pool). WORKLOAD_NODE_SELECTOR "k=v,…", WORKLOAD_TOLERATIONS JSON.
    workload_node_selector: dict[str, str] = field(default_factory=dict)
    workload_tolerations: tuple[dict[str, Any], ...] = ()
    # Housekeeping
    max_concurrent_reconciles: int = 64  # bounded: a burst is worked through in order, not all at once
    # Every live CR is reconciled once per interval whatever happens (spread over it): the safety
    # net against a lost watch event. Also the longest a decision's own timer is set for.
    resync_interval_s: float = 300.0
    # A pass that ends in an error is tried again after error_backoff_s, doubling per failure in a
    # row, up to error_backoff_max_s (each with jitter), so a refused request is never a hot loop.
    error_backoff_s: float = 1.0
    error_backoff_max_s: float = 300.0

    def spark_image(self, version: str) -> str | None:
        """The image of `version`, None when neither the map nor a template gives one."""
        major_minor = ".".join(version.split(".")[:2])
        return self.spark_images.get(version) or self.spark_images.get(major_minor) or \
            (self.spark_image_template.format(version=version) if self.spark_image_template else None)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            default_spark_version=_env("DEFAULT_SPARK_VERSION", cls.default_spark_version),
            spark_image_template=_env("SPARK_IMAGE_TEMPLATE", cls.spark_image_template),
            spark_images=_parse_map(_env("SPARK_IMAGES", "")),
            spark_uid=int(_env("SPARK_UID", str(cls.spark_uid))),
            spark_request_cores=_env("SPARK_REQUEST_CORES", cls.spark_request_cores),
            scheduling_timeout_s=int(_env("SCHEDULING_TIMEOUT_SECONDS", str(cls.scheduling_timeout_s))),
            default_max_retry_times=int(_env("DEFAULT_MAX_RETRY_TIMES", str(cls.default_max_retry_times))),
            retry_backoff_s=float(_env("RETRY_BACKOFF_SECONDS", str(cls.retry_backoff_s))),
            retry_backoff_max_s=float(_env("RETRY_BACKOFF_MAX_SECONDS", str(cls.retry_backoff_max_s))),
            driver_logs=_env("DRIVER_LOGS", "true").lower() in ("1", "true", "yes"),
            driver_log_timeout_s=float(_env("DRIVER_LOG_TIMEOUT_SECONDS", str(cls.driver_log_timeout_s))),
            resync_interval_s=float(_env("RESYNC_INTERVAL_SECONDS", str(cls.resync_interval_s))),
            error_backoff_s=float(_env("ERROR_BACKOFF_SECONDS", str(cls.error_backoff_s))),
            error_backoff_max_s=float(_env("ERROR_BACKOFF_MAX_SECONDS", str(cls.error_backoff_max_s))),
            notification_topics=_parse_map(_env("NOTIFICATION_TOPICS", "")),
            notify_retries=int(_env("NOTIFY_RETRIES", str(cls.notify_retries))),
            notify_timeout_s=float(_env("NOTIFY_TIMEOUT_SECONDS", str(cls.notify_timeout_s))),
            spark_rest_url_template=_env("SPARK_REST_URL_TEMPLATE", cls.spark_rest_url_template),
            session_poll_interval_s=float(_env("SESSION_POLL_INTERVAL_SECONDS", str(cls.session_poll_interval_s))),
            session_poll_timeout_s=float(_env("SESSION_POLL_TIMEOUT_SECONDS", str(cls.session_poll_timeout_s))),
            session_poll_concurrency=int(_env("SESSION_POLL_CONCURRENCY", str(cls.session_poll_concurrency))),
            session_poll_backoff_max_s=float(_env("SESSION_POLL_BACKOFF_MAX_SECONDS",
                                                  str(cls.session_poll_backoff_max_s))),
            session_idle_timeout_s=int(_env("SESSION_IDLE_TIMEOUT_SECONDS", str(cls.session_idle_timeout_s))),
            default_flink_version=_env("DEFAULT_FLINK_VERSION", cls.default_flink_version),
            flink_image_template=_env("FLINK_IMAGE_TEMPLATE", cls.flink_image_template),
            flink_images=_parse_map(_env("FLINK_IMAGES", "")),
            flink_uid=int(_env("FLINK_UID", str(cls.flink_uid))),
            flink_cu_millicpu=int(_env("FLINK_CU_MILLICPU", str(cls.flink_cu_millicpu))),
            flink_cu_memory_mib=int(_env("FLINK_CU_MEMORY_MIB", str(cls.flink_cu_memory_mib))),
            flink_rest_url_template=_env("FLINK_REST_URL_TEMPLATE", cls.flink_rest_url_template),
            flink_rest_timeout_s=float(_env("FLINK_REST_TIMEOUT_SECONDS", str(cls.flink_rest_timeout_s))),
            flink_poll_interval_s=float(_env("FLINK_POLL_INTERVAL_SECONDS", str(cls.flink_poll_interval_s))),
            flink_restart_delay_s=float(_env("FLINK_RESTART_DELAY_SECONDS", str(cls.flink_restart_delay_s))),
            flink_checkpoints_retained=int(_env("FLINK_CHECKPOINTS_RETAINED", str(cls.flink_checkpoints_retained))),
            leader_lease_name=_env("LEADER_LEASE_NAME", cls.leader_lease_name),
            leader_lease_duration_s=float(_env("LEADER_LEASE_DURATION_SECONDS", str(cls.leader_lease_duration_s))),
            leader_renew_deadline_s=float(_env("LEADER_RENEW_DEADLINE_SECONDS", str(cls.leader_renew_deadline_s))),
            leader_retry_period_s=float(_env("LEADER_RETRY_PERIOD_SECONDS", str(cls.leader_retry_period_s))),
            metrics_port=int(_env("METRICS_PORT", str(cls.metrics_port))),
            driver_rbac=_choice("DRIVER_RBAC", cls.driver_rbac, ("per-job", "per-namespace")),
            pod_policy=PodPolicy.parse(_env("POD_POLICY_ALLOW", "")),
            notify_allowed_hosts=tuple(h.strip().lower() for h in _env("NOTIFY_ALLOWED_HOSTS", "").split(",")
                                       if h.strip()),
            workload_node_selector=_parse_map(_env("WORKLOAD_NODE_SELECTOR", "")),
            workload_tolerations=_tolerations(_env("WORKLOAD_TOLERATIONS", "")),
            max_concurrent_reconciles=int(_env("MAX_CONCURRENT_RECONCILES", str(cls.max_concurrent_reconciles))),
            fetcher_image=_env("FETCHER_IMAGE", cls.fetcher_image),
            packages_url=_packages_url(_env("PACKAGES_URL", cls.packages_url)),
            s3_endpoint=_env("S3_ENDPOINT", cls.s3_endpoint),
            s3_addressing_style=_choice("S3_ADDRESSING_STYLE", cls.s3_addressing_style, ADDRESSING_STYLES),
            s3_region=_env("S3_REGION", cls.s3_region),
            blob_endpoint=_blob_endpoint(_env("BLOB_ENDPOINT", cls.blob_endpoint)),
            store_secret=_env("STORE_SECRET", cls.store_secret),
            dag_upload_grace_s=int(_env("DAG_UPLOAD_GRACE_SECONDS", str(cls.dag_upload_grace_s))),
            oss_endpoint=_env("OSS_ENDPOINT", cls.oss_endpoint),
            oss_addressing_style=_choice("OSS_ADDRESSING_STYLE", cls.oss_addressing_style, ADDRESSING_STYLES),
            oss_region=_env("OSS_REGION", cls.oss_region),
            dag_default_image=_env("DAG_DEFAULT_IMAGE", cls.dag_default_image),
            dag_images=_parse_map(_env("DAG_IMAGES", "")),
            dag_uid=int(_env("DAG_UID", str(cls.dag_uid))),
            dag_cluster_label=_env("DAG_CLUSTER_LABEL", cls.dag_cluster_label),
            dag_instance_type_label=_env("DAG_INSTANCE_TYPE_LABEL", cls.dag_instance_type_label),
            dag_priority_classes=_priority_classes(_env("DAG_PRIORITY_CLASSES", ",".join(
                f"{lo}={name}" for lo, name in cls.dag_priority_classes))),
            dag_max_running=int(_env("DAG_MAX_RUNNING", str(cls.dag_max_running))),
            dag_max_job_task_count=int(_env("DAG_MAX_JOB_TASK_COUNT", str(cls.dag_max_job_task_count))),
            dag_max_task_instance_count=int(_env("DAG_MAX_TASK_INSTANCE_COUNT",
                                                 str(cls.dag_max_task_instance_count))),
            dag_max_instance_timeout=int(_env("DAG_MAX_INSTANCE_TIMEOUT", str(cls.dag_max_instance_timeout))),
            dag_max_job_count=int(_env("DAG_MAX_JOB_COUNT", str(cls.dag_max_job_count))),
        )
