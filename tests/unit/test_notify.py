"""Notifier: CloudEvents shape, delivery with bounded retries, never raising."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from lakejob.http import Http
from lakejob.notify import CONTENT_TYPE, Notifier, cloudevent


def test_cloudevent_shape() -> None:
    ev = cloudevent("io.lakejob.flinkjarjob.failed", "/namespaces/ns/flinkjarjobs/j", "j", {"k": 1}, event_id="x")
    assert ev["specversion"] == "1.0" and ev["id"] == "x" and ev["type"] == "io.lakejob.flinkjarjob.failed"
    assert ev["datacontenttype"] == "application/json" and ev["data"] == {"k": 1}
    assert ev["time"].endswith("Z")


async def _server(statuses: list[int], seen: list[tuple[str, Any]]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        seen.append((request.headers["Content-Type"], json.loads(await request.text())))
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook"


async def test_delivers_after_retries_and_reports() -> None:
    seen: list[tuple[str, Any]] = []
    runner, url = await _server([500, 503], seen)
    http = Http()
    notifier = Notifier(http, retries=3, timeout_s=2, backoff_s=0.01)
    assert await notifier.deliver(url, cloudevent("t", "s", "x", {})) is True
    assert len(seen) == 3 and seen[0][0] == CONTENT_TYPE
    await http.close()
    await runner.cleanup()


async def test_gives_up_after_bounded_tries_without_raising() -> None:
    http = Http()
    notifier = Notifier(http, retries=2, timeout_s=0.5, backoff_s=0.01)
    assert await asyncio.wait_for(notifier.deliver("http://127.0.0.1:9/nothing-listens",
                                                   cloudevent("t", "s", "x", {})), 10) is False
    await http.close()
