"""`viewfinder.AsyncClient` against a real server process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.unit.client.conftest import GREEN, RED, make_key
from viewfinder import AsyncClient
from viewfinder.client import NotFoundAPIError, RateLimitAPIError


def test_async_client_against_the_server(server: Server) -> None:
    key = make_key(server, "async")

    async def scenario() -> None:
        async with AsyncClient(server.url, key) as vf:
            up = await vf.upload([png_bytes(RED), png_bytes(GREEN)])
            done = await vf.wait_until_indexed([u.image_id for u in up], timeout_s=30)
            assert all(im.indexed for im in done)
            hits = await vf.search("green", max_results=1)
            assert hits[0].image_id == up[1].image_id
            assert [im.image_id async for im in vf.iter_images(page_size=1)] == [
                up[1].image_id,
                up[0].image_id,
            ]
            assert (await vf.download(hits[0])) == png_bytes(GREEN)
            assert (await vf.thumbnail(up[0].image_id))[:2] == b"\xff\xd8"
            assert (await vf.status()).indexed == 2
            await vf.delete_image(up[0].image_id)
            with pytest.raises(NotFoundAPIError):
                await vf.get_image(up[0].image_id)

    asyncio.run(scenario())


def test_async_client_uploads_paths_and_urls_and_retries_429(
    server: Server, tmp_path: Path
) -> None:
    red = tmp_path / "red.png"
    red.write_bytes(png_bytes(RED))
    key = make_key(server, "async-limited", "search=1/second")

    async def scenario() -> None:
        async with AsyncClient(server.url, key) as vf:
            (first,) = await vf.upload([red])
            both = await vf.upload([first.image_url, red], metadata=[{"via": "url"}, None])
            assert not any(r.failed for r in both)
            ids = [first.image_id] + [r.image_id for r in both]
            await vf.wait_until_indexed(ids, timeout_s=30)
            assert (await vf.get_image(both[0].image_id)).metadata == {"via": "url"}
            assert (await vf.download(both[0])) == red.read_bytes()
            await vf.search("red")
            started = time.monotonic()
            hits = await vf.search("red")  # over the limit: waits as told, then succeeds
            assert time.monotonic() - started >= 0.5
            assert {h.image_id for h in hits} == set(ids)

        other = make_key(server, "async-limited2", "search=1/second")
        async with AsyncClient(server.url, other, max_retries=0) as vf:
            await vf.search("red")
            with pytest.raises(RateLimitAPIError):
                await vf.search("red")

    asyncio.run(scenario())
