"""One HTTP client for everything that is not the Kubernetes API: REST polls of Spark drivers and
Flink JobManagers, and notification POSTs.

Made once by lakejob.operator at start-up and handed to every reconciler (`Reconciler.http`), so
the whole operator keeps one connection pool, bounded, however many sessions or jobs it polls.
Errors never raise into a reconcile: a poll answers None, a POST answers its status or 0.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class Http:
    def __init__(self, limit: int = 64):
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # made lazily: it must belong to the running loop
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._limit))
        return self._session

    async def get_json(self, url: str, timeout_s: float) -> Any | None:
        """The decoded JSON body of a 2xx answer, or None (unreachable, timeout, not JSON, not 2xx)."""
        try:
            async with self.session().get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status >= 300:
                    return None
                return json.loads(await resp.text())
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    async def post_json(self, url: str, body: Any, headers: dict[str, str], timeout_s: float) -> int:
        """POST a JSON body; the HTTP status, or 0 when no answer came."""
        try:
            async with self.session().post(url, data=json.dumps(body), headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
