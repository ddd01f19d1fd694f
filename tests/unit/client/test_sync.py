"""`viewfinder.Client` against a real server process, and in process over the app."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from tests.conftest import jpeg_bytes, png_bytes
from tests.unit.client.conftest import BLUE, GREEN, RED
from viewfinder import AsyncClient, Client, errors
from viewfinder.client import NotFoundAPIError
from viewfinder.indexing.worker import IndexingWorker


def test_upload_from_paths_bytes_and_urls_then_search(vf: Client, tmp_path: Path) -> None:
    red = tmp_path / "red.png"
    red.write_bytes(png_bytes(RED))
    results = vf.upload(
        [red, ("green.jpg", jpeg_bytes(GREEN)), png_bytes(BLUE)],
        metadata=[{"caption": "r"}, {"caption": "g"}, None],
    )
    assert [r.status for r in results] == ["queued"] * 3
    assert all(r.image_url.startswith("http://127.0.0.1:") for r in results)

    # A URL item goes last on the wire but comes back in the caller's order.
    by_url = vf.upload([results[0].image_url, str(red)], metadata={"via": "mixed"})
    assert not by_url[0].failed and not by_url[1].failed

    ids = [r.image_id for r in results + by_url]
    indexed = vf.wait_until_indexed(ids, timeout_s=30)
    assert [im.status for im in indexed] == ["indexed"] * 5

    hits = vf.search("red", max_results=5)
    assert hits[0].image_id in (ids[0], ids[3], ids[4])
    assert hits[0].score > 0.9 and hits[0].score >= hits[-1].score
    only = vf.search("something blue", threshold=0.9)
    assert [h.image_id for h in only] == [ids[2]]

    image = vf.get_image(ids[0])
    assert (image.width, image.height, image.content_type) == (64, 48, "image/png")
    assert image.metadata == {"caption": "r"} and image.indexed
    assert image.sha256 == vf.get_image(ids[4]).sha256  # same bytes
    assert vf.get_image(ids[3]).metadata == {"via": "mixed"}
    assert vf.download(image) == red.read_bytes()

    thumb = PILImage.open(io.BytesIO(vf.thumbnail(ids[1], size=32)))
    assert thumb.format == "JPEG" and max(thumb.size) == 64  # never upscaled

    listed = vf.list_images(limit=2)
    assert len(listed) == 2 and listed[0].upload_timestamp >= listed[1].upload_timestamp
    assert {im.image_id for im in vf.iter_images(page_size=2)} == set(ids)
    assert vf.status().indexed == 5

    assert vf.delete_image(ids[0]).status == "success"
    with pytest.raises(NotFoundAPIError) as caught:
        vf.get_image(ids[0])
    exc = caught.value
    assert (exc.status, exc.type, exc.param) == (404, "not_found_error", "image_id")
    assert ids[0] in exc.message and exc.request_id
    assert isinstance(exc, errors.NotFound)  # the library's own error of the same meaning


def test_a_refused_item_fails_alone(vf: Client) -> None:
    results = vf.upload([b"not an image", png_bytes(RED)])
    assert results[0].failed and "unsupported image type" in (results[0].error or "")
    assert not results[1].failed


def test_in_process_over_the_app(client: TestClient, api_key: str, worker: IndexingWorker) -> None:
    vf = Client("http://testserver", api_key, http_client=client)
    up = vf.upload(png_bytes(RED))
    worker.drain()
    assert vf.search("red")[0].image_id == up[0].image_id

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport) as http:
            avf = AsyncClient("http://testserver", api_key, http_client=http)
            assert (await avf.get_image(up[0].image_id)).indexed
            await avf.close()  # leaves a borrowed http client open
            assert not http.is_closed

    asyncio.run(scenario())


def test_bad_metadata_count_is_refused_before_sending() -> None:
    with Client("http://127.0.0.1:9", "k") as vf, pytest.raises(errors.ValidationError):
        vf.upload([b"a", b"b"], metadata=[{}])
