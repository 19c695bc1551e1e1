"""Pieces every kind's model shares: the base model, memory strings, pod customisation, conditions.

The models in this package are the single source of truth: lakejob.crds turns them into the
CRD schemas (descriptions become `kubectl explain` text; `cel` rules become
`x-kubernetes-validations`), and the controllers parse every object through them again, so an
object that slipped past admission (an older CRD, a disabled rule) is still rejected by the
operator with the same message.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from lakejob import sizing
from lakejob.models.rules import Rule, run_rules

# Bounds on free-form lists/strings keep the CEL cost estimate of the immutability rules within the
# apiserver's budget (it rejects a CRD whose rules could cost too much on a worst-case object).
MAX_LIST = 256
MAX_STR = 4096
MAX_MAP = 256


def describe_errors(error: ValidationError, prefix: str = "") -> str:
    """Every broken rule of a validation, each naming its field (`prefix` + its path): what the
    operator writes into a status and the gateway answers a bad request with."""
    parts = []
    for err in error.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{prefix}{loc}: {msg}" if loc else f"{prefix.rstrip('.') or 'body'}: {msg}")
    return "; ".join(parts)


def _rules_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Put a model's `__rules__` into its JSON schema as x-kubernetes-validations (pydantic hook)."""
    rules = [r.schema() for r in cls.__dict__.get("__rules__", ())]
    if rules:
        schema.setdefault("x-kubernetes-validations", []).extend(rules)


class Model(BaseModel):
    """Base for every spec/status model: unknown fields are errors, as the CRD's structural schema
    makes them, and the model's `__rules__` are both its CEL rules and its Python checks."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_rules_schema)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        run_rules(self)
        return self


def _memory(value: object) -> object:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        sizing.parse_memory_mib(value)  # type: ignore[arg-type]  # says "must include the unit" for 2048
    return value


# A Livy/DLI memory string ("2G", "2048 MB"). The pattern and the CEL rule go into the CRD; the
# Python check runs first so that the operator gives the same "must include the unit" message.
Memory = Annotated[
    str,
    BeforeValidator(_memory),
    Field(max_length=32, json_schema_extra={"pattern": sizing.MEMORY_PATTERN, "x-kubernetes-validations": [{
        "rule": "!self.matches('^\\\\s*[0-9]+\\\\s*$')",
        "message": "must include the unit (for example 2048M, 2G or 2 GB)"}]}),
]

Str = Annotated[str, Field(max_length=MAX_STR)]
StrList = Annotated[list[Str], Field(max_length=MAX_LIST)]
StrMap = Annotated[dict[str, Str], Field(max_length=MAX_MAP)]


# ----------------------------------------------------------------------------- pod customisation


class KeyRef(Model):
    """A key of a Secret or ConfigMap in the object's namespace."""

    name: Str = Field(description="Name of the Secret or ConfigMap.")
    key: Str = Field(description="The key whose value is taken.")
    optional: bool | None = Field(None, description="true: a missing object or key is no error (the variable "
                                                    "is left unset).")


class FieldRef(Model):
    """A field of the pod (the Downward API)."""

    fieldPath: Str = Field(description="e.g. metadata.name, metadata.namespace, status.podIP, spec.nodeName.")


class EnvVarSource(Model):
    """Where the value comes from (exactly one)."""

    secretKeyRef: KeyRef | None = Field(None, description="A key of a Secret.")
    configMapKeyRef: KeyRef | None = Field(None, description="A key of a ConfigMap.")
    fieldRef: FieldRef | None = Field(None, description="A field of the pod.")


class EnvVar(Model):
    """An environment variable of the main container, as a Kubernetes container has it."""

    name: Annotated[str, Field(min_length=1, max_length=253)] = Field(description="Variable name.")
    value: Str | None = Field(None, description="The value (unless valueFrom is given).")
    valueFrom: EnvVarSource | None = Field(None, description="Take the value from a Secret, ConfigMap or pod field.")


class Toleration(Model):
    """A Kubernetes toleration: the pod may run on nodes with a matching taint."""

    key: Str | None = Field(None, description="Taint key; empty with operator Exists: every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Equal (default): key and value match; "
                                                                          "Exists: any value.")
    value: Str | None = Field(None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty: every effect.")
    tolerationSeconds: int | None = Field(None, description="With effect NoExecute: how long the pod stays once the "
                                                            "taint appears; unset: for ever.")


class ConfigMapVolume(Model):
    """A ConfigMap's keys as files."""

    name: Str = Field(description="Name of the ConfigMap.")
    optional: bool | None = Field(None, description="true: a missing ConfigMap is an empty volume.")


class SecretVolume(Model):
    """A Secret's keys as files."""

    secretName: Str = Field(description="Name of the Secret.")
    optional: bool | None = Field(None, description="true: a missing Secret is an empty volume.")


class EmptyDirVolume(Model):
    """A scratch directory that lives as long as the pod."""

    medium: Literal["", "Memory"] | None = Field(None, description="\"\" (default): the node's disk; Memory: tmpfs.")
    sizeLimit: Annotated[str, Field(max_length=32)] | None = Field(None, description="Most it may hold, a "
                                                                                     "Kubernetes quantity (e.g. 1Gi).")


class PVCVolume(Model):
    """An existing PersistentVolumeClaim in the object's namespace."""

    claimName: Str = Field(description="Name of the PersistentVolumeClaim.")
    readOnly: bool | None = Field(None, description="Mount it read-only.")


class HostPathVolume(Model):
    """Refused unless the operator's policy allows hostPath (lakejob.policy)."""

    path: Str = Field(description="Path on the node.")
    type: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Kubernetes hostPath type: Directory, DirectoryOrCreate, File, FileOrCreate, Socket, "
                          "CharDevice, BlockDevice; empty: no check.")


class Volume(Model):
    """A volume of one of the common kinds (exactly one source)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("[has(self.configMap), has(self.secret), has(self.emptyDir), "
             "has(self.persistentVolumeClaim), has(self.hostPath)].filter(x, x).size() == 1",
             "a volume needs exactly one of configMap, secret, emptyDir, persistentVolumeClaim, hostPath",
             lambda v: sum(x is not None for x in (v.configMap, v.secret, v.emptyDir, v.persistentVolumeClaim,
                                                  v.hostPath)) == 1),
    )
    name: Annotated[str, Field(min_length=1, max_length=63)] = Field(description="Volume name, for volumeMounts.")
    configMap: ConfigMapVolume | None = None
    secret: SecretVolume | None = None
    emptyDir: EmptyDirVolume | None = None
    persistentVolumeClaim: PVCVolume | None = None
    hostPath: HostPathVolume | None = None


class VolumeMount(Model):
    """Where the main container sees a volume."""

    name: Annotated[str, Field(min_length=1, max_length=63)] = Field(description="Name of a volume of this block.")
    mountPath: Str = Field(description="Absolute path in the container.")
    readOnly: bool | None = Field(None, description="Mount it read-only.")
    subPath: Str | None = Field(None, description="Mount this path inside the volume instead of its root.")


RESERVED_LABEL_PREFIXES = ("lakejob.io/", "spark-")

# A Linux capability as Kubernetes spells it (NET_ADMIN, SYS_PTRACE: no CAP_ prefix).
CAPABILITY_PATTERN = r"^[A-Z][A-Z0-9_]*$"


class Capabilities(Model):
    """Linux capabilities of the main container."""

    add: Annotated[list[Annotated[str, Field(max_length=64, pattern=CAPABILITY_PATTERN)]], Field(max_length=32)] | None = \
        Field(None, description="Capabilities added to the main container (every other one is dropped).")


class ContainerSecurity(Model):
    """The two container securityContext settings a user may ask for; lakejob sets the rest (non-root,
    no privilege escalation, every capability dropped). Each is refused unless the operator's policy
    allows it (LAKEJOB_POD_POLICY_ALLOW: privileged, capabilities)."""

    privileged: bool | None = Field(None, description="Run the main container privileged.")
    capabilities: Capabilities | None = None


class PodCustomization(Model):
    """What users of every Spark operator ask to set on the driver or executor pods.

    serviceAccountName, hostPath volumes, the host namespaces and securityContext are refused
    unless the operator's policy allows them (lakejob.policy, LAKEJOB_POD_POLICY_ALLOW)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("!has(self.labels) || self.labels.all(k, !k.startsWith('lakejob.io/') && !k.startsWith('spark-'))",
             "labels under lakejob.io/ and spark- are set by lakejob and Spark, not by users",
             lambda p: not any(k.startswith(RESERVED_LABEL_PREFIXES) for k in (p.labels or {})), field="labels"),
    )

    labels: StrMap | None = Field(None, description="Extra labels (keys under lakejob.io/ and spark- are reserved).")
    annotations: StrMap | None = Field(None, description="Extra annotations.")
    nodeSelector: StrMap | None = Field(None, description="Node labels the pod must run on (added to the operator's "
                                                          "workload node selector, winning over it).")
    tolerations: Annotated[list[Toleration], Field(max_length=64)] | None = Field(
        None, description="Taints the pod tolerates (before the operator's workload tolerations).")
    env: Annotated[list[EnvVar], Field(max_length=MAX_LIST)] | None = Field(
        None, description="Extra environment variables of the main container.")
    volumes: Annotated[list[Volume], Field(max_length=64)] | None = Field(
        None, description="Extra volumes of the pod (mount them with volumeMounts).")
    volumeMounts: Annotated[list[VolumeMount], Field(max_length=64)] | None = Field(
        None, description="Where the main container mounts the volumes.")
    serviceAccountName: Annotated[str, Field(max_length=253)] | None = Field(
        None, description="Run the pod as this existing ServiceAccount instead of the one lakejob creates. "
                          "Refused unless the operator's policy allows serviceAccountName.")
    hostNetwork: bool | None = Field(None, description="Use the node's network namespace. Refused unless the "
                                                       "operator's policy allows hostNetwork.")
    hostPID: bool | None = Field(None, description="Use the node's process namespace. Refused unless the operator's "
                                                   "policy allows hostPID.")
    hostIPC: bool | None = Field(None, description="Use the node's IPC namespace. Refused unless the operator's policy "
                                                   "allows hostIPC.")
    securityContext: ContainerSecurity | None = Field(
        None, description="privileged and added capabilities of the main container. Refused unless the operator's "
                          "policy allows privileged / capabilities.")
    priorityClassName: Annotated[str, Field(max_length=253)] | None = Field(
        None, description="PriorityClass of the pod (a DagJob sets its own from Priority unless this is given).")
    schedulerName: Annotated[str, Field(max_length=253)] | None = Field(
        None, description="Scheduler for the pod, e.g. volcano or yunikorn for gang scheduling.")


# ----------------------------------------------------------------------------- status pieces


class Condition(Model):
    """A Kubernetes condition. Every kind has Ready, and at most one of Complete, Failed and
    Suspended True (docs/<kind>.md, Conditions), for `kubectl wait --for=condition=…`."""

    type: str = Field(description="Ready (running; a SparkBatch and a DagJob also once ended well), Complete (ended well), Failed (ended badly), "
                                  "Suspended (stopped by spec.suspend), Admitted (a queued job: whether Kueue admitted it), Reconciled (False: the operator's last pass "
                                  "failed), RestReachable (SparkSession: its driver's REST API answers).")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Why, machine-readable: the object's status.reason when this was set.")
    message: str = Field("", description="Why, for people (empty on a False Complete, Failed or Suspended).")
    lastTransitionTime: str | None = Field(None, description="When status last changed (RFC 3339).")
    observedGeneration: int | None = Field(None, description="metadata.generation the operator had seen when it set "
                                                             "this condition.")


# The conditions list of every status: a map keyed by type (one condition per type), so that
# server-side apply and strategic merge tools treat it as Kubernetes' own conditions.
Conditions = Annotated[list[Condition], Field(json_schema_extra={"x-kubernetes-list-type": "map",
                                                                "x-kubernetes-list-map-keys": ["type"]})]
CONDITIONS_DESCRIPTION = ("The latest observations of the object's state, one per type: wait on them with "
                          "`kubectl wait --for=condition=Complete` (or Failed, Suspended, Ready).")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[Condition] | None, type_: str, status: bool | None, reason: str,
                  message: str, generation: int | None, now: str) -> list[Condition]:
    """Return `conditions` with `type_` set; lastTransitionTime moves only when the status flips."""
    value: Literal["True", "False", "Unknown"] = "Unknown" if status is None else ("True" if status else "False")
    out: list[Condition] = []
    found = False
    for c in conditions or []:
        if c.type == type_:
            found = True
            c = Condition(type=type_, status=value, reason=reason, message=message, observedGeneration=generation,
                          lastTransitionTime=now if c.status != value else (c.lastTransitionTime or now))
        out.append(c)
    if not found:
        out.append(Condition(type=type_, status=value, reason=reason, message=message,
                             observedGeneration=generation, lastTransitionTime=now))
    return out


DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"


def parse_duration(value: str) -> int:
    """Seconds in a duration such as "3h", "90s" or "1h30m" (the CRD's pattern checks the form)."""
    m = re.fullmatch(DURATION_PATTERN, value)
    if not value or m is None:
        raise ValueError(f"{value!r} is not a duration such as 3h, 10m, 90s or 1h30m")
    h, mi, s = (int(g[:-1]) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2, max_length=32), AfterValidator(_duration)]


def label_value(value: str) -> str:
    """A string made safe as a label value (≤ 63, alphanumeric ends): queue names such as ' test'."""
    v = re.sub(r"[^A-Za-z0-9._-]+", "-", value.strip())[:63].strip("-._")
    return v


class OutboxEntry(Model):
    """A notification written to status before it is sent (controllers.base's outbox): whichever
    operator runs next delivers it, with the same CloudEvent id, until the endpoint took it."""

    model_config = ConfigDict(extra="ignore")

    url: str = Field(description="Where the notification is POSTed.")
    event: str = Field(description="The CloudEvent, as JSON.")


class WorkloadStatus(Model):
    """A queued job's Kueue Workload (docs/queues.md): present only for a job that goes through a queue."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="The Workload (kueue.x-k8s.io/v1beta2) the operator made for this job.")
    localQueue: str = Field(description="The LocalQueue it waits in: the job's queue name by the documented rule.")
    clusterQueue: str | None = Field(None, description="The ClusterQueue that admitted it, once admitted.")
    admitted: bool | None = Field(None, description="Whether the job holds its admission now.")
    preemptions: int | None = Field(None, description="How often Kueue preempted it (not counted as failures or "
                                                      "retries).")
