"""Operator-wide settings: one typed object, built once at start from flags and LAKEJOB_* env vars.

`lakejob.cli` builds it and hands it to the controllers (lakejob.operator keeps the one instance);
nothing deeper reads the environment. Every knob has an env var so the Helm chart and kustomize
base can set it without rewriting the command line.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LAKEJOB_{name}", default)


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default)
    if value not in allowed:
        raise ValueError(f"LAKEJOB_{name}={value!r}: must be one of {', '.join(allowed)}")
    return value


def _parse_map(text: str) -> dict[str, str]:
    """"3.5=apache/spark:3.5.7,3.4=..." → dict; empty entries ignored."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Settings:
    # Spark
    default_spark_version: str = "3.5.7"
    spark_image_template: str = "apache/spark:{version}"
    spark_images: dict[str, str] = field(default_factory=dict)  # "3.5" or "3.5.7" → image
    spark_uid: int = 185  # the user of the apache/spark images
    scheduling_timeout_s: int = 3 * 3600  # DLI: a job that gets no resources for ~3 hours is dead
    default_max_retry_times: int = 20  # DLI's default
    retry_backoff_s: float = 10.0  # first retry delay; doubles per attempt
    retry_backoff_max_s: float = 300.0
    driver_logs: bool = True  # fetch the driver's last log lines on failure (needs a reachable kubelet)
    driver_log_timeout_s: float = 3.0
    # per-job: a ServiceAccount/Role/RoleBinding owned by each job (deleted with it);
    # per-namespace: one shared set per namespace (three writes fewer per job, outlives jobs).
    driver_rbac: str = "per-job"
    # Notifications: topic name → URL (FlinkJarJob smn_topic; DagJob topics may give a URL directly)
    notification_topics: dict[str, str] = field(default_factory=dict)
    notify_retries: int = 3
    notify_timeout_s: float = 5.0
    # Peering between replicas (lakejob run --peering NAME): a standby replica takes over when the
    # active one has not renewed its entry for this long.
    peering_lifetime_s: int = 60
    peering_priority_value: int | None = None
    peering_priority_from: str = ""
    metrics_port: int = 9090  # 0 disables the metrics endpoint
    # Housekeeping
    max_concurrent_reconciles: int = 64  # bounded: a burst is worked through in order, not all at once
    resync_interval_s: float = 10.0  # timer that re-checks time-based transitions (timeouts, backoff)

    def peering_priority(self) -> int:
        """This replica's peering priority: set, or a stable number from e.g. the pod name, so that
        replicas of one Deployment differ (kopf pauses replicas whose priority is not the highest)."""
        if self.peering_priority_value is not None:
            return self.peering_priority_value
        if self.peering_priority_from:
            return int(hashlib.sha256(self.peering_priority_from.encode()).hexdigest()[:6], 16)
        return 0

    def spark_image(self, version: str) -> str:
        major_minor = ".".join(version.split(".")[:2])
        return self.spark_images.get(version) or self.spark_images.get(major_minor) or \
            self.spark_image_template.format(version=version)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            default_spark_version=_env("DEFAULT_SPARK_VERSION", cls.default_spark_version),
            spark_image_template=_env("SPARK_IMAGE_TEMPLATE", cls.spark_image_template),
            spark_images=_parse_map(_env("SPARK_IMAGES", "")),
            spark_uid=int(_env("SPARK_UID", str(cls.spark_uid))),
            scheduling_timeout_s=int(_env("SCHEDULING_TIMEOUT_SECONDS", str(cls.scheduling_timeout_s))),
            default_max_retry_times=int(_env("DEFAULT_MAX_RETRY_TIMES", str(cls.default_max_retry_times))),
            retry_backoff_s=float(_env("RETRY_BACKOFF_SECONDS", str(cls.retry_backoff_s))),
            retry_backoff_max_s=float(_env("RETRY_BACKOFF_MAX_SECONDS", str(cls.retry_backoff_max_s))),
            driver_logs=_env("DRIVER_LOGS", "true").lower() in ("1", "true", "yes"),
            driver_log_timeout_s=float(_env("DRIVER_LOG_TIMEOUT_SECONDS", str(cls.driver_log_timeout_s))),
            resync_interval_s=float(_env("RESYNC_INTERVAL_SECONDS", str(cls.resync_interval_s))),
            notification_topics=_parse_map(_env("NOTIFICATION_TOPICS", "")),
            notify_retries=int(_env("NOTIFY_RETRIES", str(cls.notify_retries))),
            notify_timeout_s=float(_env("NOTIFY_TIMEOUT_SECONDS", str(cls.notify_timeout_s))),
            peering_lifetime_s=int(_env("PEERING_LIFETIME_SECONDS", str(cls.peering_lifetime_s))),
            peering_priority_value=int(p) if (p := _env("PEERING_PRIORITY", "")) else None,
            peering_priority_from=_env("PEERING_PRIORITY_FROM", ""),
            metrics_port=int(_env("METRICS_PORT", str(cls.metrics_port))),
            driver_rbac=_choice("DRIVER_RBAC", cls.driver_rbac, ("per-job", "per-namespace")),
            max_concurrent_reconciles=int(_env("MAX_CONCURRENT_RECONCILES", str(cls.max_concurrent_reconciles))),
        )
