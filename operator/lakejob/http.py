"""One HTTP client for everything that is not the Kubernetes API: REST polls of Spark drivers and
Flink JobManagers, and notification POSTs.

Made once by lakejob.operator at start-up and handed to every reconciler (`Reconciler.http`), so
the whole operator keeps one connection pool, bounded, however many sessions or jobs it polls.
Errors never raise into a reconcile: a poll answers None, a POST answers its status or 0.

No request reaches a link-local address (169.254.0.0/16, fe80::/10: the clouds' instance metadata
services, which hand out the node's credentials): the resolver drops such addresses after
resolving, so a notification URL whose name resolves there (or is rebound there) is refused at
connect time, and POSTs follow no redirects.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver


def forbidden(address: str) -> bool:
    """An address no request of the operator's may reach: link-local (metadata services) or unspecified."""
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_link_local or ip.is_unspecified or (ip.version == 6 and ip.ipv4_mapped is not None
                                                    and forbidden(str(ip.ipv4_mapped)))


class SafeResolver(ThreadedResolver):
    """The default resolver, minus the addresses `forbidden` names (so a name cannot point there)."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        allowed = [r for r in await super().resolve(host, port, family) if not forbidden(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to link-local addresses: refused")
        return allowed


class Http:
    def __init__(self, limit: int = 64):
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # made lazily: it must belong to the running loop
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._limit,
                                                                                 resolver=SafeResolver()))
        return self._session

    async def get_json(self, url: str, timeout_s: float) -> Any | None:
        """The decoded JSON body of a 2xx answer, or None (unreachable, timeout, not JSON, not 2xx)."""
        try:
            async with self.session().get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status >= 300:
                    return None
                return json.loads(await resp.text())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    async def post_json(self, url: str, body: Any, headers: dict[str, str], timeout_s: float) -> int:
        """POST a JSON body; the HTTP status, or 0 when no answer came."""
        try:
            async with self.session().post(url, data=json.dumps(body), headers=headers, allow_redirects=False,
                                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return 0

    async def patch(self, url: str, timeout_s: float) -> int:
        """PATCH without a body (Flink's job cancellation); the HTTP status, or 0 when no answer came."""
        try:
            async with self.session().patch(url, allow_redirects=False,
                                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
