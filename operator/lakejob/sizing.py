"""Sizing for every kind: memory strings, the DLI sc_type table, Spark's memory
overhead, (later) Flink CUs. Nothing else in lakejob parses a memory string.
Called by the models (validation) and the render functions."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CUSTOMIZED",
    "DEFAULT_SC_TYPE",
    "JVM_OVERHEAD_FACTOR",
    "MEMORY_PATTERN",
    "MIN_OVERHEAD_MIB",
    "PYTHON_OVERHEAD_FACTOR",
    "SC_TYPES",
    "MemoryFormatError",
    "ScType",
    "SparkSizing",
    "k8s_cpu",
    "k8s_quantity_mib",
    "overhead_mib",
    "parse_memory_mib",
    "parse_spark_mib",
    "resolve_spark",
    "spark_memory",
    "CU_MEMORY_MIB",
    "CU_MILLICPU",
    "DEFAULT_CU_NUMBER",
    "DEFAULT_MANAGER_CU_NUMBER",
    "DEFAULT_PARALLEL_NUMBER",
    "DEFAULT_TM_CUS",
    "FlinkSizing",
    "flink_default_slots",
    "flink_problems",
    "k8s_millicpu",
    "resolve_flink",
]

# ---------------------------------------------------------------------------
# Memory strings
# ---------------------------------------------------------------------------

# The same string is the CRD's OpenAPI `pattern`, which the API server runs
# with Go's RE2, and the Python check below, so it sticks to syntax both
# engines read the same way: no lookarounds, no backreferences, no inline
# flags (an OpenAPI pattern cannot carry a case-insensitive flag, hence the
# [kKmM...] classes), and explicit ^...$ because RE2 in the API server does a
# search, not a full match. [0-9] rather than \d because Python's \d also
# matches non-ASCII digits. Livy and DLI accept "2G", "2048m" and "2 GB", so
# one optional run of spaces is allowed between number and unit, but not
# inside the unit ("2 G B") and no binary-prefix spelling ("2GiB").
# The two groups (number, unit letter) are harmless to RE2 and let the parser
# below use this very pattern, so the CRD and Python cannot drift apart.
MEMORY_PATTERN: str = r"^\s*([0-9]+)\s*([kKmMgGtT])[bB]?\s*$"

_MEMORY_RE = re.compile(MEMORY_PATTERN)
_BARE_INTEGER_RE = re.compile(r"\s*[0-9]+\s*")

# MiB per unit letter. Kibibytes are handled separately (they divide).
_MIB_PER_UNIT: dict[str, int] = {"m": 1, "g": 1024, "t": 1024 * 1024}


class MemoryFormatError(ValueError):
    """A memory string that Livy/DLI would not accept, with the field named."""


def _missing_unit(field: str, value: object) -> str:
    return f"{field}: {value!r} must include the unit (for example 2048M, 2G or 2 GB)"


def _not_memory(field: str, value: object) -> str:
    return (
        f"{field}: {value!r} is not a memory size (an integer followed by "
        "k, m, g or t, optionally with b: 512m, 2G, 2 GB)"
    )


def parse_memory_mib(value: str, *, field: str = "memory") -> int:
    """Parse a Livy/DLI memory string ("2G", "2048m", "2 GB") into MiB.

    A bare number is refused: DLI requires the unit, and a bare number is
    ambiguous (Spark reads MiB, JVM -Xmx and most other tools read bytes), so
    asking for the unit avoids a job sized a million times off.
    """
    # The models hand us strings, but YAML turns `driverMemory: 2048` into an
    # int; say what is wrong instead of failing with an AttributeError. The
    # check goes through `object` so it stays reachable to mypy.
    raw: object = value
    if not isinstance(raw, str):
        if isinstance(raw, int) and not isinstance(raw, bool):
            raise MemoryFormatError(_missing_unit(field, raw))
        raise MemoryFormatError(_not_memory(field, raw))
    match = _MEMORY_RE.fullmatch(raw)
    if match is None:
        if _BARE_INTEGER_RE.fullmatch(raw):
            raise MemoryFormatError(_missing_unit(field, raw))
        raise MemoryFormatError(_not_memory(field, raw))
    number = int(match.group(1))
    unit = match.group(2).lower()
    if unit == "k":
        # Spark's JavaUtils.byteStringAsMb truncates, so 800k is 0 MiB there
        # too; rounding up here would size pods differently from Spark.
        return number // 1024
    return number * _MIB_PER_UNIT[unit]


def parse_spark_mib(value: str, field: str) -> int:
    """Parse a Spark MiB-typed conf value (spark.*.memoryOverhead).

    Unlike driverMemory, Spark declares these confs with a default unit of
    MiB, so a bare integer is MiB; anything with a unit goes through
    parse_memory_mib so there is still one memory-string parser.
    """
    if isinstance(value, str) and _BARE_INTEGER_RE.fullmatch(value):
        return int(value)
    return parse_memory_mib(value, field=field)


def spark_memory(mib: int) -> str:
    """Spark conf form (spark.driver.memory etc.): always MiB, lower-case."""
    return f"{mib}m"


def k8s_quantity_mib(mib: int) -> str:
    """Kubernetes quantity form; Mi keeps it exact (M would be 10^6 bytes)."""
    return f"{mib}Mi"


def k8s_cpu(cores: int) -> str:
    """Kubernetes CPU quantity for a whole number of cores."""
    return str(cores)


# A CPU quantity as Spark's spark.kubernetes.{driver,executor}.request.cores take it (RE2 and Python
# alike): whole or decimal cores, or millicores; ZERO_CPU is the same shape with no non-zero digit.
CPU_QUANTITY = r"^([0-9]+m|[0-9]+(\.[0-9]+)?|\.[0-9]+)$"
ZERO_CPU = r"^[0.]+m?$"


def request_cores_key(side: str) -> str:
    return f"spark.kubernetes.{side}.request.cores"


def is_cpu_quantity(value: str) -> bool:
    return re.match(CPU_QUANTITY, value) is not None and re.match(ZERO_CPU, value) is None


def request_cpu(conf: Mapping[str, str], side: str, cores: int, default: str = "") -> str:
    """The pod's CPU request: conf's request.cores when set (Spark's own key, so a job can ask for
    250m while Spark still plans with whole cores), else `default` (the operator's setting), else
    the whole cores."""
    value = conf.get(request_cores_key(side))
    if value is None:
        return default or k8s_cpu(cores)
    if not is_cpu_quantity(value):
        raise ValueError(f"conf[{request_cores_key(side)}]: {value} is not a Kubernetes CPU quantity greater than 0 "
                         f"(for example 250m or 0.5)")
    return value


# ---------------------------------------------------------------------------
# Spark memory overhead
# ---------------------------------------------------------------------------

# Spark's own constants (ResourceProfile.MEMORY_OVERHEAD_MIN_MIB and the
# defaults of spark.{driver,executor}.memoryOverheadFactor, with 0.4 for
# non-JVM workloads on Kubernetes), so our pod sizes equal the ones Spark
# itself requests.
MIN_OVERHEAD_MIB = 384
JVM_OVERHEAD_FACTOR = 0.1
PYTHON_OVERHEAD_FACTOR = 0.4


def overhead_mib(memory_mib: int, factor: float) -> int:
    """Spark's default overhead: max((factor * memory).toInt, 384).

    Computed in floating point and truncated exactly as Spark does it, even
    where that is a MiB short of the decimal answer, so that the numbers
    agree with what Spark puts on its pods.
    """
    return max(int(factor * memory_mib), MIN_OVERHEAD_MIB)


# ---------------------------------------------------------------------------
# DLI sc_type table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScType:
    """One row of DLI's Table 3 (resource specification of a batch job)."""

    driver_cores: int
    executor_cores: int
    driver_memory: str
    executor_memory: str
    num_executors: int


SC_TYPES: dict[str, ScType] = {
    "A": ScType(2, 1, "7G", "4G", 6),
    "B": ScType(2, 2, "7G", "8G", 7),
    "C": ScType(4, 2, "15G", "8G", 14),
}
DEFAULT_SC_TYPE = "A"
# What DLI reports as sc_type once any individual resource is overridden.
CUSTOMIZED = "CUSTOMIZED"


@dataclass(frozen=True)
class SparkSizing:
    """Resolved Spark resources: what the job asks for and what its pods need."""

    sc_type: str  # "A" | "B" | "C" | "CUSTOMIZED"
    driver_cores: int
    driver_memory_mib: int
    driver_overhead_mib: int
    executor_cores: int
    executor_memory_mib: int
    executor_overhead_mib: int
    num_executors: int

    @property
    def driver_pod_memory_mib(self) -> int:
        """The driver container's memory request/limit: heap plus overhead."""
        return self.driver_memory_mib + self.driver_overhead_mib

    @property
    def executor_pod_memory_mib(self) -> int:
        """Each executor container's memory request/limit: heap plus overhead."""
        return self.executor_memory_mib + self.executor_overhead_mib


# Pre-3.3 Kubernetes-only name; Spark still reads it when the per-side key
# is absent.
_SHARED_FACTOR_KEY = "spark.kubernetes.memoryOverheadFactor"


def _conf_factor(conf: Mapping[str, str], key: str, default: float) -> float:
    """The overhead factor for one side: per-side key, then the shared one."""
    for candidate in (key, _SHARED_FACTOR_KEY):
        if candidate not in conf:
            continue
        raw = conf[candidate]
        try:
            factor = float(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"{candidate}: {raw!r} is not a number (for example 0.1)"
            ) from None
        # Spark refuses factors that are not > 0; nan/inf would also give
        # nonsense pod sizes, so refuse them here rather than at spark-submit.
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(
                f"{candidate}: {raw!r} must be a number greater than 0 (for example 0.1)"
            )
        return factor
    return default


def _side_overhead(
    conf: Mapping[str, str], side: str, memory_mib: int, default_factor: float
) -> int:
    explicit_key = f"spark.{side}.memoryOverhead"
    if explicit_key in conf:
        # An explicit overhead replaces the computed one outright: Spark
        # applies no 384 MiB floor to it.
        return parse_spark_mib(conf[explicit_key], explicit_key)
    factor = _conf_factor(conf, f"spark.{side}.memoryOverheadFactor", default_factor)
    return overhead_mib(memory_mib, factor)


def resolve_spark(
    *,
    sc_type: str | None,
    driver_cores: int | None,
    driver_memory: str | None,
    executor_cores: int | None,
    executor_memory: str | None,
    num_executors: int | None,
    conf: Mapping[str, str],
    python: bool,
) -> SparkSizing:
    """Resolve a Spark job's resources the way DLI does, plus Spark's overhead.

    The sc_type row (default A) gives every value; each non-None override
    replaces exactly one. spark.executor.instances is deliberately not
    consulted here.
    """
    letter = sc_type or DEFAULT_SC_TYPE
    row = SC_TYPES.get(letter)
    if row is None:
        allowed = ", ".join(sorted(SC_TYPES))
        raise ValueError(f"sc_type: {letter!r} is not one of {allowed}")

    overrides = (driver_cores, driver_memory, executor_cores, executor_memory, num_executors)
    customized = any(value is not None for value in overrides)

    driver_memory_mib = parse_memory_mib(
        row.driver_memory if driver_memory is None else driver_memory, field="driverMemory"
    )
    executor_memory_mib = parse_memory_mib(
        row.executor_memory if executor_memory is None else executor_memory,
        field="executorMemory",
    )
    default_factor = PYTHON_OVERHEAD_FACTOR if python else JVM_OVERHEAD_FACTOR

    return SparkSizing(
        sc_type=CUSTOMIZED if customized else letter,
        driver_cores=row.driver_cores if driver_cores is None else driver_cores,
        driver_memory_mib=driver_memory_mib,
        driver_overhead_mib=_side_overhead(conf, "driver", driver_memory_mib, default_factor),
        executor_cores=row.executor_cores if executor_cores is None else executor_cores,
        executor_memory_mib=executor_memory_mib,
        executor_overhead_mib=_side_overhead(
            conf, "executor", executor_memory_mib, default_factor
        ),
        num_executors=row.num_executors if num_executors is None else num_executors,
    )


# ---------------------------------------------------------------------------
# Flink CUs (FlinkJarJob)
# ---------------------------------------------------------------------------

# DLI's defaults for a Flink JAR job. cu_number and parallel_number have no documented API default;
# these are the DLI console's (2 CUs, parallelism 1), which also make its example request work.
DEFAULT_CU_NUMBER = 2
DEFAULT_MANAGER_CU_NUMBER = 1
DEFAULT_TM_CUS = 1
DEFAULT_PARALLEL_NUMBER = 1
# One CU is 1 vCPU and 4 GiB (DLI's definition); Settings.flink_cu_* may redefine it.
CU_MILLICPU = 1000
CU_MEMORY_MIB = 4096


def flink_default_slots(parallel_number: int, tm_cus: int, cu_number: int, manager_cu_number: int) -> int:
    """DLI's default tm_slot_num, (parallel_number × tm_cus) / (cu_number − manager_cu_number),
    rounded up so that the TaskManagers the CUs pay for offer at least parallel_number slots.

    The caller checks cu_number − manager_cu_number ≥ tm_cus first (flink_problems)."""
    left = cu_number - manager_cu_number
    return max(1, -(-(parallel_number * tm_cus) // left))


def flink_problems(cu_number: int, manager_cu_number: int, tm_cus: int, parallel_number: int,
                   tm_slot_num: int | None) -> list[str]:
    """Why these numbers cannot make a Flink cluster, each message showing its arithmetic (empty: fine).

    The same checks are CEL rules in lakejob.models.flinkjarjob, so admission says the same thing."""
    left = cu_number - manager_cu_number
    if left < tm_cus:
        return [f"cu_number − manager_cu_number = {cu_number} − {manager_cu_number} = {left} CU(s) left for "
                f"TaskManagers, fewer than one TaskManager of tm_cus = {tm_cus}"]
    taskmanagers = left // tm_cus
    slots = tm_slot_num if tm_slot_num is not None else flink_default_slots(
        parallel_number, tm_cus, cu_number, manager_cu_number)
    if parallel_number > taskmanagers * slots:
        return [f"parallel_number = {parallel_number} needs {parallel_number} slots, but "
                f"(cu_number − manager_cu_number) / tm_cus = ({cu_number} − {manager_cu_number}) / {tm_cus} = "
                f"{taskmanagers} TaskManager(s) × {slots} slot(s) = {taskmanagers * slots} slot(s)"]
    return []


@dataclass(frozen=True)
class FlinkSizing:
    """A Flink JAR job's resolved cluster: what the CUs buy and what each pod requests."""

    cu_number: int
    manager_cu_number: int
    tm_cus: int
    parallelism: int
    slots: int  # taskmanager.numberOfTaskSlots
    taskmanagers: int
    jobmanager_millicpu: int
    jobmanager_memory_mib: int
    taskmanager_millicpu: int
    taskmanager_memory_mib: int

    @property
    def unused_cus(self) -> int:
        """CUs paid for but in no pod: (cu_number − manager_cu_number) is not a multiple of tm_cus."""
        return self.cu_number - self.manager_cu_number - self.taskmanagers * self.tm_cus


def resolve_flink(*, cu_number: int | None, manager_cu_number: int | None, tm_cus: int | None,
                  parallel_number: int | None, tm_slot_num: int | None, cu_millicpu: int = CU_MILLICPU,
                  cu_memory_mib: int = CU_MEMORY_MIB) -> FlinkSizing:
    """DLI's CU arithmetic: the JobManager gets manager_cu_number CUs, then as many TaskManagers of
    tm_cus CUs as the remaining CUs allow. Raises ValueError (with the arithmetic) when impossible."""
    cu = DEFAULT_CU_NUMBER if cu_number is None else cu_number
    manager = DEFAULT_MANAGER_CU_NUMBER if manager_cu_number is None else manager_cu_number
    tm = DEFAULT_TM_CUS if tm_cus is None else tm_cus
    parallel = DEFAULT_PARALLEL_NUMBER if parallel_number is None else parallel_number
    problems = flink_problems(cu, manager, tm, parallel, tm_slot_num)
    if problems:
        raise ValueError("; ".join(problems))
    slots = tm_slot_num if tm_slot_num is not None else flink_default_slots(parallel, tm, cu, manager)
    return FlinkSizing(
        cu_number=cu, manager_cu_number=manager, tm_cus=tm, parallelism=parallel, slots=slots,
        taskmanagers=(cu - manager) // tm,
        jobmanager_millicpu=manager * cu_millicpu, jobmanager_memory_mib=manager * cu_memory_mib,
        taskmanager_millicpu=tm * cu_millicpu, taskmanager_memory_mib=tm * cu_memory_mib)


def k8s_millicpu(millicpu: int) -> str:
    """Kubernetes CPU quantity: whole cores as "2", fractions as "1500m"."""
    return str(millicpu // 1000) if millicpu % 1000 == 0 else f"{millicpu}m"
