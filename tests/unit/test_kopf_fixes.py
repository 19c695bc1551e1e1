"""kopf_fixes: kopf's readiness is not left blocked by a watched namespace deleted before its first
listing ended (what wedged the session operator of `make test`'s kueue session: no CR got a status).

The tests drive kopf's own orchestration with a watch stream that never finishes its listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._cogs.structs import references
from kopf._core.reactor import orchestration

from lakejob import kopf_fixes

BATCHES = references.Resource(group="lakejob.io", version="v1alpha1", plural="sparkbatches", namespaced=True)


@pytest.fixture
def never_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every watch stream stays in its first listing (a LIST retried after 429s, say)."""
    async def infinite_watch(**_: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield watching.Bookmark.LISTED  # never reached

    monkeypatch.setattr(watching, "infinite_watch", infinite_watch)


async def _watching(namespaces: set[str]) -> orchestration.Ensemble:
    ensemble = orchestration.Ensemble(operator_indexed=aiotoggles.ToggleSet(all),
                                      operator_paused=aiotoggles.ToggleSet(any),
                                      peering_missing=aiotoggles.Toggle())

    async def processor(**_: Any) -> None:
        return None

    await orchestration.spawn_missing_watchers(
        processor=processor, settings=kopf.OperatorSettings(), indexed_resources={BATCHES},
        watched_resources={BATCHES}, watched_namespaces=namespaces, ensemble=ensemble)
    return ensemble


async def _stop_all(ensemble: orchestration.Ensemble) -> None:
    await orchestration.terminate_redundancies(remaining_resources=set(), remaining_namespaces=set(),
                                               ensemble=ensemble)


@pytest.mark.usefixtures("never_listing")
async def test_readiness_comes_when_the_only_unlisted_namespaces_are_gone() -> None:
    kopf_fixes.apply()
    kopf_fixes.apply()  # once is enough; twice wraps nothing twice
    assert not hasattr(orchestration.terminate_redundancies.__wrapped__, "__wrapped__")
    ensemble = await _watching({"team-a", "team-b"})
    assert not ensemble.operator_indexed.is_on()

    await orchestration.terminate_redundancies(remaining_resources={BATCHES},
                                               remaining_namespaces={"team-b", None}, ensemble=ensemble)
    assert not ensemble.operator_indexed.is_on(), "team-b has not finished its listing"
    assert [toggle.name for toggle in ensemble.operator_indexed] == [f"{BATCHES}@team-b"]

    await orchestration.terminate_redundancies(remaining_resources={BATCHES},
                                               remaining_namespaces={None}, ensemble=ensemble)
    assert ensemble.operator_indexed.is_on()
    await _stop_all(ensemble)


@pytest.mark.usefixtures("never_listing")
async def test_this_kopf_still_needs_the_mend() -> None:
    """kopf's own terminate_redundancies keeps the toggle: when this fails, kopf has fixed it, and
    kopf_fixes' mend can go."""
    kopf_fixes.apply()
    unmended = orchestration.terminate_redundancies.__wrapped__
    ensemble = await _watching({"team-a"})
    await unmended(remaining_resources={BATCHES}, remaining_namespaces={None}, ensemble=ensemble)
    assert not ensemble.operator_indexed.is_on()
