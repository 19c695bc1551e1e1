"""FlinkJarJob: the DLI "create a Flink JAR job" request as a spec, DLI's Flink job statuses as status.

Field names are DLI's own, so DLI's example request body pasted under `spec:` is accepted. What we
add for Kubernetes is small and typed: `image`/`flink_version`, `jobManager`/`taskManager` pod
customisation (the block SparkBatch has), `suspend` (DLI's "stop job", and set back, its "run") and
`restartNonce` (a run with the spec unchanged). The spec can be edited (DLI's update): a new run. The CU arithmetic
(lakejob.sizing.flink_*) is checked at admission by CEL rules whose messages show the numbers, and
again here by the same rules in Python.

Used by lakejob.crds (schema), lakejob.controllers.flinkjarjob (parse + decide) and render.flink.
"""
from __future__ import annotations

import re
import shlex
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from lakejob import sizing
from lakejob.models.common import (
    CONDITIONS_DESCRIPTION,
    Conditions,
    Model,
    OutboxEntry,
    PodCustomization,
    WorkloadStatus,
)
from lakejob.models.rules import Rule

# DLI's Flink job statuses (the ones this operator can reach).
STATES = ("job_init", "job_submitting", "job_submit_fail", "job_running", "job_running_exception",
          "job_canceling", "job_cancel_success", "job_finish")
# job_running_exception is both "failing, a restart is coming" and "failed for good" in DLI, so the
# lifecycle `state` (what controllers.base's resync and the metrics read) tells them apart.
PHASES = ("Pending", "Running", "Restarting", "Failed", "Cancelling", "Cancelled", "Succeeded")
TERMINAL_PHASES = ("Failed", "Cancelled", "Succeeded")
HOUR_MS = 3_600_000

# A jar: a DLI package name (in the operator's package store) or an object store path (obs://,
# s3a://, s3://, s3n://, oss://), which the pods fetch (render.packages); or what Flink's class
# loader reads itself: an absolute path, local:// or file:// (in the image or a volume), http(s)://.
JAR_PATTERN = r"^((https?|file|local|obs|s3|s3a|s3n|oss)://[^\s]+|[^\s:]+)$"
# A dependency file is copied into the pods, so it is fetched or local to the image or a volume.
FILE_PATTERN = r"^((file|local|obs|s3|s3a|s3n|oss)://[^\s]+|[^\s:]+)$"
CHECKPOINT_PATTERN = r"^[a-z][a-z0-9+.-]*://[^\s]+$"
# runtime_config: Flink `key: value` lines; blank lines and # comments allowed.
RUNTIME_CONFIG_PATTERN = r"^([ \t]*(#[^\n]*)?(\n|$)|[ \t]*[A-Za-z0-9_.\-]+:[ \t][^\n]*(\n|$))*$"
# entrypoint_args: balanced quotes and no dangling backslash, so shlex.split (POSIX rules) cannot fail.
ARGS_PATTERN = r"""^([^'"\\]|\\[\s\S]|'[^']*'|"([^"\\]|\\[\s\S])*")*$"""
TAG_KEY_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
TAG_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"

# Keys of the Flink configuration the typed fields decide (sizing) or that wire the pods together.
# runtime_config may set any other key; these are rejected with the field to use instead.
OWNED_KEYS = {
    "taskmanager.numberOfTaskSlots": "tm_slot_num",
    "parallelism.default": "parallel_number",
    "jobmanager.memory.process.size": "manager_cu_number",
    "taskmanager.memory.process.size": "tm_cus",
    "taskmanager.cpu.cores": "tm_cus",
    "jobmanager.rpc.address": "(set by lakejob: the JobManager Service)",
    "jobmanager.rpc.port": "(set by lakejob: 6123)",
    "blob.server.port": "(set by lakejob: 6124)",
    "rest.port": "(set by lakejob: 8081)",
    # Where the pods listen and how they find each other; the operator polls the REST API there.
    "rest.address": "(set by lakejob: the JobManager Service)",
    "rest.bind-address": "(set by lakejob: 0.0.0.0)",
    "jobmanager.bind-host": "(set by lakejob: 0.0.0.0)",
    "taskmanager.bind-host": "(set by lakejob: 0.0.0.0)",
    "taskmanager.host": "(set by lakejob: the pod IP)",
    "taskmanager.rpc.port": "(set by lakejob: 6122)",
    "pipeline.classpaths": "entrypoint and dependency_jars",
    "execution.savepoint.path": "resume_checkpoint",
}


def _alternation(keys: list[list[str]]) -> str:
    """A regex matching exactly the dotted keys (as segment lists), common prefixes written once: the
    apiserver estimates a regex rule's cost by the pattern's length, and the DagJob CRD embeds this
    rule once per task."""
    heads: dict[str, list[list[str]]] = {}
    for key in keys:
        heads.setdefault(key[0], []).append(key[1:])
    parts = []
    # Longest first, so that no alternative stops at a prefix of a longer key.
    for head, tails in sorted(heads.items(), key=lambda h: -len(h[0])):
        rest = [t for t in tails if t]
        if not rest:
            parts.append(re.escape(head))
            continue
        sub = r"\." + _alternation(rest)
        # A key that is also the prefix of another (a.b and a.b.c): the rest is optional.
        parts.append(re.escape(head) + (f"({sub})?" if len(rest) < len(tails) else sub))
    return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"


_OWNED_ALTERNATIVES = "(" + _alternation([k.split(".") for k in OWNED_KEYS]) + ")"
_OWNED_RE = r"(^|\n)[ \t]*" + _OWNED_ALTERNATIVES + r"[ \t]*:"


def _owned_hint(key: str) -> str:
    use = OWNED_KEYS[key]
    return f"{key} {use}" if use.startswith("(") else f"{key} (use {use})"


def _explain_owned(s: FlinkJarJobSpec) -> str:
    """The first owned key runtime_config sets, as the CEL messageExpression names it."""
    m = re.search(_OWNED_RE, s.runtime_config or "")
    return f"runtime_config cannot set {_owned_hint(m.group(2))}" if m else "runtime_config cannot set a key lakejob sets"


def _owned_message_expression() -> str:
    """CEL: the first owned line's key (find the line, then the key in it; k8s CEL's regex find)."""
    key = f"self.runtime_config.find('{_cel(_OWNED_RE)}').find('{_cel(_OWNED_ALTERNATIVES)}')"
    hints = ", ".join(f"'{k}': '{_owned_hint(k)}'" for k in OWNED_KEYS)
    return f"'runtime_config cannot set ' + {{{hints}}}[{key}]"


def _cel(regex: str) -> str:
    """A regex as the body of a single-quoted CEL string literal."""
    return regex.replace("\\", "\\\\")


def _has(field: str, default: int) -> str:
    return f"(has(self.{field}) ? self.{field} : {default})"


# The CU numbers with DLI's defaults, as CEL: `_cu("{LEFT} >= {T}")` spells out every name
# (CRD validation has no cel.bind, so each use repeats its expression).
def _cu(expr: str) -> str:
    c = _has("cu_number", sizing.DEFAULT_CU_NUMBER)
    m = _has("manager_cu_number", sizing.DEFAULT_MANAGER_CU_NUMBER)
    t = _has("tm_cus", sizing.DEFAULT_TM_CUS)
    p = _has("parallel_number", sizing.DEFAULT_PARALLEL_NUMBER)
    left = f"({c} - {m})"
    slots = f"(has(self.tm_slot_num) ? self.tm_slot_num : ({p} * {t} + {left} - 1) / {left})"
    return expr.format(C=c, M=m, T=t, P=p, LEFT=left, SLOTS=slots, TMS=f"({left} / {t})", NEG=f"({m} - {c})")


_DIGITS = "['0','1','2','3','4','5','6','7','8','9']"


def _str(expr: str, digits: int) -> str:
    """CEL for the decimal text of a non-negative int below 10**digits.

    string(int) would do, but the apiserver's cost estimator cannot bound its length, and rejects a
    messageExpression that concatenates a few; digits picked from a literal list it can bound."""
    parts = [f"({expr} >= {10 ** i} ? {_DIGITS}[{expr} / {10 ** i} % 10] : '')" for i in range(digits - 1, 0, -1)]
    return "(" + " + ".join([*parts, f"{_DIGITS}[{expr} % 10]"]) + ")"


def _numbers(s: FlinkJarJobSpec) -> tuple[int, int, int, int]:
    return s.cu(), s.manager_cus(), s.tm_cu(), s.parallelism()


def _enough_cus(s: FlinkJarJobSpec) -> bool:
    cu, mgr, tm, _ = _numbers(s)
    return cu - mgr >= tm


def _enough_slots(s: FlinkJarJobSpec) -> bool:
    return not _enough_cus(s) or not sizing.flink_problems(*_numbers(s), s.tm_slot_num)


def _explain(s: FlinkJarJobSpec) -> str:
    return "; ".join(sizing.flink_problems(*_numbers(s), s.tm_slot_num))


class Tag(Model):
    """A DLI tag; it becomes a label on every object the job makes."""

    key: Annotated[str, Field(min_length=1, max_length=63, pattern=TAG_KEY_PATTERN)] = Field(
        description="Tag key: a label name without prefix (letters, digits, -_., at most 63).")
    value: Annotated[str, Field(max_length=63, pattern=TAG_VALUE_PATTERN)] = Field(
        description="Tag value: a label value (letters, digits, -_., at most 63).")


Jar = Annotated[str, Field(min_length=1, max_length=1024, pattern=JAR_PATTERN)]
DepFile = Annotated[str, Field(min_length=1, max_length=1024, pattern=FILE_PATTERN)]
Count = Annotated[int, Field(ge=1, le=10000)]


class FlinkJarJobSpec(Model):
    """A Flink JAR job, as DLI's "create a Flink JAR job" API defines it, run as a standalone
    application cluster (one JobManager pod, a TaskManager ReplicaSet)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(_cu("{LEFT} >= {T}"),
             "cu_number − manager_cu_number must leave at least tm_cus CUs for one TaskManager",
             _enough_cus, field="cu_number",
             message_expression=_cu(
                 f"'cu_number − manager_cu_number = ' + {_str('{C}', 5)} + ' − ' + {_str('{M}', 5)} + ' = ' + "
                 f"({{LEFT}} < 0 ? '-' + {_str('{NEG}', 5)} : {_str('{LEFT}', 5)}) + "
                 f"' CU(s) left for TaskManagers, fewer than one TaskManager of tm_cus = ' + {_str('{T}', 5)}"),
             explain=_explain),
        Rule(_cu("{LEFT} < {T} || {P} <= {TMS} * {SLOTS}"),
             "parallel_number exceeds the slots of the TaskManagers the CUs allow",
             _enough_slots, field="parallel_number",
             message_expression=_cu(
                 f"'parallel_number = ' + {_str('{P}', 5)} + ' needs ' + {_str('{P}', 5)} + ' slots, but "
                 f"(cu_number − manager_cu_number) / tm_cus = (' + {_str('{C}', 5)} + ' − ' + {_str('{M}', 5)} + "
                 f"') / ' + {_str('{T}', 5)} + ' = ' + {_str('{TMS}', 5)} + ' TaskManager(s) × ' + "
                 f"{_str('{SLOTS}', 5)} + ' slot(s) = ' + {_str('({TMS} * {SLOTS})', 9)} + ' slot(s)'"),
             explain=_explain),
        Rule("!(has(self.log_enabled) && self.log_enabled) || has(self.obs_bucket)",
             "obs_bucket is required when log_enabled is true", lambda s: not s.log_enabled or s.obs_bucket is not None,
             field="obs_bucket"),
        Rule("!has(self.resume_max_num) || self.resume_max_num == -1 || self.resume_max_num > 0",
             "resume_max_num must be -1 (unlimited) or greater than 0",
             lambda s: s.resume_max_num is None or s.resume_max_num == -1 or s.resume_max_num > 0,
             field="resume_max_num"),
        Rule("!has(self.tags) || self.tags.all(t, self.tags.exists_one(u, u.key == t.key))",
             "tags must have distinct keys",
             lambda s: len({t.key for t in s.tags or []}) == len(s.tags or []), field="tags"),
        Rule(f"!has(self.runtime_config) || !self.runtime_config.matches('{_cel(_OWNED_RE)}')",
             "runtime_config cannot set " + ", ".join(f"{k} (use {v})" if not v.startswith("(") else f"{k} {v}"
                                                     for k, v in OWNED_KEYS.items()),
             lambda s: s.runtime_config is None or re.search(_OWNED_RE, s.runtime_config) is None,
             field="runtime_config", message_expression=_owned_message_expression(), explain=_explain_owned),
    )
    # Every field but these is immutable once the job exists (enforced at admission by lakejob.crds).
    # A FlinkJarJob can be edited (DLI's update): a changed spec is a new run (controllers.flinkjarjob_decide).
    # checkpoint_path alone is fixed: it is the job's state, checked unique in the namespace at creation.
    __mutable__: ClassVar[frozenset[str]] = frozenset({
        "name", "desc", "queue_name", "cu_number", "manager_cu_number", "parallel_number", "tm_cus", "tm_slot_num",
        "log_enabled", "obs_bucket", "smn_topic", "main_class", "entrypoint", "entrypoint_args", "dependency_jars",
        "dependency_files", "restart_when_exception", "resume_checkpoint", "resume_max_num", "tags", "runtime_config",
        "flink_version", "image", "jobManager", "taskManager", "suspend", "restartNonce"})

    name: Annotated[str, Field(min_length=1, max_length=57)] = Field(
        description="Job name, 1 to 57 characters (DLI). Shown in status; Kubernetes names come from metadata.name.")
    desc: Annotated[str, Field(max_length=512)] | None = Field(None, description="Job description, at most 512 characters.")
    queue_name: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="DLI queue; becomes the lakejob.io/queue label of every pod.")
    cu_number: Count | None = Field(
        None, description="CUs of the whole job (1 CU = 1 vCPU + 4 GiB). Default 2.")
    manager_cu_number: Count | None = Field(None, description="CUs of the JobManager. Default 1.")
    parallel_number: Count | None = Field(None, description="Job parallelism (parallelism.default). Default 1.")
    tm_cus: Count | None = Field(None, description="CUs per TaskManager. Default 1.")
    tm_slot_num: Count | None = Field(
        None, description="Slots per TaskManager (taskmanager.numberOfTaskSlots). Default "
                          "(parallel_number × tm_cus) / (cu_number − manager_cu_number), rounded up.")
    log_enabled: bool | None = Field(None, description="Keep the job's logs in obs_bucket. Default false.")
    obs_bucket: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="Bucket for the job's logs; required when log_enabled is true. Recorded as the "
                          "lakejob.io/log-bucket annotation of every pod, for the cluster's log shipper.")
    smn_topic: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="Notify this topic when the job fails: an Event, and a CloudEvent POSTed to the URL the "
                          "operator's LAKEJOB_NOTIFICATION_TOPICS maps the topic to.")
    main_class: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        None, description="Job entry class (standalone-job --job-classname). Default: the jar manifest's Main-Class.")
    entrypoint: Jar | None = Field(
        None, description="The job's jar: a DLI package name (fetched from the operator's package store), an "
                          "obs://, s3a://, s3:// or oss:// path (fetched), or an absolute path, local://, file:// "
                          "or http(s)://.")
    entrypoint_args: Annotated[str, Field(max_length=4096, pattern=ARGS_PATTERN)] | None = Field(
        None, description="Arguments of the main class, one string split as a POSIX shell would "
                          "(quotes group, backslash escapes).")
    dependency_jars: Annotated[list[Jar], Field(max_length=64)] | None = Field(
        None, description="More jars on the job's classpath; same forms as entrypoint.")
    dependency_files: Annotated[list[DepFile], Field(max_length=64)] | None = Field(
        None, description="Files put into every pod and readable as the class path resource userData/<file name>: "
                          "DLI package names, obs://, s3a://, s3://, oss://, absolute paths, local:// or file://.")
    restart_when_exception: bool | None = Field(
        None, description="Redeploy the job when it fails. Default false.")
    resume_checkpoint: bool | None = Field(
        None, description="Resume from the newest completed checkpoint (--fromSavepoint): on a restart after a "
                          "failure (with restart_when_exception) and on a new run (after a stop, or a spec change).")
    resume_max_num: Annotated[int, Field(ge=-1, le=10000)] | None = Field(
        None, description="At most this many restarts in any sliding hour; -1 (default) is unlimited.")
    checkpoint_path: Annotated[str, Field(max_length=1024, pattern=CHECKPOINT_PATTERN)] | None = Field(
        None, description="Where checkpoints go (execution.checkpointing.dir), e.g. obs://bucket/ckpt or "
                          "file:///data/ckpt. Unique per namespace: a second job with the same path is rejected.")
    tags: Annotated[list[Tag], Field(max_length=20)] | None = Field(
        None, description="Tags; each becomes a label (key: value) of every object the job makes.")
    runtime_config: Annotated[str, Field(max_length=16384, pattern=RUNTIME_CONFIG_PATTERN)] | None = Field(
        None, description="Flink configuration as `key: value` lines, merged over lakejob's (except the keys the "
                          "typed fields set).")
    flink_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", max_length=16)] | None = Field(
        None, description="Flink version; picks the operator's image for it. Default: the operator's default version.")
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        None, description="Image to run instead of the operator's for flink_version (the official flink image "
                          "layout: /opt/flink, docker-entrypoint.sh). flink_version still says which configuration "
                          "file it reads (config.yaml from 2.0, flink-conf.yaml before).")
    jobManager: PodCustomization | None = Field(None, description="Customisation of the JobManager pod.")
    taskManager: PodCustomization | None = Field(None, description="Customisation of the TaskManager pods.")
    suspend: bool | None = Field(
        None, description="Stop the job (DLI's stop): job_canceling, then job_cancel_success with every pod removed. "
                          "Set back to false to run it again (DLI's run), from the newest checkpoint if "
                          "resume_checkpoint is true.")
    restartNonce: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Change it to run the job again with an unchanged spec (DLI's run of a failed or finished "
                          "job). Any change to the spec does the same: an ended job starts a new run; a running one "
                          "is cancelled and run again with the new spec.")

    def cu(self) -> int:
        return sizing.DEFAULT_CU_NUMBER if self.cu_number is None else self.cu_number

    def manager_cus(self) -> int:
        return sizing.DEFAULT_MANAGER_CU_NUMBER if self.manager_cu_number is None else self.manager_cu_number

    def tm_cu(self) -> int:
        return sizing.DEFAULT_TM_CUS if self.tm_cus is None else self.tm_cus

    def parallelism(self) -> int:
        return sizing.DEFAULT_PARALLEL_NUMBER if self.parallel_number is None else self.parallel_number

    def args(self) -> list[str]:
        """entrypoint_args split as a shell would ("-a 'b c'" → ["-a", "b c"])."""
        return shlex.split(self.entrypoint_args or "")


class PodResources(Model):
    """One pod's size (a CU is 1 CPU and 4 GiB unless the operator says otherwise)."""

    cus: int = Field(description="CUs of the pod.")
    cpu: str = Field(description="Its CPU request (a Kubernetes quantity).")
    memory: str = Field(description="Its memory request and limit (a Kubernetes quantity).")


class TaskManagerResources(PodResources):
    """One TaskManager's size, and how many there are."""

    replicas: int = Field(description="TaskManagers (the ReplicaSet's replicas).")
    slots: int = Field(description="Task slots of each TaskManager.")


class FlinkResources(Model):
    """The resolved cluster: what the CUs bought."""

    parallelism: int = Field(description="The job's parallelism (parallel_number).")
    jobManager: PodResources = Field(description="The JobManager pod.")
    taskManager: TaskManagerResources = Field(description="Each TaskManager pod, and their number.")
    unusedCUs: int = Field(0, description="CUs of cu_number no pod uses (they cannot make a whole TaskManager).")


class TaskManagerCounts(Model):
    """The current attempt's TaskManager pods, by phase."""

    pending: int = Field(0, description="TaskManager pods not running yet.")
    running: int = Field(0, description="TaskManager pods running.")
    failed: int = Field(0, description="TaskManager pods that failed.")


class FlinkJarJobStatus(Model):
    """DLI's job object (job_id, status_name, status_desc) plus Kubernetes' conditions and the restarts."""

    # Status is ours, not the user's: tolerate fields a newer or older operator wrote.
    model_config = ConfigDict(extra="ignore")

    job_id: str | None = Field(None, description="Flink JobID of the current attempt (32 hex digits).")
    name: str | None = Field(None, description="spec.name.")
    status_name: Literal[STATES] | None = Field(  # type: ignore[valid-type]
        None, description="DLI status: job_init, job_submitting, job_submit_fail, job_running, "
                          "job_running_exception, job_canceling, job_cancel_success, job_finish.")
    status_desc: str | None = Field(None, description="Cause and suggestion for an abnormal status.")
    state: Literal[PHASES] | None = Field(  # type: ignore[valid-type]
        None, description="Lifecycle phase: Pending, Running, Restarting (a restart is coming), Failed, Cancelling, "
                          "Cancelled, Succeeded. Failed, Cancelled and Succeeded are final.")
    reason: str | None = Field(None, description="Why the job is in its status (machine-readable).")
    queue_name: str | None = Field(None, description="spec.queue_name.")
    attempt: int | None = Field(None, description="Current deployment, from 1; each restart adds one.")
    jobManagerPod: str | None = Field(None, description="Name of the current attempt's JobManager pod.")
    flinkState: str | None = Field(None, description="The job's state as the JobManager's REST API reported it "
                                                     "last (RUNNING, RESTARTING, FAILED, …).")
    restarts: int | None = Field(None, description="Restarts made so far.")
    restart_times: list[int] | None = Field(
        None, description="When the restarts of the last hour happened, ms since the epoch (what resume_max_num "
                          "counts).")
    nextRestartTime: int | None = Field(None, description="When the pending restart happens, ms since the epoch.")
    savepointPath: str | None = Field(None, description="Checkpoint the current attempt resumed from.")
    last_checkpoint: str | None = Field(None, description="Newest completed checkpoint the REST API reported.")
    create_time: int | None = Field(None, description="Creation time, ms since the epoch.")
    update_time: int | None = Field(None, description="Last status change, ms since the epoch.")
    start_time: int | None = Field(None, description="When the current attempt's JobManager was created, ms.")
    resources: FlinkResources | None = None
    taskManagers: TaskManagerCounts | None = None
    workload: WorkloadStatus | None = Field(
        None, description="The Kueue Workload of the current run, for a job whose queue_name goes through Kueue "
                          "(docs/queues.md).")
    conditions: Conditions | None = Field(None, description=CONDITIONS_DESCRIPTION)
    outbox: list[OutboxEntry] | None = Field(None, description="Notifications not yet delivered, in order.")
    observedGeneration: int | None = Field(None, description="metadata.generation the operator acted on last.")
    runGeneration: int | None = Field(
        None, description="The spec's generation the current run started from (or, once stopped, the last one acted "
                          "on); a newer spec starts a new run.")
