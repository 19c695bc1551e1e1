"""Flink CU arithmetic (lakejob.sizing.flink_*): DLI's defaults, the slot default, every boundary."""
from __future__ import annotations

import pytest

from lakejob import sizing
from lakejob.sizing import FlinkSizing, flink_default_slots, flink_problems, k8s_millicpu, resolve_flink


def resolve(**kw: int | None) -> FlinkSizing:
    args: dict[str, int | None] = {"cu_number": None, "manager_cu_number": None, "tm_cus": None,
                                   "parallel_number": None, "tm_slot_num": None}
    args.update(kw)
    return resolve_flink(**args)  # type: ignore[arg-type]


def test_all_defaults_are_dlis_two_cus_one_tm_one_slot() -> None:
    sz = resolve()
    assert (sz.cu_number, sz.manager_cu_number, sz.tm_cus, sz.parallelism) == (2, 1, 1, 1)
    assert (sz.taskmanagers, sz.slots, sz.unused_cus) == (1, 1, 0)
    assert (sz.jobmanager_millicpu, sz.jobmanager_memory_mib) == (1000, 4096)
    assert (sz.taskmanager_millicpu, sz.taskmanager_memory_mib) == (1000, 4096)


def test_the_dli_example_request() -> None:
    sz = resolve(cu_number=2, manager_cu_number=1, parallel_number=1, tm_cus=1, tm_slot_num=1)
    assert (sz.taskmanagers, sz.slots, sz.parallelism) == (1, 1, 1)


@pytest.mark.parametrize(("parallel", "tm_cus", "cu", "manager", "slots"), [
    (1, 1, 2, 1, 1),     # 1·1/1
    (4, 1, 3, 1, 2),     # 4·1/2 = 2 exactly
    (3, 1, 3, 1, 2),     # 3/2 = 1.5 → 2 (rounded up, else 2 TMs × 1 slot < 3)
    (1, 1, 5, 1, 1),     # 1/4 = 0.25 → 1 (never 0 slots)
    (8, 2, 5, 1, 4),     # 8·2/4 = 4
    (5, 2, 6, 2, 3),     # 10/4 = 2.5 → 3
    (10, 1, 11, 1, 1),   # 10/10
    (11, 1, 11, 1, 2),   # 11/10 → 2
])
def test_default_slots_is_dlis_formula_rounded_up(parallel: int, tm_cus: int, cu: int, manager: int, slots: int) -> None:
    assert flink_default_slots(parallel, tm_cus, cu, manager) == slots
    sz = resolve(cu_number=cu, manager_cu_number=manager, tm_cus=tm_cus, parallel_number=parallel)
    assert sz.slots == slots
    assert sz.taskmanagers * sz.slots >= parallel


@pytest.mark.parametrize(("cu", "manager", "tm", "tms", "unused"), [
    (2, 1, 1, 1, 0), (3, 1, 1, 2, 0), (3, 1, 2, 1, 0), (4, 1, 2, 1, 1), (10, 2, 3, 2, 2), (10000, 1, 1, 9999, 0),
])
def test_taskmanagers_are_as_many_as_the_remaining_cus_allow(cu: int, manager: int, tm: int, tms: int,
                                                             unused: int) -> None:
    sz = resolve(cu_number=cu, manager_cu_number=manager, tm_cus=tm, tm_slot_num=1, parallel_number=1)
    assert (sz.taskmanagers, sz.unused_cus) == (tms, unused)
    assert sz.taskmanager_millicpu == tm * 1000 and sz.taskmanager_memory_mib == tm * 4096
    assert sz.jobmanager_millicpu == manager * 1000 and sz.jobmanager_memory_mib == manager * 4096


def test_manager_default_applies_when_only_cu_number_is_given() -> None:
    assert resolve(cu_number=5).taskmanagers == 4


@pytest.mark.parametrize(("cu", "manager", "tm", "message"), [
    (1, None, None, "cu_number − manager_cu_number = 1 − 1 = 0 CU(s) left for TaskManagers, fewer than one "
                    "TaskManager of tm_cus = 1"),
    (2, 2, None, "= 2 − 2 = 0 CU(s)"),
    (3, 5, None, "= 3 − 5 = -2 CU(s)"),
    (3, 1, 3, "= 3 − 1 = 2 CU(s) left for TaskManagers, fewer than one TaskManager of tm_cus = 3"),
])
def test_too_few_cus_is_rejected_with_the_arithmetic(cu: int, manager: int | None, tm: int | None, message: str) -> None:
    with pytest.raises(ValueError) as e:
        resolve(cu_number=cu, manager_cu_number=manager, tm_cus=tm)
    assert message in str(e.value)


def test_the_boundary_cu_number_equal_manager_plus_tm_cus_is_fine() -> None:
    assert resolve(cu_number=4, manager_cu_number=2, tm_cus=2).taskmanagers == 1


def test_parallelism_beyond_the_slots_is_rejected_with_the_arithmetic() -> None:
    with pytest.raises(ValueError) as e:
        resolve(cu_number=4, tm_cus=2, parallel_number=5)  # 1 TM; default slots ceil(10/3) = 4
    assert str(e.value) == ("parallel_number = 5 needs 5 slots, but (cu_number − manager_cu_number) / tm_cus = "
                            "(4 − 1) / 2 = 1 TaskManager(s) × 4 slot(s) = 4 slot(s)")
    with pytest.raises(ValueError, match=r"2 TaskManager\(s\) × 1 slot\(s\) = 2 slot\(s\)"):
        resolve(cu_number=3, parallel_number=3, tm_slot_num=1)


def test_parallelism_exactly_the_slots_is_fine() -> None:
    sz = resolve(cu_number=3, parallel_number=4, tm_slot_num=2)
    assert sz.taskmanagers * sz.slots == 4 == sz.parallelism


def test_problems_are_empty_when_fine_and_one_at_a_time() -> None:
    assert flink_problems(2, 1, 1, 1, None) == []
    assert len(flink_problems(1, 1, 1, 99, None)) == 1  # the CU problem hides the slot problem


def test_cu_definition_is_a_parameter() -> None:
    sz = resolve_flink(cu_number=3, manager_cu_number=1, tm_cus=1, parallel_number=2, tm_slot_num=None,
                       cu_millicpu=500, cu_memory_mib=2048)
    assert (sz.jobmanager_millicpu, sz.jobmanager_memory_mib, sz.taskmanager_memory_mib) == (500, 2048, 2048)


def test_k8s_millicpu() -> None:
    assert k8s_millicpu(1000) == "1" and k8s_millicpu(3000) == "3" and k8s_millicpu(1500) == "1500m"


def test_defaults_are_exported() -> None:
    assert (sizing.DEFAULT_CU_NUMBER, sizing.DEFAULT_MANAGER_CU_NUMBER, sizing.DEFAULT_TM_CUS,
            sizing.DEFAULT_PARALLEL_NUMBER, sizing.CU_MILLICPU, sizing.CU_MEMORY_MIB) == (2, 1, 1, 1, 1000, 4096)
