"""`filter=` on the clients' search, list and iteration, against a real server process."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.unit.client.conftest import BLUE, GREEN, RED, make_key
from viewfinder import AsyncClient, Client
from viewfinder.client import ValidationAPIError


def test_sync_client_filters(vf: Client) -> None:
    up = vf.upload([png_bytes(RED), png_bytes(GREEN)], metadata=[{"n": 1}, {"n": 2}])
    vf.wait_until_indexed([u.image_id for u in up], timeout_s=30)
    hits = vf.search("red", filter={"metadata.n": {"$gt": 1}})
    assert [h.image_id for h in hits] == [up[1].image_id]  # red itself does not pass
    assert [im.image_id for im in vf.list_images(filter={"metadata.n": 1})] == [up[0].image_id]
    assert [im.image_id for im in vf.iter_images(filter={"metadata.n": {"$in": [1, 2]}})] == [
        up[1].image_id,
        up[0].image_id,
    ]
    like = vf.search_similar(up[1].image_id, include_self=True, filter={"metadata.n": 1})
    assert [h.image_id for h in like] == [up[0].image_id]  # by example, filtered alike
    with pytest.raises(ValidationAPIError) as bad:
        vf.search("red", filter={"metadata.n": {"$near": 1}})
    assert bad.value.param == "filter.metadata.n.$near"


def test_async_client_filters(server: Server) -> None:
    key = make_key(server, "async-filters")

    async def scenario() -> None:
        async with AsyncClient(server.url, key) as vf:
            up = await vf.upload([png_bytes(RED), png_bytes(BLUE)], metadata=[{}, {"k": "x"}])
            await vf.wait_until_indexed([u.image_id for u in up], timeout_s=30)
            hits = await vf.search("red", filter={"metadata.k": {"$exists": True}})
            assert [h.image_id for h in hits] == [up[1].image_id]
            listed = await vf.list_images(filter={"metadata.k": {"$ne": "x"}})
            assert [im.image_id for im in listed] == [up[0].image_id]
            found = [im.image_id async for im in vf.iter_images(filter={"metadata.k": "x"})]
            assert found == [up[1].image_id]

    asyncio.run(scenario())
