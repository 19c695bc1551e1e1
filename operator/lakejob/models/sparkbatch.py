"""SparkBatch: the DLI "create a batch processing job" request (and Livy's POST /batches) as a spec.

Field names are the vendors' own, so a DLI or Livy request body pasted under `spec:` is accepted.
What we add for Kubernetes is small and typed: `driver`/`executor` pod customisation, `suspend`
(the stop button), `schedulingTimeout`. The status mirrors DLI's response (Table 6/7).

Used by lakejob.crds (schema), lakejob.controllers.sparkbatch (parse + decide) and render.spark.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from lakejob.models.common import (
    Condition,
    Duration,
    Memory,
    Model,
    PodCustomization,
    Str,
    StrList,
    StrMap,
)
from lakejob.models.rules import SPARK_3_3_OR_LATER, Rule, spark_at_least_3_3

STATES = ("starting", "running", "recovering", "success", "dead", "killed")
TERMINAL_STATES = ("success", "dead", "killed")


class Resource(Model):
    """A package in the (deprecated) DLI resources list (Table 4)."""

    name: Str | None = Field(None, description="Resource name, or an OBS path such as obs://bucket/package.")
    type: Annotated[str, Field(max_length=64)] | None = Field(None, description="Resource type: jar, pyFile, file.")


class Group(Model):
    """A DLI package group (Table 5, deprecated)."""

    name: Str | None = Field(None, description="User group name.")
    resources: Annotated[list[Resource], Field(max_length=256)] | None = None


def _is_python(file: str) -> bool:
    return file.lower().endswith(".py")


class SparkBatchSpec(Model):
    """A Spark batch job, as DLI's and Livy's batch APIs define it."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("has(self.className) || self.file.lowerAscii().endsWith('.py')",
             "className is required unless file is a Python file (.py)",
             lambda s: s.className is not None or _is_python(s.file), field="className"),
        Rule("!(has(self.queue) && has(self.cluster_name))",
             "queue and cluster_name cannot coexist: set queue (cluster_name is its older name)",
             lambda s: not (s.queue is not None and s.cluster_name is not None), field="cluster_name"),
        Rule("!has(self.image) || (has(self.feature) && self.feature == 'custom')",
             "image is valid only when feature is custom",
             lambda s: s.image is None or s.feature == "custom", field="image"),
        Rule(f"!(has(self.resources) || has(self.groups)) || !has(self.spark_version) "
             f"|| !self.spark_version.matches('{SPARK_3_3_OR_LATER.replace(chr(92), chr(92) * 2)}')",
             "resources and groups are not supported by spark_version 3.3 or later: "
             "list the packages in jars, pyFiles and files",
             lambda s: not (s.resources is not None or s.groups is not None) or not spark_at_least_3_3(s.spark_version),
             field="resources"),
    )
    # Every field but these is immutable once the job exists (enforced at admission by lakejob.crds).
    __mutable__: ClassVar[frozenset[str]] = frozenset({"suspend"})

    file: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="The application: a JAR or Python file (local:///path in the image, s3a://, obs://, https://).")
    className: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        None, description="Java/Scala main class. Required unless file is a Python file.")
    args: StrList | None = Field(None, description="Arguments of the main class.")
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
                                                  "except the keys that wire the driver to its pods.")
    name: Annotated[str, Field(max_length=128)] | None = Field(None, description="Batch task name (spark.app.name), at most 128 characters.")
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
    suspend: bool | None = Field(
        None, description="Stop the job: true kills the running attempt and ends in state killed. It cannot be set back.",
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "self || !oldSelf", "message": "a stopped job stays stopped: suspend cannot go back to false"}]})
    schedulingTimeout: Duration | None = Field(
        None, description="How long a driver may wait to be scheduled and started (e.g. 3h, 10m, 90s) "
                          "before the job is dead. Default: the operator's (3h, as DLI).")

    @property
    def is_python(self) -> bool:
        return _is_python(self.file)


class ResolvedResources(Model):
    driverCores: int
    driverMemory: str
    driverMemoryOverhead: str
    executorCores: int
    executorMemory: str
    executorMemoryOverhead: str
    numExecutors: int


class ExecutorCounts(Model):
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class SparkBatchStatus(Model):
    """What DLI's GET /batches/{id} returns, plus Kubernetes' conditions and the resolved resources."""

    # Status is ours, not the user's: tolerate fields a newer or older operator wrote.
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(None, description="Stable UUID of the batch (the CR's uid).")
    appId: str | None = Field(None, description="Spark application ID (spark-app-selector of the driver).")
    name: str | None = None
    state: Literal[STATES] | None = Field(  # type: ignore[valid-type]
        None, description="starting, running, recovering, success, dead, killed.")
    attempt: int | None = Field(None, description="Current attempt, from 1; attempt - 1 retries were made.")
    log: list[str] | None = Field(None, description="Last 10 log lines of the driver, or its termination message.")
    sc_type: str | None = Field(None, description="A, B, C, or CUSTOMIZED when any override was given.")
    queue: str | None = None
    cluster_name: str | None = None
    create_time: int | None = Field(None, description="Creation time, ms since the epoch.")
    update_time: int | None = Field(None, description="Last status change, ms since the epoch.")
    duration: int | None = Field(None, description="Running time of the job in ms (set when it ends).")
    driverPod: str | None = None
    driverStartTime: int | None = Field(None, description="When the current driver pod was created, ms since the epoch.")
    nextAttemptTime: int | None = Field(None, description="When the next attempt starts (auto_recovery backoff), ms.")
    resources: ResolvedResources | None = None
    executors: ExecutorCounts | None = None
    reason: str | None = Field(None, description="Why the job is in its state (machine-readable).")
    message: str | None = None
    conditions: list[Condition] | None = None
    observedGeneration: int | None = None
