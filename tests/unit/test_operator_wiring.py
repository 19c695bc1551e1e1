"""lakejob.operator's kopf wiring: the diff base that keeps nothing is safe only while no handler needs one."""
from __future__ import annotations

import kopf

from lakejob import operator


def test_no_handler_needs_a_diff_base() -> None:
    """on.create/update/resume/delete and daemons/timers read kopf's diff base; NoDiffBase keeps none.
    Adding such a handler must replace NoDiffBase (lakejob.operator.startup) first."""
    assert operator.STATE is not None  # the controllers are imported: their handlers are registered
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers(), "the event handlers are registered"
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_the_diff_base_is_empty_and_never_stored() -> None:
    storage = operator.NoDiffBase()
    body = kopf.Body({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"big": list(range(100))},
                      "status": {"s": 1}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
