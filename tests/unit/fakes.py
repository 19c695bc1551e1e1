"""Fakes shared by unit tests of the reconcile loop (controllers.base)."""
from __future__ import annotations

from typing import Any


class StatusKube:
    """Accepts every status write and answers with the next resourceVersion: for tests of what a
    pass does around its writes (logs, metrics), not of the writes themselves."""

    def __init__(self) -> None:
        self.rv = 10

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> int:
        self.rv += 1
        return self.rv
