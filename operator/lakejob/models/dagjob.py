"""DagJob: Alibaba BatchCompute's "create a DAG job" request (POST /jobs) as a spec.

Field names are BatchCompute's own (PascalCase), so its example request body pasted under
`spec:` is accepted. The error-code table of that API is implemented as admission rules: sizes
and lengths as OpenAPI bounds, forms (names, oss:// paths, local paths, map keys, the DAG's
names) as `Rule`s (CEL in the CRD, the same check in Python), each message starting with
BatchCompute's error code; a cycle in the DAG only in Python (CEL cannot loop), so the operator
fails such a job with the cycle printed. Quotas (QuotaExhausted.*) are operator settings, so the
operator checks them (controllers.dagjob_decide), not admission.

What lakejob adds is camelCase and small: `suspend` (stop/resume), per-task `pod` customisation,
tasks that embed another kind's spec (`sparkBatch`, `flinkJarJob`: CHILD_KINDS), `secretName` for OSS keys.

Used by lakejob.crds (schema), controllers.dagjob (parse), controllers.dagjob_decide and render.dag.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from lakejob import dag_graph
from lakejob.models.common import (
    CONDITIONS_DESCRIPTION,
    Conditions,
    Model,
    OutboxEntry,
    PodCustomization,
    WorkloadStatus,
)
from lakejob.models.rules import Rule
from lakejob.models.flinkjarjob import ARGS_PATTERN, FlinkJarJobSpec
from lakejob.models.sparkbatch import SparkBatchSpec

STATES = ("Waiting", "Running", "Stopped", "Finished", "Failed")
TERMINAL_STATES = ("Finished", "Failed")
MAX_TASKS = 16  # BatchCompute: Tasks size in [1, 16]
EVENTS = ("OnJobWaiting", "OnJobRunning", "OnJobStopped", "OnJobFinished", "OnJobFailed",
          "OnTaskWaiting", "OnTaskRunning", "OnTaskStopped", "OnTaskFinished", "OnTaskFailed",
          "OnInstanceWaiting", "OnInstanceRunning", "OnInstanceStopped", "OnInstanceFinished", "OnInstanceFailed",
          "OnPriorityChange")
LOCALES = ("GBK", "GB2312-80", "BIG5", "ANSI", "EUC-JP", "EUC-TW", "EUC-KR", "SHIFT-JIS", "KSC5601")

# RE2 patterns, used verbatim by CEL and by Python's re (both sides of every Rule).
NAME_RE = r"^[a-zA-Z-][a-zA-Z0-9-]*$"  # [a-zA-Z0-9-], not starting with [0-9]
_BUCKET = r"oss://[a-z0-9][a-z0-9-]{1,61}[a-z0-9]/"
OSS_RE = rf"^{_BUCKET}.*$"
OSS_FOLDER_RE = rf"^{_BUCKET}(.*/)?$"
OSS_FILE_RE = rf"^{_BUCKET}.*[^/]$"
LOCAL_RE = r"^/.*$"

NAME_MSG = "must only contain characters within [a-zA-Z0-9-], and must not start with [0-9]"
OSS_MSG = "OSS path must start with 'oss://<bucket>/', must end with '/' if it is a folder, and must not end with '/' if it is a file"
LOCAL_MSG = "Local path must be an absolute path (the pods run Linux)"


def _cel(pattern: str) -> str:
    """A Python regex literal as a CEL single-quoted string literal."""
    return "'" + pattern.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _re(pattern: str, value: str) -> bool:
    return re.match(pattern, value) is not None


def _keys(field: str, lo: int, hi: int, pattern: str | None = None) -> tuple[str, Any]:
    """CEL and Python checks that every key of the map `field` has a length in [lo, hi] (and matches)."""
    match = f" && k.matches({_cel(pattern)})" if pattern else ""
    cel = f"!has(self.{field}) || self.{field}.all(k, size(k) >= {lo} && size(k) <= {hi}{match})"

    def check(m: Any) -> bool:
        value = getattr(m, field)
        return value is None or all(lo <= len(k) <= hi and (pattern is None or _re(pattern, k)) for k in value)

    return cel, check


def _values(field: str, pattern: str) -> tuple[str, Any]:
    cel = f"!has(self.{field}) || self.{field}.all(k, self.{field}[k].matches({_cel(pattern)}))"

    def check(m: Any) -> bool:
        value = getattr(m, field)
        return value is None or all(_re(pattern, v) for v in value.values())

    return cel, check


def _opt(field: str, pattern: str, empty_ok: bool = False) -> tuple[str, Any]:
    """CEL and Python checks that an optional string field matches `pattern` (or is empty if allowed)."""
    empty = f"size(self.{field}) == 0 || " if empty_ok else ""
    cel = f"!has(self.{field}) || {empty}self.{field}.matches({_cel(pattern)})"

    def check(m: Any) -> bool:
        value = getattr(m, field)
        return value is None or (empty_ok and value == "") or _re(pattern, value)

    return cel, check


def _rule(pair: tuple[str, Any], message: str, field: str) -> Rule:
    return Rule(pair[0], message, pair[1], field=field)


Str64 = Annotated[str, Field(max_length=64)]
Str256 = Annotated[str, Field(max_length=256)]
Path1024 = Annotated[str, Field(max_length=1024)]
Mapping16 = Annotated[dict[str, Path1024], Field(max_length=16)]
StrList16 = Annotated[list[Str256], Field(max_length=16)]


# ----------------------------------------------------------------------------- mounts and credentials


class OSSCredentials(Model):
    """OSS keys. Accepted inline as BatchCompute has them, but `secretName` is the recommended form:
    inline keys are copied into a Secret the operator owns, and no child, status or Event shows them."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("!has(self.secretName) || ((!has(self.AccessKeyId) || size(self.AccessKeyId) == 0) && "
             "(!has(self.AccessKeySecret) || size(self.AccessKeySecret) == 0) && "
             "(!has(self.AccessSecurityToken) || size(self.AccessSecurityToken) == 0))",
             "give the OSS keys either inline or as secretName, not both",
             lambda o: o.secretName is None or not (o.AccessKeyId or o.AccessKeySecret or o.AccessSecurityToken),
             field="secretName"),
    )
    AccessKeyId: Str256 | None = Field(None, description="OSS AccessKey ID (inline; prefer secretName).")
    AccessKeySecret: Str256 | None = Field(None, description="OSS AccessKey secret (inline; prefer secretName).")
    AccessSecurityToken: Annotated[str, Field(max_length=4096)] | None = Field(
        None, description="STS security token of temporary keys (inline; prefer secretName).")
    secretName: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        None, description="A Secret in the DagJob's namespace with the keys AccessKeyId, AccessKeySecret and "
                          "(optionally) AccessSecurityToken. Recommended over inline keys.")


class NASSpec(Model):
    """BatchCompute's NAS mount. Accepted as BatchCompute has it; no effect on Kubernetes."""

    AccessGroup: StrList16 | None = Field(None, description="NAS access groups.")
    FileSystem: StrList16 | None = Field(None, description="NAS file systems.")


class MountEntry(Model):
    __rules__: ClassVar[tuple[Rule, ...]] = (
        _rule(_opt("Source", OSS_RE), f"InvalidSource: Specified parameter Source is not valid. {OSS_MSG}", "Source"),
        _rule(_opt("Destination", LOCAL_RE), f"InvalidDestination: Specified parameter Destination is not valid. "
                                             f"{LOCAL_MSG}", "Destination"),
    )
    Source: Path1024 = Field(description="oss:// path fetched into Destination before the command starts.")
    Destination: Path1024 = Field(description="Absolute local path.")
    WriteSupport: bool | None = Field(None, description="Whether the mount is writable. Accepted as BatchCompute has it; no effect on Kubernetes.")


class MountsSpec(Model):
    """What the instances see besides their inputs: OSS paths copied in, and the OSS keys."""

    Entries: Annotated[list[MountEntry], Field(max_length=16)] | None = Field(
        None, description="OSS paths fetched into local paths before the command starts (at most 16).")
    Locale: Literal[LOCALES] | None = Field(  # type: ignore[valid-type]
        None, description="Character set of OSS object names when mounted (GBK, GB2312-80, BIG5, ANSI, EUC-JP, "
                          "EUC-TW, EUC-KR, SHIFT-JIS, KSC5601). Accepted as BatchCompute has it; no effect on Kubernetes.")
    Lock: bool | None = Field(None, description="Whether the NFS mount supports network file locking. Accepted as BatchCompute has it; no effect on Kubernetes.")
    CacheSupport: bool | None = Field(None, description="Whether the mount is cached. Accepted as BatchCompute has it; no effect on Kubernetes.")
    NAS: NASSpec | None = None
    OSS: OSSCredentials | None = None


# ----------------------------------------------------------------------------- AutoCluster (accepted, mostly recorded)


class Disk(Model):
    """A disk of the cluster's VMs. Accepted as BatchCompute has it; no effect on Kubernetes."""

    MountPoint: Path1024 | None = Field(None, description="Where the disk is mounted.")
    Size: Annotated[int, Field(ge=0, le=65536)] | None = Field(None, description="Size in GB.")
    Type: Str64 | None = Field(None, description="Disk type (e.g. cloud_efficiency, cloud_ssd).")


class DisksSpec(Model):
    """The cluster's VM disks. Accepted as BatchCompute has it; no effect on Kubernetes."""

    DataDisk: Disk | None = Field(None, description="The data disk.")
    SystemDisk: Disk | None = Field(None, description="The system disk.")


class ClassicSpec(Model):
    """Classic network access rules. Accepted as BatchCompute has it; no effect on Kubernetes."""

    AllowIpAddress: StrList16 | None = Field(None, description="IP addresses allowed in.")
    AllowIpAddressEgress: StrList16 | None = Field(None, description="IP addresses allowed out.")
    AllowSecurityGroup: StrList16 | None = Field(None, description="Security groups allowed in.")
    AllowSecurityGroupEgress: StrList16 | None = Field(None, description="Security groups allowed out.")


class VPCSpec(Model):
    """The cluster's VPC. Accepted as BatchCompute has it; no effect on Kubernetes."""

    CidrBlock: Str64 | None = Field(None, description="CIDR block of the VPC, e.g. 192.168.0.0/16.")
    VpcId: Str64 | None = Field(None, description="An existing VPC's ID.")


class NetworksSpec(Model):
    """The cluster's network. Accepted as BatchCompute has it; no effect on Kubernetes."""

    Classic: ClassicSpec | None = None
    VPC: VPCSpec | None = None


class ConfigsSpec(Model):
    """Cluster configurations: disks and networks (no effect on Kubernetes), Mounts (its OSS keys
    are the task's when the task has none of its own)."""

    Disks: DisksSpec | None = None
    Mounts: MountsSpec | None = None
    Networks: NetworksSpec | None = None


class AutoClusterSpec(Model):
    """BatchCompute's anonymous cluster. On Kubernetes: ImageId picks the container image (operator
    setting), InstanceType a node label (when the operator names one); the rest is accepted as is."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("!has(self.ECSImageId) || !has(self.ImageId) || size(self.ECSImageId) == 0 || size(self.ImageId) == 0",
             "InvalidAutoCluster: only one of ECSImageId and ImageId can be set, the other must be left blank",
             lambda a: not (a.ECSImageId and a.ImageId), field="ImageId"),
    )
    ECSImageId: Str256 | None = Field(None, description="ID of an ECS image (only one of ECSImageId and ImageId). "
                                                       "Accepted as BatchCompute has it; no effect on Kubernetes.")
    ImageId: Str256 | None = Field(None, description="ID of a BatchCompute image: the container image is the one "
                                                    "the operator maps it to (LAKEJOB_DAG_IMAGES), else its default.")
    InstanceType: Str256 = Field(description="Instance type; becomes a node selector when the operator names the "
                                             "node label for it (LAKEJOB_DAG_INSTANCE_TYPE_LABEL).")
    ResourceType: Literal["OnDemand", "Spot"] | None = Field(None, description="OnDemand or Spot. Accepted as BatchCompute has it; no effect on Kubernetes.")
    SpotStrategy: Literal["SpotWithPriceLimit", "SpotAsPriceGo"] | None = Field(
        None, description="Bidding strategy of Spot instances. Accepted as BatchCompute has it; no effect on Kubernetes.")
    SpotPriceLimit: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Highest price per instance-hour with SpotWithPriceLimit. Accepted as BatchCompute has it; no effect on Kubernetes.")
    UserData: Annotated[dict[str, Str256], Field(max_length=16)] | None = Field(
        None, description="Key-value pairs for the VMs' metadata server. Accepted as BatchCompute has it; no effect on Kubernetes.")
    Configs: ConfigsSpec | None = None
    ReserveOnFail: bool | None = Field(None, description="Keep the VMs of a failed task. Accepted as BatchCompute has it; no effect on Kubernetes.")


# ----------------------------------------------------------------------------- a command task


class CommandSpec(Model):
    __rules__: ClassVar[tuple[Rule, ...]] = (
        # render.dag splits CommandLine into words as a POSIX shell would (shlex.split), which fails
        # on an open quote or a trailing backslash: refused here, naming the field, instead.
        _rule(_opt("CommandLine", ARGS_PATTERN),
              "InvalidCommandLine: Specified parameter CommandLine is not valid. It is split into words as a POSIX "
              "shell would: every quote must be closed, and a backslash must not end it.", "CommandLine"),
        _rule(_opt("PackagePath", OSS_FILE_RE, empty_ok=True),
              f"InvalidPackagePath: Specified parameter PackagePath is not valid. {OSS_MSG} (a package is a file)",
              "PackagePath"),
        _rule(_keys("EnvVars", 1, 128),
              "InvalidEnvVars.{key}: Specified parameter EnvVars.{key} is not valid. Its length must be in [1, 128].",
              "EnvVars"),
    )
    CommandLine: Path1024 = Field(description="Interpreter + script, e.g. `python worker.py` (not a shell line), "
                                              "run in the directory PackagePath was unpacked into.")
    PackagePath: Path1024 = Field("", description="oss:// path of the program package (a file, e.g. a .tar.gz), "
                                                  "fetched and unpacked by the fetcher init container. Empty: none.")
    EnvVars: Annotated[dict[str, Path1024], Field(max_length=64)] | None = Field(
        None, description="Environment of the program: at most 64, key 1..128, value ≤ 1024 characters.")


class InputMappingConfigSpec(Model):
    """Configuration of the NFS mounting of InputMapping. Accepted as BatchCompute has it; no effect on Kubernetes."""

    Locale: Literal[LOCALES] | None = Field(  # type: ignore[valid-type]
        None, description="Character set of OSS object names when mounted.")
    Lock: bool | None = Field(None, description="Whether the NFS mount supports network file locking.")


class ParametersSpec(Model):
    __rules__: ClassVar[tuple[Rule, ...]] = (
        _rule(_opt("StdoutRedirectPath", OSS_FOLDER_RE),
              f"InvalidStdoutRedirectPath: Specified parameter StdoutRedirectPath is not valid. {OSS_MSG} "
              "(it is a folder)", "StdoutRedirectPath"),
        _rule(_opt("StderrRedirectPath", OSS_FOLDER_RE),
              f"InvalidStderrRedirectPath: Specified parameter StderrRedirectPath is not valid. {OSS_MSG} "
              "(it is a folder)", "StderrRedirectPath"),
    )
    Command: CommandSpec = Field(description="The user program: its command line, package and environment.")
    InputMappingConfig: InputMappingConfigSpec | None = None
    StdoutRedirectPath: Path1024 = Field(description="OSS folder for the instances' standard output, uploaded when "
                                                     "the command ends as stdout.{JobId}.{TaskId}.{InstanceId} "
                                                     "(JobId: the DagJob's uid).")
    StderrRedirectPath: Path1024 = Field(description="OSS folder for the instances' standard error, uploaded as "
                                                     "stderr.{JobId}.{TaskId}.{InstanceId}.")


# Fields of a command task, which a task of another kind must not carry.
COMMAND_FIELDS = ("InstanceCount", "MaxRetryCount", "Timeout", "InputMapping", "OutputMapping", "LogMapping",
                  "Mounts", "ClusterId", "AutoCluster", "WriteSupport", "pod", "resources")


# Tasks that are other lakejob kinds, run as child custom resources: field → kind.
CHILD_KINDS = {"sparkBatch": "SparkBatch", "flinkJarJob": "FlinkJarJob"}


def _kinds(t: Any) -> int:
    return sum(getattr(t, f) is not None for f in ("Parameters", *CHILD_KINDS))


_ONE_OF = ", ".join(["a command task (Parameters)", *CHILD_KINDS])
_HAS_CHILD = " || ".join(f"has(self.{f})" for f in CHILD_KINDS)


class Task(Model):
    """One task: a BatchCompute command task (Parameters …), or another lakejob kind (CHILD_KINDS)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("[" + ", ".join(f"has(self.{f})" for f in ("Parameters", *CHILD_KINDS)) + "].filter(x, x).size() <= 1",
             f"a task is exactly one of: {_ONE_OF}", lambda t: _kinds(t) <= 1),
        Rule(f"has(self.Parameters) || {_HAS_CHILD}",
             f"MissingParameters: Parameters is mandatory for this action (or make it a {' or '.join(CHILD_KINDS)} task)",
             lambda t: _kinds(t) >= 1, field="Parameters"),
        Rule("!has(self.Parameters) || has(self.InstanceCount)",
             "MissingInstanceCount: InstanceCount is mandatory for this action.",
             lambda t: t.Parameters is None or t.InstanceCount is not None, field="InstanceCount"),
        Rule("!has(self.Parameters) || has(self.Timeout)",
             "MissingTimeout: Timeout is mandatory for a command task.",
             lambda t: t.Parameters is None or t.Timeout is not None, field="Timeout"),
        Rule("has(self.Parameters) || !(" + " || ".join(f"has(self.{f})" for f in COMMAND_FIELDS) + ")",
             f"a {' or '.join(CHILD_KINDS)} task takes only its embedded spec, none of the command task's fields ("
             + ", ".join(COMMAND_FIELDS) + ")",
             lambda t: t.Parameters is not None or all(getattr(t, f) is None for f in COMMAND_FIELDS)),
        _rule(_opt("ClusterId", NAME_RE), f"InvalidClusterId: Specified parameter ClusterId is not valid. It {NAME_MSG}.",
              "ClusterId"),
        _rule(_keys("InputMapping", 1, 1024, OSS_RE),
              f"InvalidInputMapping.{{key}}: Specified parameter InputMapping.{{key}} is not valid. {OSS_MSG}",
              "InputMapping"),
        _rule(_values("InputMapping", LOCAL_RE),
              f"InvalidInputMapping.{{key}}.value: Specified parameter InputMapping.{{key}}.value is not valid. "
              f"{LOCAL_MSG}", "InputMapping"),
        _rule(_keys("OutputMapping", 1, 1024, LOCAL_RE),
              f"InvalidOutputMapping.{{key}}: Specified parameter OutputMapping.{{key}} is not valid. {LOCAL_MSG}",
              "OutputMapping"),
        _rule(_values("OutputMapping", OSS_RE),
              f"InvalidOutputMapping.{{key}}.value: Specified parameter OutputMapping.{{key}}.value is not valid. "
              f"{OSS_MSG}", "OutputMapping"),
        _rule(_keys("LogMapping", 1, 1024, LOCAL_RE),
              f"InvalidLogMapping.{{key}}: Specified parameter LogMapping.{{key}} is not valid. {LOCAL_MSG}",
              "LogMapping"),
        _rule(_values("LogMapping", OSS_FOLDER_RE),
              f"InvalidLogMapping.{{key}}.value: Specified parameter LogMapping.{{key}}.value is not valid. "
              f"{OSS_MSG} (a log destination is a folder)", "LogMapping"),
    )

    # BatchCompute's command task
    Parameters: ParametersSpec | None = Field(None, description="The command (a command task).")
    InstanceCount: Annotated[int, Field(ge=1, le=10000)] | None = Field(
        None, description="Instances of the command: an Indexed Job with completions = parallelism = InstanceCount.")
    MaxRetryCount: Annotated[int, Field(ge=0, le=100)] | None = Field(
        None, description="Retries per instance (backoffLimitPerIndex). Default 0.")
    Timeout: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Seconds one instance may run (activeDeadlineSeconds of its pod); at most the "
                          "operator's MaxInstanceTimeout quota.")
    InputMapping: Mapping16 | None = Field(None, description="oss:// path → local path, fetched before the command.")
    OutputMapping: Mapping16 | None = Field(None, description="Local path → oss:// path, uploaded when the command "
                                                              "ends: a directory recursively into a folder, a file "
                                                              "into a folder or to a file.")
    LogMapping: Mapping16 | None = Field(None, description="Local log path → oss:// folder, uploaded when the command "
                                                           "ends as {log name}.{JobId}.{TaskId}.{InstanceId}.")
    Mounts: MountsSpec | None = None
    ClusterId: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="An existing cluster. When set, it takes effect and AutoCluster is ignored "
                          "(BatchCompute: only one of them takes effect).")
    AutoCluster: AutoClusterSpec | None = None
    WriteSupport: bool | None = Field(None, description="Whether the task's mounts are writable. Accepted as BatchCompute has it; no effect on Kubernetes.")
    pod: PodCustomization | None = Field(None, description="lakejob: customisation of the command's pods.")
    resources: Annotated[dict[Literal["cpu", "memory"], Annotated[str, Field(max_length=64)]],
                         Field(max_length=2)] | None = Field(
        None, description="lakejob: what each instance's command container requests (cpu, memory), e.g. "
                          "{cpu: '3', memory: 12Gi}: what the scheduler and a Kueue queue (ClusterId) count.")
    # lakejob: a task that is another lakejob kind, run as a child custom resource
    sparkBatch: SparkBatchSpec | None = Field(None, description="A SparkBatch, run as a child SparkBatch resource.")
    flinkJarJob: FlinkJarJobSpec | None = Field(None, description="A FlinkJarJob, run as a child FlinkJarJob "
                                                                  "resource; the task finishes when the Flink job does.")

    @property
    def kind(self) -> str:
        """"command", or the field of the embedded kind ("sparkBatch", …)."""
        return next((f for f in CHILD_KINDS if getattr(self, f) is not None), "command")

    def child_spec(self) -> Model | None:
        return next((getattr(self, f) for f in CHILD_KINDS if getattr(self, f) is not None), None)


# ----------------------------------------------------------------------------- the DAG and the job


def _no_unknown(d: Any) -> bool:
    names = dag_graph.unknown_names(d.Dependencies or {}, d.Tasks)
    if names:
        raise ValueError(f"InvalidDependencies: Dependencies name tasks that are not in Tasks: {', '.join(names)}")
    return True


def _no_cycle(d: Dag) -> None:
    cycle = dag_graph.find_cycle(d.Dependencies or {})
    if cycle:
        raise ValueError(f"InvalidDependencies: Dependencies form a cycle: {' -> '.join(cycle)}")


_UNKNOWN_CEL = ("!has(self.Dependencies) || self.Dependencies.all(k, k in self.Tasks && "
                "self.Dependencies[k].all(t, t in self.Tasks))")


class Dag(Model):
    __rules__: ClassVar[tuple[Rule, ...]] = (
        _rule(_keys("Tasks", 1, 64, NAME_RE),
              f"InvalidTasks.{{key}}: Specified parameter Tasks.{{key}} is not valid. Its length must be in [1, 64], "
              f"and it {NAME_MSG}.", "Tasks"),
        Rule(_UNKNOWN_CEL, "InvalidDependencies: Dependencies name tasks that are not in Tasks", _no_unknown,
             field="Dependencies"),
    )
    Dependencies: Annotated[dict[str, Annotated[list[Str64], Field(max_length=MAX_TASKS)]],
                            Field(max_length=MAX_TASKS)] | None = Field(
        None, description="{task: [downstream tasks]}: each downstream task starts when all its upstream tasks "
                          "have finished. Unknown names and cycles are rejected.")
    Tasks: Annotated[dict[str, Task], Field(min_length=1, max_length=MAX_TASKS)] = Field(
        description="{name: task}, 1..16 tasks; names [a-zA-Z0-9-], 1..64, not starting with a digit.")

    @model_validator(mode="after")
    def _acyclic(self) -> Self:
        # Python only: CEL in a CRD has neither loops nor bindings, so no bounded rule can find a
        # cycle; the operator fails the DagJob with this message (the cycle printed) instead.
        _no_cycle(self)
        return self


class TopicSpec(Model):
    """Where the job's events go."""

    Name: Str256 | None = Field(None, description="Topic name (e.g. an MNS topic); the operator may map it to an "
                                                  "http(s) URL (LAKEJOB_NOTIFICATION_TOPICS).")
    Endpoint: Path1024 | None = Field(None, description="http(s) URL: every listed event is POSTed there as a "
                                                        "CloudEvent. Any other endpoint (e.g. MNS): Events only.")
    Events: Annotated[list[Literal[EVENTS]], Field(max_length=len(EVENTS))] | None = Field(  # type: ignore[valid-type]
        None, description="The events sent: OnJobWaiting, OnJobRunning, OnJobStopped, OnJobFinished, OnJobFailed, "
                          "the same OnTask… and OnInstance… ones, OnPriorityChange.")


class NotificationSpec(Model):
    """Notification of the job's events."""

    Topic: TopicSpec


class DagJobSpec(Model):
    """A BatchCompute DAG job: tasks (commands, Spark batches, Flink jobs) and their dependencies."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        _rule(_opt("Name", NAME_RE), f"InvalidName: Specified parameter Name is not valid. It {NAME_MSG}.", "Name"),
    )
    # Every field but these is immutable once the job exists (enforced at admission by lakejob.crds).
    __mutable__: ClassVar[frozenset[str]] = frozenset({"suspend", "Priority"})

    Name: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="BatchCompute's job name (the resource's own name follows Kubernetes' rules).")
    Description: Annotated[str, Field(max_length=1024)] | None = Field(None, description="Description of the job.")
    Priority: Annotated[int, Field(ge=0, le=1000)] = Field(
        description="0..1000, higher first: orders DagJobs waiting for a slot and picks the pods' PriorityClass. "
                    "May change while the job runs (OnPriorityChange).")
    Type: Literal["DAG"] = Field(description="DAG (the only type).")
    JobFailOnInstanceFail: bool = Field(
        description="true: the first instance that fails after its retries fails the job (running tasks stop). "
                    "false: a failed task's downstream tasks are skipped, the others run.")
    AutoRelease: bool | None = Field(None, description="Delete the DagJob once it has Finished. Default false.")
    Notification: NotificationSpec | None = None
    DAG: Dag = Field(description="The tasks and their dependencies.")
    suspend: bool | None = Field(None, description="lakejob: true stops the running tasks (state Stopped); "
                                                   "false again continues from where it stopped.")


# ----------------------------------------------------------------------------- status


class Counts(Model):
    """How many are in each state."""

    model_config = ConfigDict(extra="ignore")

    WaitingCount: int = Field(0, description="Waiting.")
    RunningCount: int = Field(0, description="Running.")
    StoppedCount: int = Field(0, description="Stopped (or skipped).")
    FinishedCount: int = Field(0, description="Finished.")
    FailedCount: int = Field(0, description="Failed.")


def parse_indexes(text: str | None) -> set[int]:
    """An index set as a Job and TaskStatus write it ("0-2,5") → {0, 1, 2, 5}: read by the
    DagJob's decide and the gateway's BatchCompute instances."""
    out: set[int] = set()
    for part in filter(None, (text or "").split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


class TaskStatus(Model):
    model_config = ConfigDict(extra="ignore")

    State: Literal[STATES] = Field("Waiting", description="Waiting, Running, Stopped, Finished, Failed.")  # type: ignore[valid-type]
    Type: str = Field("command", description="command, sparkBatch or flinkJarJob.")
    Run: int = Field(0, description="How many times the task was started (a stopped child CR restarts as run+1).")
    Child: str | None = Field(None, description="The Job or custom resource running the task.")
    ChildSeen: bool | None = Field(None, description="The child was seen: if it disappears now, someone deleted "
                                                     "it, and the run fails rather than silently running again.")
    StartTime: str | None = Field(None, description="When the task first started running (RFC 3339).")
    EndTime: str | None = Field(None, description="When it finished or failed (RFC 3339).")
    InstanceMetrics: Counts = Field(default_factory=Counts, description="Its instances by state.")
    FinishedIndexes: str | None = Field(None, description="Instances that finished, e.g. 0-2,4.")
    FailedIndexes: str | None = Field(None, description="Instances that failed after their retries.")
    Message: str | None = Field(None, description="Why the task is in its state, for people.")
    workload: WorkloadStatus | None = Field(
        None, description="A command task in a queue (its ClusterId, with Kueue): the Kueue Workload of its run "
                          "(docs/queues.md).")
    conditions: Conditions | None = Field(
        None, description="Admitted (Kueue's admission of the task's Workload), only for a task in a queue.")


class Delivery(Model):
    """Notifications sent to Topic.Endpoint."""

    model_config = ConfigDict(extra="ignore")

    delivered: int = Field(0, description="Delivered.")
    failed: int = Field(0, description="Given up on after their retries.")


class DagJobStatus(Model):
    """What BatchCompute's GetJob returns (State, times, task and instance metrics), per task too."""

    model_config = ConfigDict(extra="ignore")

    Id: str | None = Field(None, description="The resource's uid.")
    Name: str | None = Field(None, description="spec.Name.")
    State: Literal[STATES] | None = Field(None, description="Waiting, Running, Stopped, Finished, Failed.")  # type: ignore[valid-type]
    Priority: int | None = Field(None, description="spec.Priority as last acted on.")
    CreationTime: str | None = Field(None, description="When the job was created (RFC 3339).")
    StartTime: str | None = Field(None, description="When it first started running (RFC 3339).")
    EndTime: str | None = Field(None, description="When it finished or failed (RFC 3339).")
    TaskProgress: str | None = Field(None, description="Finished tasks / all tasks.")
    TaskMetrics: Counts | None = Field(None, description="The tasks by state.")
    InstanceMetrics: Counts | None = Field(None, description="All tasks' instances by state.")
    Tasks: dict[str, TaskStatus] | None = Field(None, description="{task name: its status}.")
    notifications: Delivery | None = Field(None, description="CloudEvents delivered to / failed at Topic.Endpoint.")
    reason: str | None = Field(None, description="Why the job is in its state (machine-readable).")
    message: str | None = Field(None, description="Why the job is in its state, for people (a failed job: each "
                                                  "task's state and why).")
    conditions: Conditions | None = Field(None, description=CONDITIONS_DESCRIPTION)
    outbox: list[OutboxEntry] | None = Field(None, description="Notifications not yet delivered, in order.")
    observedGeneration: int | None = Field(None, description="metadata.generation the operator acted on last.")
