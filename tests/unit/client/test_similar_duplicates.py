"""The client and LocalClient: search by example, duplicate_of, near-duplicates, alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.api.test_duplicates import encoded, gradient
from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.unit.client.conftest import BLUE, GREEN, RED, make_key
from viewfinder import Client, errors
from viewfinder.client import AsyncClient, Duplicate, DuplicateGroup, NotFoundAPIError
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient

DARK_RED = (200, 20, 0)
PICTURE = encoded(gradient())
COPY = encoded(gradient().resize((48, 32)), "JPEG", quality=60)


def _files() -> list[tuple[str, bytes]]:
    return [
        ("red.png", png_bytes(RED)),
        ("dark.png", png_bytes(DARK_RED)),
        ("blue.png", png_bytes(BLUE)),
        ("green.png", png_bytes(GREEN)),
        ("picture.png", PICTURE),
        ("copy.jpg", COPY),
    ]


def _check(vf: Client | LocalClient, ids: list[str], tmp_path: Path) -> None:
    red, dark, blue, _, picture, copy = ids
    by_id = vf.search_similar(red, max_results=2)
    assert [h.image_id for h in by_id][:1] == [dark] and red not in {h.image_id for h in by_id}
    example = tmp_path / "example.png"
    example.write_bytes(png_bytes((250, 5, 0)))
    assert [h.image_id for h in vf.search_similar(path=example, max_results=2)] == [red, dark]
    assert vf.search_similar(path=example.read_bytes(), max_results=1)[0].image_id == red
    mixed = vf.search_similar(red, query="blue", text_weight=1, image_weight=0, max_results=1)
    assert mixed[0].image_id == blue
    assert vf.search_similar(red, include_self=True, max_results=1)[0].image_id == red
    with pytest.raises(errors.ValidationError):
        vf.search_similar()
    near = vf.duplicates_of(picture)
    assert [(d.image_id, type(d)) for d in near] == [(copy, Duplicate)]
    assert near[0].similarity > 0.99 and near[0].hamming is not None
    groups = vf.duplicates()
    # first: the closest pair (red and dark red, both flat, are a looser one)
    assert [i.image_id for i in groups[0].images] == [picture, copy]
    assert isinstance(groups[0], DuplicateGroup)


def test_remote_client(server: Server, tmp_path: Path) -> None:
    with Client(server.url, make_key(server, "similar-remote")) as vf:
        up = vf.upload(_files())
        ids = [u.image_id for u in up]
        vf.wait_until_indexed(ids, timeout_s=30)
        _check(vf, ids, tmp_path)
        again = vf.upload([("again.png", png_bytes(RED))])[0]
        assert again.duplicate_of == up[0].image_id
        with pytest.raises(NotFoundAPIError):
            vf.duplicates_of("no-such-image")


def test_async_client(server: Server, tmp_path: Path) -> None:
    key = make_key(server, "similar-async")

    async def scenario() -> None:
        async with AsyncClient(server.url, key) as vf:
            up = await vf.upload(_files())
            ids = [u.image_id for u in up]
            await vf.wait_until_indexed(ids, timeout_s=30)
            hits = await vf.search_similar(ids[0], max_results=1)
            assert [h.image_id for h in hits] == [ids[1]]
            groups = await vf.duplicates()
            assert [i.image_id for i in groups[0].images] == ids[4:]
            assert [d.image_id for d in await vf.duplicates_of(ids[4])] == [ids[5]]

    asyncio.run(scenario())


def test_local_client(tmp_path: Path) -> None:
    with LocalClient(Settings(data_dir=tmp_path / "data", model="fake")) as vf:
        up = vf.upload(_files())
        vf.process_queue()
        _check(vf, [u.image_id for u in up], tmp_path)
        assert vf.upload([("again.png", png_bytes(RED))])[0].duplicate_of == up[0].image_id
