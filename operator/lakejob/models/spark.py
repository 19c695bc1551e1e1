"""What every Spark kind's model shares: the DLI/Livy resource fields, sizing, image and pod customisation.

SparkBatchSpec (models.sparkbatch) and SparkSessionSpec (models.sparksession) subclass
`SparkAppSpec`; each adds what its API adds (a batch's file/className/args, a session's kind and
heartbeat) and lists its own rules in front of `SparkAppSpec.__rules__`. The status pieces both
report (resolved resources, executor counts, the attempt bookkeeping) are `SparkAppStatus`.
`resolve_sizing` is the one place a Spark spec meets the sc_type table (lakejob.sizing).

Used by the two kinds' models, render.spark, and both kinds' decide modules.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Annotated, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from lakejob import sizing
from lakejob.models.common import CONDITIONS_DESCRIPTION, Conditions, Memory, Model, PodCustomization, Str, StrList, StrMap, WorkloadStatus
from lakejob.models.rules import SPARK_3_3_OR_LATER, Rule, spark_at_least_3_3


class Resource(Model):
    """A package in the (deprecated) DLI resources list (Table 4)."""

    name: Str | None = Field(None, description="Resource name, or an OBS path such as obs://bucket/package.")
    type: Annotated[str, Field(max_length=64)] | None = Field(None, description="Resource type: jar, pyFile, file.")


class Group(Model):
    """A DLI package group (Table 5, deprecated)."""

    name: Str | None = Field(None, description="User group name.")
    resources: Annotated[list[Resource], Field(max_length=256)] | None = Field(
        None, description="The group's packages.")


def cel_regex(pattern: str) -> str:
    """A regex as a single-quoted CEL string literal's body (backslashes doubled)."""
    return pattern.replace("\\", "\\\\")


def _request_cores_rule() -> Rule:
    """conf's spark.kubernetes.{driver,executor}.request.cores, when given, are positive Kubernetes
    CPU quantities (the only way to ask for less than a core: driverCores/executorCores are whole)."""
    keys = [sizing.request_cores_key(side) for side in ("driver", "executor")]

    def bad(k: str) -> str:  # CEL: the key is set and is not a positive quantity
        return (f"(has(self.conf) && '{k}' in self.conf && (!self.conf['{k}'].matches('{cel_regex(sizing.CPU_QUANTITY)}') "
                f"|| self.conf['{k}'].matches('{cel_regex(sizing.ZERO_CPU)}')))")

    rule = ("conf[<key>]: <value> is not a Kubernetes CPU quantity greater than 0 (for example 250m or 0.5)")

    def explain(s: SparkAppSpec) -> str:
        k = next(k for k in keys if s.conf and k in s.conf and not sizing.is_cpu_quantity(s.conf[k]))
        return rule.replace("<key>", k).replace("<value>", s.conf[k] if s.conf else "")

    return Rule(
        f"!{bad(keys[0])} && !{bad(keys[1])}",
        f"conf[{keys[0]}] and conf[{keys[1]}] must be Kubernetes CPU quantities greater than 0 (for example 250m or 0.5)",
        lambda s: not any(s.conf and k in s.conf and not sizing.is_cpu_quantity(s.conf[k]) for k in keys),
        field="conf",
        message_expression="'conf[' + ({bad0} ? '{k0}' : '{k1}') + ']: ' + self.conf[{bad0} ? '{k0}' : '{k1}'] + "
                           "'{tail}'".format(bad0=bad(keys[0]), k0=keys[0], k1=keys[1],
                                             tail=rule.split("<value>", 1)[1]),
        explain=explain)


# conf keys that wire the job to its pods or decide what it runs and as whom: lakejob sets them
# (render.spark) and conf may not, so a user cannot point the driver at another API server or
# namespace, run another image than `image`/the operator's, act as another ServiceAccount or with
# other credentials, or swap the pod templates the operator's policy checks. Refused with the key
# named, at admission (CEL) and by the operator (the same check in Python). The sizing keys
# (spark.driver.memory, spark.executor.cores, …) are not here: the typed fields win over them silently
# (render.spark.OWNED_CONF_KEYS), as DLI does.
REFUSED_CONF_KEYS = (
    "spark.master", "spark.submit.deployMode", "spark.kubernetes.driver.master", "spark.kubernetes.namespace",
    "spark.kubernetes.container.image", "spark.kubernetes.driver.container.image",
    "spark.kubernetes.executor.container.image",
    "spark.kubernetes.driver.pod.name", "spark.kubernetes.executor.podNamePrefix", "spark.app.id",
    "spark.kubernetes.driver.podTemplateFile", "spark.kubernetes.executor.podTemplateFile",
    "spark.kubernetes.driver.podTemplateContainerName", "spark.kubernetes.executor.podTemplateContainerName",
    "spark.kubernetes.driver.pod.featureSteps", "spark.kubernetes.executor.pod.featureSteps",
    "spark.kubernetes.submitInDriver", "spark.driver.host", "spark.driver.port", "spark.driver.blockManager.port",
    "spark.kubernetes.trust.certificates",
)
# Whole families: credentials and service accounts (spark.kubernetes.authenticate.driver.serviceAccountName,
# ….oauthToken, ….clientKeyFile, …) and the labels the operator finds its pods by.
REFUSED_CONF_PREFIXES = (
    "spark.kubernetes.authenticate.",
    "spark.kubernetes.driver.label.lakejob.io/", "spark.kubernetes.executor.label.lakejob.io/",
)
_REFUSED_TAIL = (": set by lakejob, which wires and secures the job (master, namespace, pod names, templates and "
                 "labels, images, service accounts and credentials); use the typed fields instead (image with "
                 "feature custom, driver.serviceAccountName, executor.serviceAccountName)")


def refused_conf_keys(conf: dict[str, str] | None) -> list[str]:
    """The keys of `conf` that conf may not set, sorted."""
    return sorted(k for k in conf or {} if k in REFUSED_CONF_KEYS or k.startswith(REFUSED_CONF_PREFIXES))


def _refused_conf_rule() -> Rule:
    keys = ", ".join(f"'{k}'" for k in REFUSED_CONF_KEYS)
    bad = " || ".join([f"k in [{keys}]", *(f"k.startsWith('{p}')" for p in REFUSED_CONF_PREFIXES)])
    return Rule(
        f"!has(self.conf) || !self.conf.exists(k, {bad})",
        "conf cannot set " + ", ".join(REFUSED_CONF_KEYS) + " or keys under " + ", ".join(REFUSED_CONF_PREFIXES)
        + _REFUSED_TAIL,
        lambda s: not refused_conf_keys(s.conf),
        field="conf",
        # One key, not all: the apiserver's cost estimate of joining every key (map keys have no
        # length bound) exceeds its budget. The operator names them all.
        message_expression=f"'conf[' + self.conf.filter(k, {bad})[0] + ']{_REFUSED_TAIL}'",
        explain=lambda s: ", ".join(f"conf[{k}]" for k in refused_conf_keys(s.conf)) + _REFUSED_TAIL)


class SparkAppSpec(Model):
    """The fields DLI's batch and session requests (and Livy's) share, with their rules."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("!(has(self.queue) && has(self.cluster_name))",
             "queue and cluster_name cannot coexist: set queue (cluster_name is its older name)",
             lambda s: not (s.queue is not None and s.cluster_name is not None), field="cluster_name"),
        Rule("!has(self.image) || (has(self.feature) && self.feature == 'custom')",
             "image is valid only when feature is custom",
             lambda s: s.image is None or s.feature == "custom", field="image"),
        Rule(f"!(has(self.resources) || has(self.groups)) || !has(self.spark_version) "
             f"|| !self.spark_version.matches('{cel_regex(SPARK_3_3_OR_LATER)}')",
             "resources and groups are not supported by spark_version 3.3 or later: "
             "list the packages in jars, pyFiles and files",
             lambda s: not (s.resources is not None or s.groups is not None) or not spark_at_least_3_3(s.spark_version),
             field="resources"),
        _request_cores_rule(),
        _refused_conf_rule(),
    )

    jars: StrList | None = Field(None, description="JARs put on the driver and executor classpath (spark.jars).")
    pyFiles: StrList | None = Field(None, description="Files put on the PYTHONPATH (spark.submit.pyFiles).")
    files: StrList | None = Field(None, description="Files placed in the working directory of each executor (spark.files).")
    archives: StrList | None = Field(None, description="Archives uncompressed in each executor's working directory (spark.archives).")
    modules: StrList | None = Field(None, description="DLI dependency system modules (e.g. sys.datasource.rds); recorded as the "
                                                      "lakejob.io/modules annotation for images that resolve them.")
    resources: Annotated[list[Resource], Field(max_length=256)] | None = Field(
        None, description="Deprecated DLI resource packages (Table 4). Rejected for spark_version 3.3 or later.")
    groups: Annotated[list[Group], Field(max_length=64)] | None = Field(
        None, description="Deprecated DLI package groups (Table 5). Rejected for spark_version 3.3 or later.")
    conf: StrMap | None = Field(None, description="Spark configuration (spark.* keys, string values); wins over what lakejob sets, "
                                                  "except the sizing keys (the typed fields win). Keys that wire or "
                                                  "secure the job (master, namespace, images, pod names and templates, "
                                                  "spark.kubernetes.authenticate.*) are refused.")
    name: Annotated[str, Field(max_length=128)] | None = Field(None, description="Name (spark.app.name), at most 128 characters.")
    queue: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="DLI queue; becomes the lakejob.io/queue label of every pod. Cannot coexist with cluster_name.")
    cluster_name: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="Older name of queue. Cannot coexist with queue.")
    sc_type: Literal["A", "B", "C"] | None = Field(
        None, description="Compute resource type (DLI Table 3). A: driver 2 cores/7G, executors 6 x 1 core/4G; "
                          "B: 2/7G, 7 x 2/8G; C: 4/15G, 14 x 2/8G. Default A. Each override below replaces one value.")
    driverMemory: Memory | None = Field(None, description="Driver memory with its unit (2G, 2048M, 2 GB). Overrides sc_type.")
    driverCores: Annotated[int, Field(ge=1, le=256)] | None = Field(None, description="Driver cores. Overrides sc_type.")
    executorMemory: Memory | None = Field(None, description="Executor memory with its unit (4G, 4096M, 4 GB). Overrides sc_type.")
    executorCores: Annotated[int, Field(ge=1, le=256)] | None = Field(None, description="Cores per executor. Overrides sc_type.")
    numExecutors: Annotated[int, Field(ge=1, le=10000)] | None = Field(None, description="Number of executors. Overrides sc_type.")
    obs_bucket: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="Bucket for the job's event logs (spark.eventLog.dir = s3a://<bucket>/spark-events when set).")
    auto_recovery: bool | None = Field(None, description="Retry a failed attempt with a new driver. Default false.")
    max_retry_times: Annotated[int, Field(ge=0, le=100)] | None = Field(
        None, description="Retries when auto_recovery is on, 0..100. Default 20.")
    feature: Literal["basic", "custom", "ai"] | None = Field(
        None, description="Image type: basic (lakejob's image for spark_version), custom (image below), ai.")
    spark_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", max_length=16)] | None = Field(
        None, description="Spark version; picks the default image. Default: the operator's default version.")
    execution_agency_urn: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="DLI agency name; recorded as an annotation (no effect on Kubernetes).")
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        None, description="Custom image (organization/image:tag). Valid only with feature: custom.")
    catalog_name: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="Metadata catalog (spark.sql.catalog name); recorded in the driver's properties as lakejob.catalog.")
    proxyUser: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="User to impersonate (spark.kubernetes.driverEnv.HADOOP_USER_NAME and SPARK_USER).")
    driver: PodCustomization | None = Field(None, description="Customisation of the driver pod.")
    executor: PodCustomization | None = Field(None, description="Customisation of the executor pods.")

    @property
    @abstractmethod
    def is_python(self) -> bool:
        """Whether Python runs beside the JVMs (Spark's 0.4 memory overhead factor instead of 0.1)."""

    @model_validator(mode="after")
    def _sizable(self) -> Self:
        # Python only: the sizes conf may set (spark.{driver,executor}.memoryOverhead, …Factor) are
        # Spark's memory strings and numbers, which CEL cannot read. Checked by the model, a spec
        # with sizes the operator cannot make fails at once (InvalidSpec), also when it changed
        # after admission, instead of reaching render.
        resolve_sizing(self)
        return self


def resolve_sizing(spec: SparkAppSpec) -> sizing.SparkSizing:
    """The spec's driver/executor sizes: its sc_type row, each override, Spark's overhead."""
    return sizing.resolve_spark(
        sc_type=spec.sc_type, driver_cores=spec.driverCores, driver_memory=spec.driverMemory,
        executor_cores=spec.executorCores, executor_memory=spec.executorMemory,
        num_executors=spec.numExecutors, conf=spec.conf or {}, python=spec.is_python)


class ResolvedResources(Model):
    """The sizes the pods were made with: sc_type's row, each override, Spark's memory overhead."""

    driverCores: int = Field(description="CPU cores of the driver.")
    driverMemory: str = Field(description="JVM heap of the driver (spark.driver.memory).")
    driverMemoryOverhead: str = Field(description="Memory of the driver pod beyond the heap "
                                                  "(spark.driver.memoryOverhead).")
    executorCores: int = Field(description="CPU cores of each executor.")
    executorMemory: str = Field(description="JVM heap of each executor (spark.executor.memory).")
    executorMemoryOverhead: str = Field(description="Memory of each executor pod beyond the heap "
                                                    "(spark.executor.memoryOverhead).")
    numExecutors: int = Field(description="Executors asked for (spark.executor.instances).")

    @classmethod
    def of(cls, s: sizing.SparkSizing) -> ResolvedResources:
        return cls(
            driverCores=s.driver_cores, driverMemory=sizing.spark_memory(s.driver_memory_mib),
            driverMemoryOverhead=sizing.spark_memory(s.driver_overhead_mib), executorCores=s.executor_cores,
            executorMemory=sizing.spark_memory(s.executor_memory_mib),
            executorMemoryOverhead=sizing.spark_memory(s.executor_overhead_mib), numExecutors=s.num_executors)


class ExecutorCounts(Model):
    """The current attempt's executor pods, by phase."""

    pending: int = Field(0, description="Executor pods not running yet.")
    running: int = Field(0, description="Executor pods running.")
    succeeded: int = Field(0, description="Executor pods that ended well.")
    failed: int = Field(0, description="Executor pods that failed (Spark replaces them).")


class SparkAppStatus(Model):
    """The status fields every Spark kind reports (DLI's response fields plus the attempt bookkeeping).
    Each kind adds its `state` (its own set of states) and what else its API returns."""

    # Status is ours, not the user's: tolerate fields a newer or older operator wrote.
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(None, description="Stable UUID (the CR's uid).")
    appId: str | None = Field(None, description="Spark application ID (spark-app-selector of the driver).")
    name: str | None = Field(None, description="spec.name.")
    attempt: int | None = Field(None, description="Current attempt, from 1; attempt - 1 retries were made.")
    log: list[str] | None = Field(None, description="Last 10 log lines of the driver, or its termination message.")
    sc_type: str | None = Field(None, description="A, B, C, or CUSTOMIZED when any override was given.")
    queue: str | None = Field(None, description="The queue: spec.queue, else spec.cluster_name.")
    cluster_name: str | None = Field(None, description="The same as queue (DLI reports both).")
    create_time: int | None = Field(None, description="Creation time, ms since the epoch.")
    update_time: int | None = Field(None, description="Last status change, ms since the epoch.")
    driverPod: str | None = Field(None, description="Name of the current attempt's driver pod.")
    driverStartTime: int | None = Field(None, description="When the current driver pod was created, ms since the epoch.")
    nextAttemptTime: int | None = Field(None, description="When the next attempt starts (auto_recovery backoff), ms.")
    resources: ResolvedResources | None = None
    executors: ExecutorCounts | None = None
    reason: str | None = Field(None, description="Why it is in its state (machine-readable).")
    message: str | None = Field(None, description="Why it is in its state, for people (at most 4 KiB).")
    workload: WorkloadStatus | None = Field(None, description="Its Kueue Workload, for a job in a queue.")
    conditions: Conditions | None = Field(None, description=CONDITIONS_DESCRIPTION)
    observedGeneration: int | None = Field(None, description="metadata.generation the operator acted on last.")
