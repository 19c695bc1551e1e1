"""Unit tests for lakejob.sizing: exact numbers, not snapshots."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lakejob.sizing import (
    CUSTOMIZED,
    DEFAULT_SC_TYPE,
    JVM_OVERHEAD_FACTOR,
    MEMORY_PATTERN,
    MIN_OVERHEAD_MIB,
    PYTHON_OVERHEAD_FACTOR,
    SC_TYPES,
    MemoryFormatError,
    ScType,
    SparkSizing,
    k8s_cpu,
    k8s_quantity_mib,
    overhead_mib,
    parse_memory_mib,
    parse_spark_mib,
    resolve_spark,
    spark_memory,
)


def resolve(**kwargs: Any) -> SparkSizing:
    """resolve_spark with every argument defaulted to "not given"."""
    args: dict[str, Any] = {
        "sc_type": None,
        "driver_cores": None,
        "driver_memory": None,
        "executor_cores": None,
        "executor_memory": None,
        "num_executors": None,
        "conf": {},
        "python": False,
    }
    args.update(kwargs)
    return resolve_spark(**args)


# ---------------------------------------------------------------------------
# Constants and the table
# ---------------------------------------------------------------------------


def test_constants() -> None:
    assert MIN_OVERHEAD_MIB == 384
    assert JVM_OVERHEAD_FACTOR == 0.1
    assert PYTHON_OVERHEAD_FACTOR == 0.4
    assert DEFAULT_SC_TYPE == "A"
    assert CUSTOMIZED == "CUSTOMIZED"
    assert SC_TYPES == {
        "A": ScType(2, 1, "7G", "4G", 6),
        "B": ScType(2, 2, "7G", "8G", 7),
        "C": ScType(4, 2, "15G", "8G", 14),
    }


def test_sc_type_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SC_TYPES["A"].driver_cores = 8  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Every sc_type row, no override
# ---------------------------------------------------------------------------

# (sc_type, python, driver_cores, driver_mib, driver_overhead, executor_cores,
#  executor_mib, executor_overhead, num_executors)
ROWS = [
    ("A", False, 2, 7168, 716, 1, 4096, 409, 6),
    ("B", False, 2, 7168, 716, 2, 8192, 819, 7),
    ("C", False, 4, 15360, 1536, 2, 8192, 819, 14),
    ("A", True, 2, 7168, 2867, 1, 4096, 1638, 6),
    ("B", True, 2, 7168, 2867, 2, 8192, 3276, 7),
    ("C", True, 4, 15360, 6144, 2, 8192, 3276, 14),
]


@pytest.mark.parametrize(
    "sc_type,python,d_cores,d_mib,d_over,e_cores,e_mib,e_over,n_exec", ROWS
)
def test_sc_type_rows(
    sc_type: str,
    python: bool,
    d_cores: int,
    d_mib: int,
    d_over: int,
    e_cores: int,
    e_mib: int,
    e_over: int,
    n_exec: int,
) -> None:
    sizing = resolve(sc_type=sc_type, python=python)
    assert sizing == SparkSizing(
        sc_type=sc_type,
        driver_cores=d_cores,
        driver_memory_mib=d_mib,
        driver_overhead_mib=d_over,
        executor_cores=e_cores,
        executor_memory_mib=e_mib,
        executor_overhead_mib=e_over,
        num_executors=n_exec,
    )
    assert sizing.driver_pod_memory_mib == d_mib + d_over
    assert sizing.executor_pod_memory_mib == e_mib + e_over


@pytest.mark.parametrize(
    "python,driver_pod,executor_pod",
    [(False, 7168 + 716, 4096 + 409), (True, 7168 + 2867, 4096 + 1638)],
)
def test_default_sc_type_is_a(python: bool, driver_pod: int, executor_pod: int) -> None:
    sizing = resolve(python=python)
    assert sizing.sc_type == "A"
    assert sizing == resolve(sc_type="A", python=python)
    assert sizing.driver_pod_memory_mib == driver_pod
    assert sizing.executor_pod_memory_mib == executor_pod


def test_empty_sc_type_means_default() -> None:
    assert resolve(sc_type="") == resolve(sc_type="A")


@pytest.mark.parametrize("bad", ["D", "a", "CUSTOMIZED", "AB"])
def test_unknown_sc_type(bad: str) -> None:
    with pytest.raises(ValueError, match="sc_type") as info:
        resolve(sc_type=bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "A, B, C" in message


# ---------------------------------------------------------------------------
# The 384 MiB floor
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "memory,python,expected",
    [
        ("1G", False, 384),
        ("512m", False, 384),
        ("3840m", False, 384),
        ("3850m", False, 385),
        ("4000M", False, 400),
        ("512m", True, 384),
        ("960m", True, 384),
        ("1G", True, 409),
    ],
)
def test_overhead_floor(memory: str, python: bool, expected: int) -> None:
    sizing = resolve(driver_memory=memory, executor_memory=memory, python=python)
    assert sizing.driver_overhead_mib == expected
    assert sizing.executor_overhead_mib == expected


@pytest.mark.parametrize(
    "memory_mib,factor,expected",
    [
        (7168, 0.1, 716),
        (4096, 0.1, 409),
        (8192, 0.1, 819),
        (15360, 0.1, 1536),
        (7168, 0.4, 2867),
        (4096, 0.4, 1638),
        (1024, 0.1, 384),
        (0, 0.1, 384),
        (4000, 0.1, 400),
    ],
)
def test_overhead_mib(memory_mib: int, factor: float, expected: int) -> None:
    assert overhead_mib(memory_mib, factor) == expected


# ---------------------------------------------------------------------------
# Single overrides
# ---------------------------------------------------------------------------

ROW_A = resolve(sc_type="A")


@pytest.mark.parametrize(
    "override,changed",
    [
        ({"driver_cores": 8}, {"driver_cores": 8}),
        (
            {"driver_memory": "10G"},
            {"driver_memory_mib": 10240, "driver_overhead_mib": 1024},
        ),
        ({"executor_cores": 4}, {"executor_cores": 4}),
        (
            {"executor_memory": "2G"},
            {"executor_memory_mib": 2048, "executor_overhead_mib": 384},
        ),
        ({"num_executors": 3}, {"num_executors": 3}),
    ],
)
def test_single_override(override: dict[str, Any], changed: dict[str, Any]) -> None:
    sizing = resolve(sc_type="A", **override)
    expected = {field: getattr(ROW_A, field) for field in SparkSizing.__dataclass_fields__}
    expected.update(changed)
    expected["sc_type"] = CUSTOMIZED
    assert sizing == SparkSizing(**expected)


@pytest.mark.parametrize(
    "override",
    [
        {"driver_cores": 2},
        {"driver_memory": "7G"},
        {"executor_cores": 1},
        {"executor_memory": "4G"},
        {"num_executors": 6},
    ],
)
def test_override_equal_to_row_is_still_customized(override: dict[str, Any]) -> None:
    sizing = resolve(sc_type="A", **override)
    assert sizing.sc_type == CUSTOMIZED
    # Every number is the row's own.
    assert {f: getattr(sizing, f) for f in SparkSizing.__dataclass_fields__ if f != "sc_type"} == {
        f: getattr(ROW_A, f) for f in SparkSizing.__dataclass_fields__ if f != "sc_type"
    }


def test_override_on_row_c() -> None:
    sizing = resolve(sc_type="C", num_executors=20)
    assert sizing == SparkSizing(
        sc_type=CUSTOMIZED,
        driver_cores=4,
        driver_memory_mib=15360,
        driver_overhead_mib=1536,
        executor_cores=2,
        executor_memory_mib=8192,
        executor_overhead_mib=819,
        num_executors=20,
    )


@pytest.mark.parametrize(
    "field,kwarg",
    [("driverMemory", "driver_memory"), ("executorMemory", "executor_memory")],
)
def test_override_memory_errors_name_the_field(field: str, kwarg: str) -> None:
    with pytest.raises(MemoryFormatError, match="must include the unit") as info:
        resolve(**{kwarg: "2048"})
    assert str(info.value).startswith(f"{field}: '2048'")
    with pytest.raises(MemoryFormatError, match="is not a memory size") as info:
        resolve(**{kwarg: "1.5g"})
    assert str(info.value).startswith(f"{field}: '1.5g'")


def test_spark_executor_instances_is_ignored() -> None:
    sizing = resolve(conf={"spark.executor.instances": "50"})
    assert sizing.num_executors == 6
    assert sizing.sc_type == "A"


# ---------------------------------------------------------------------------
# Conf overrides
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected", [("1g", 1024), ("512", 512), ("600m", 600), ("100", 100), (" 2G ", 2048)]
)
@pytest.mark.parametrize("side", ["driver", "executor"])
def test_conf_memory_overhead(side: str, value: str, expected: int) -> None:
    sizing = resolve(conf={f"spark.{side}.memoryOverhead": value})
    # Explicit overhead replaces the computed one and has no 384 floor.
    if side == "driver":
        assert (sizing.driver_overhead_mib, sizing.executor_overhead_mib) == (expected, 409)
    else:
        assert (sizing.driver_overhead_mib, sizing.executor_overhead_mib) == (716, expected)
    # A conf override is not a DLI resource override.
    assert sizing.sc_type == "A"


def test_conf_memory_overhead_beats_factor() -> None:
    sizing = resolve(
        python=True,
        conf={
            "spark.driver.memoryOverhead": "1g",
            "spark.driver.memoryOverheadFactor": "0.5",
            "spark.kubernetes.memoryOverheadFactor": "0.3",
        },
    )
    assert sizing.driver_overhead_mib == 1024
    assert sizing.executor_overhead_mib == int(0.3 * 4096)  # 1228


@pytest.mark.parametrize("python", [False, True])
def test_conf_overhead_factor_per_side(python: bool) -> None:
    driver = resolve(python=python, conf={"spark.driver.memoryOverheadFactor": "0.2"})
    assert driver.driver_overhead_mib == 1433  # int(0.2 * 7168)
    assert driver.executor_overhead_mib == (1638 if python else 409)

    executor = resolve(python=python, conf={"spark.executor.memoryOverheadFactor": "0.2"})
    assert executor.driver_overhead_mib == (2867 if python else 716)
    assert executor.executor_overhead_mib == 819  # int(0.2 * 4096)


def test_conf_overhead_factor_keeps_floor() -> None:
    sizing = resolve(
        driver_memory="1G", conf={"spark.driver.memoryOverheadFactor": "0.2"}
    )
    assert sizing.driver_overhead_mib == 384


@pytest.mark.parametrize("python", [False, True])
def test_kubernetes_overhead_factor_fallback(python: bool) -> None:
    sizing = resolve(python=python, conf={"spark.kubernetes.memoryOverheadFactor": "0.2"})
    assert sizing.driver_overhead_mib == 1433
    assert sizing.executor_overhead_mib == 819


def test_per_side_factor_beats_kubernetes_factor() -> None:
    sizing = resolve(
        conf={
            "spark.kubernetes.memoryOverheadFactor": "0.2",
            "spark.executor.memoryOverheadFactor": "0.3",
        }
    )
    assert sizing.driver_overhead_mib == 1433  # 0.2 from the shared key
    assert sizing.executor_overhead_mib == 1228  # int(0.3 * 4096)


@pytest.mark.parametrize(
    "key,value,error",
    [
        ("spark.driver.memoryOverhead", "lots", MemoryFormatError),
        ("spark.executor.memoryOverhead", "1.5g", MemoryFormatError),
        ("spark.driver.memoryOverhead", "-1", MemoryFormatError),
        ("spark.driver.memoryOverheadFactor", "high", ValueError),
        ("spark.executor.memoryOverheadFactor", "0", ValueError),
        ("spark.executor.memoryOverheadFactor", "-0.1", ValueError),
        ("spark.driver.memoryOverheadFactor", "nan", ValueError),
        ("spark.kubernetes.memoryOverheadFactor", "inf", ValueError),
        ("spark.kubernetes.memoryOverheadFactor", "", ValueError),
    ],
)
def test_bad_conf_value_names_the_key(key: str, value: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        resolve(conf={key: value})
    assert key in str(info.value)
    assert repr(value) in str(info.value)


# ---------------------------------------------------------------------------
# Memory strings
# ---------------------------------------------------------------------------

ACCEPTED = [
    ("1G", 1024),
    ("1000M", 1000),
    ("512m", 512),
    ("2 GB", 2048),
    ("2048 MB", 2048),
    ("1g", 1024),
    ("4096mb", 4096),
    ("4096Mb", 4096),
    ("1t", 1048576),
    ("1TB", 1048576),
    ("800k", 0),  # truncated like Spark's byteStringAsMb
    ("2048k", 2),
    ("2047k", 1),
    ("3000KB", 2),
    (" 2G ", 2048),
    ("\t2g\n", 2048),
    ("0m", 0),
]

BARE = ["2048", " 2048 ", "0"]

NOT_MEMORY = [
    "1.5g",
    "g",
    "-1g",
    "+1g",
    "2 G B",
    "2GiB",
    "",
    "   ",
    "1gb1",
    "1p",
    "1b",
    "1 g b",
    "1gbb",
    "g1",
    "one g",
    "1,024m",
    "1_024m",
    "-2048",
    "1.5",
    "2048\n1g",
]


@pytest.mark.parametrize("value,expected", ACCEPTED)
def test_parse_memory_mib(value: str, expected: int) -> None:
    assert parse_memory_mib(value) == expected
    assert re.fullmatch(MEMORY_PATTERN, value) is not None


@pytest.mark.parametrize("value", BARE)
def test_bare_number_rejected(value: str) -> None:
    with pytest.raises(MemoryFormatError, match="must include the unit") as info:
        parse_memory_mib(value, field="driverMemory")
    assert str(info.value) == (
        f"driverMemory: {value!r} must include the unit (for example 2048M, 2G or 2 GB)"
    )
    assert re.fullmatch(MEMORY_PATTERN, value) is None


@pytest.mark.parametrize("value", NOT_MEMORY)
def test_not_a_memory_size(value: str) -> None:
    with pytest.raises(MemoryFormatError, match="is not a memory size") as info:
        parse_memory_mib(value, field="executorMemory")
    assert str(info.value) == (
        f"executorMemory: {value!r} is not a memory size (an integer followed by "
        "k, m, g or t, optionally with b: 512m, 2G, 2 GB)"
    )
    assert re.fullmatch(MEMORY_PATTERN, value) is None


def test_default_field_name() -> None:
    with pytest.raises(MemoryFormatError, match=r"^memory: '2048' must include the unit"):
        parse_memory_mib("2048")


def test_memory_format_error_is_value_error() -> None:
    assert issubclass(MemoryFormatError, ValueError)


def test_non_string_memory_rejected() -> None:
    with pytest.raises(MemoryFormatError, match="must include the unit"):
        parse_memory_mib(2048, field="driverMemory")  # type: ignore[arg-type]
    with pytest.raises(MemoryFormatError, match="is not a memory size"):
        parse_memory_mib(None, field="driverMemory")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [v for v, _ in ACCEPTED] + BARE + NOT_MEMORY)
def test_pattern_agrees_with_parser(value: str) -> None:
    matched = re.fullmatch(MEMORY_PATTERN, value) is not None
    try:
        parse_memory_mib(value)
    except MemoryFormatError:
        parsed = False
    else:
        parsed = True
    assert matched == parsed


def test_pattern_is_anchored_and_re2_safe() -> None:
    # A CRD pattern is searched, not fully matched, by the API server.
    assert MEMORY_PATTERN.startswith("^")
    assert MEMORY_PATTERN.endswith("$")
    assert re.search(MEMORY_PATTERN, "x1g") is None
    assert re.search(MEMORY_PATTERN, "1gx") is None
    # No lookarounds, backreferences or inline flags, which RE2 does not take.
    for construct in ("(?=", "(?!", "(?<", "(?i", "\\1"):
        assert construct not in MEMORY_PATTERN


@pytest.mark.parametrize(
    "value,expected",
    [("512", 512), (" 512 ", 512), ("0", 0), ("1g", 1024), ("600m", 600), ("2048k", 2)],
)
def test_parse_spark_mib(value: str, expected: int) -> None:
    assert parse_spark_mib(value, "spark.driver.memoryOverhead") == expected


@pytest.mark.parametrize("value", ["1.5", "-1", "", "abc", "1gib"])
def test_parse_spark_mib_rejects(value: str) -> None:
    with pytest.raises(MemoryFormatError, match="is not a memory size") as info:
        parse_spark_mib(value, "spark.executor.memoryOverhead")
    assert str(info.value).startswith("spark.executor.memoryOverhead: ")


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mib,spark,k8s", [(0, "0m", "0Mi"), (7884, "7884m", "7884Mi")])
def test_formatting(mib: int, spark: str, k8s: str) -> None:
    assert spark_memory(mib) == spark
    assert k8s_quantity_mib(mib) == k8s


@pytest.mark.parametrize("cores,expected", [(1, "1"), (2, "2"), (16, "16")])
def test_k8s_cpu(cores: int, expected: str) -> None:
    assert k8s_cpu(cores) == expected


def test_pod_memory_round_trip() -> None:
    sizing = resolve(sc_type="B", python=True)
    assert k8s_quantity_mib(sizing.driver_pod_memory_mib) == "10035Mi"
    assert k8s_quantity_mib(sizing.executor_pod_memory_mib) == "11468Mi"
    assert spark_memory(sizing.executor_memory_mib) == "8192m"
