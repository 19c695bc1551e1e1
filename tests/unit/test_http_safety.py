"""lakejob.http never reaches a link-local address (cloud metadata services) and follows no redirects."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from lakejob.http import Http, SafeResolver, forbidden


@pytest.mark.parametrize("address, refused", [
    ("169.254.169.254", True), ("fe80::1", True), ("fe80::1%eth0", True), ("::ffff:169.254.169.254", True),
    ("0.0.0.0", True), ("10.96.0.10", False), ("127.0.0.1", False), ("2001:db8::1", False)])
def test_link_local_and_unspecified_addresses_are_forbidden(address: str, refused: bool) -> None:
    assert forbidden(address) is refused


async def test_a_name_that_resolves_only_to_a_metadata_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def metadata(self: object, host: str, port: int = 0, family: int = 0) -> list[dict[str, object]]:
        return [{"hostname": host, "host": "169.254.169.254", "port": port, "family": 2, "proto": 0, "flags": 0}]
    monkeypatch.setattr("aiohttp.resolver.ThreadedResolver.resolve", metadata)
    with pytest.raises(OSError, match="link-local"):
        await SafeResolver().resolve("hooks.example.com", 80)


@pytest.fixture
async def redirecting() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect("/elsewhere")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", hits
    await runner.cleanup()


async def test_a_post_follows_no_redirect(redirecting: tuple[str, list[str]]) -> None:
    url, hits = redirecting
    http = Http()
    try:
        assert await http.post_json(url, {"a": 1}, {}, 5) == 307
    finally:
        await http.close()
    await asyncio.sleep(0)
    assert hits == ["/hook"]


async def test_a_patch_follows_no_redirect_and_an_unanswered_one_is_zero(redirecting: tuple[str, list[str]]) -> None:
    url, hits = redirecting
    http = Http()
    try:
        assert await http.patch(url + "?mode=cancel", 5) == 307  # Flink's job cancellation
        assert await http.patch("http://127.0.0.1:1/jobs/x", 5) == 0
    finally:
        await http.close()
    assert hits == ["/hook"]
