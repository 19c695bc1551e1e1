"""Mends for kopf's own bugs that would wedge lakejob, each applied once by `apply()`.

operator.py calls `apply()` at import, before kopf runs. Each mend names the kopf code it wraps and
what it adds; when kopf no longer has that code, the mend says so in the log and stands aside (the
unit test tests/unit/test_kopf_fixes.py fails then, so an upgrade of kopf is noticed).

**Readiness left blocked by a namespace that went away** (kopf 1.45.2, watched namespaces given as
globs, e.g. `lakejob run --namespace 'team-*'`). kopf runs no handler until every indexed resource's
first listing has finished in every watched namespace: `spawn_missing_watchers` adds one readiness
toggle per (resource, namespace) to `Ensemble.operator_indexed`, and only the watcher's LISTED bookmark
drops it. When a namespace is deleted before its first listing ends (a LIST answered 429 "storage is
(re)initializing" and retried with a backoff, as after a CRD update), `terminate_redundancies` stops
that watcher but keeps its toggle: readiness is never reached again and every handler in every
namespace waits forever; the operator still runs, and no object gets a status. The mend drops the
toggles of the watchers that `terminate_redundancies` stops. (The Helm chart watches all namespaces
or a fixed list, where kopf never stops a watcher: this hits only globs.)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

log = logging.getLogger("lakejob")

_APPLIED = "__lakejob_mended__"


def apply() -> None:
    """Apply every mend once (idempotent)."""
    _drop_readiness_of_stopped_watchers()


def _drop_readiness_of_stopped_watchers() -> None:
    try:
        from kopf._core.reactor import orchestration
        original: Callable[..., Awaitable[None]] = orchestration.terminate_redundancies
    except (ImportError, AttributeError) as exc:
        log.warning("kopf has no orchestration.terminate_redundancies (%s): the mend for readiness "
                    "left blocked by a deleted namespace is not applied", exc)
        return
    if getattr(original, _APPLIED, False):
        return

    @functools.wraps(original)
    async def terminate_redundancies(*, remaining_resources: Collection[Any],
                                     remaining_namespaces: Collection[Any], ensemble: Any) -> None:
        # The same rule as kopf's for what it stops; its readiness toggles are named f"{resource}@{namespace}".
        stopping = {f"{key.resource}@{key.namespace}" for key in ensemble.watcher_tasks
                    if key.namespace not in remaining_namespaces or key.resource not in remaining_resources}
        await original(remaining_resources=remaining_resources, remaining_namespaces=remaining_namespaces,
                       ensemble=ensemble)
        leftover = [toggle for toggle in ensemble.operator_indexed if toggle.name in stopping]
        if leftover:
            log.info("dropping the readiness of %d watcher(s) stopped before their first listing ended: %s",
                     len(leftover), ", ".join(sorted(toggle.name for toggle in leftover)))
            await ensemble.operator_indexed.drop_toggles(leftover)

    setattr(terminate_redundancies, _APPLIED, True)
    orchestration.terminate_redundancies = terminate_redundancies
