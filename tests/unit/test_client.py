"""`viewfinder.Client` and `AsyncClient` against a real server process, and in process."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from tests.conftest import jpeg_bytes, png_bytes
from tests.e2e.server import Server, cli
from viewfinder import AsyncClient, Client, errors
from viewfinder.client import (
    AuthenticationAPIError,
    NotFoundAPIError,
    RateLimitAPIError,
    ServerAPIError,
    ValidationAPIError,
    ViewfinderConnectionError,
)
from viewfinder.indexing.worker import IndexingWorker

ENV = {
    "VIEWFINDER_MODEL": "fake",
    "VIEWFINDER_POLL_INTERVAL_S": "0.05",
    # Lets the server fetch its own signed image URLs, to test uploads by URL.
    "VIEWFINDER_FETCH_ALLOW_PRIVATE": "true",
}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("client") / "data"
    cli(data_dir, "keys", "create", "init", env=ENV)
    with Server(data_dir, ENV) as running:
        yield running


def _key(server: Server, tenant: str, *limits: str) -> str:
    args = [a for spec in limits for a in ("--rate-limit", spec)]
    return cli(server.data_dir, "keys", "create", tenant, *args, env=ENV).strip()


@pytest.fixture
def vf(server: Server, request: pytest.FixtureRequest) -> Iterator[Client]:
    # A tenant per test keeps tests independent on the shared server.
    tenant = request.node.name.replace("[", "_").replace("]", "")[:60]
    with Client(server.url, _key(server, tenant)) as client:
        yield client


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


def test_api_errors_carry_type_message_and_param(server: Server, vf: Client) -> None:
    with pytest.raises(ValidationAPIError) as caught:
        vf.search("red", max_results=0)
    assert caught.value.status == 400 and caught.value.param == "max_results"
    assert isinstance(caught.value, errors.ValidationError)

    with Client(server.url, "vf_not_a_key") as bad, pytest.raises(AuthenticationAPIError) as auth:
        bad.list_images()
    assert auth.value.type == "authentication_error" and auth.value.message == "invalid API key"
    assert "authentication_error (401)" in str(auth.value)

    with pytest.raises(errors.ValidationError, match="cannot read"):
        vf.upload(["/no/such/file.png"])


def test_429_is_retried_after_retry_after(server: Server) -> None:
    with Client(server.url, _key(server, "limited1", "search=1/second")) as vf:
        vf.search("red")
        started = time.monotonic()
        vf.search("red")  # over the limit: waits as told, then succeeds
        assert time.monotonic() - started >= 0.5

    with Client(server.url, _key(server, "limited2", "search=1/second"), max_retries=0) as vf:
        vf.search("red")
        with pytest.raises(RateLimitAPIError) as caught:
            vf.search("red")
        assert caught.value.status == 429 and 0 < caught.value.retry_after <= 1

    bounded = Client(server.url, _key(server, "limited3", "search=1/minute"), max_retry_wait_s=5)
    with bounded as vf:
        vf.search("red")
        started = time.monotonic()
        with pytest.raises(RateLimitAPIError):
            vf.search("red")  # the server asks for longer than the bound: no waiting
        assert time.monotonic() - started < 5


def test_retries_are_bounded_and_use_backoff_without_retry_after() -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return httpx.Response(429, json={"error": {"type": "rate_limit_error", "message": "x"}})
        return httpx.Response(200, json={"results": []})

    with Client(
        "http://vf.test", "k", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    ) as vf:
        assert vf.search("red") == []
    assert len(calls) == 3

    calls.clear()
    always = httpx.MockTransport(
        lambda r: httpx.Response(429, headers={"retry-after": "0"}, json={})
    )
    with (
        Client(
            "http://vf.test", "k", max_retries=1, http_client=httpx.Client(transport=always)
        ) as vf,
        pytest.raises(RateLimitAPIError),
    ):
        vf.search("red")


def test_a_non_json_error_and_an_unreachable_server() -> None:
    proxy = httpx.MockTransport(lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"))
    http = httpx.Client(transport=proxy)
    with Client("http://vf.test", "k", http_client=http) as vf, pytest.raises(ServerAPIError):
        vf.status()
    with (
        Client("http://127.0.0.1:9", "k", timeout=2) as vf,
        pytest.raises(ViewfinderConnectionError, match="cannot reach Viewfinder"),
    ):
        vf.status()


def test_async_client_against_the_server(server: Server) -> None:
    key = _key(server, "async")

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
    key = _key(server, "async-limited", "search=1/second")

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

        other = _key(server, "async-limited2", "search=1/second")
        async with AsyncClient(server.url, other, max_retries=0) as vf:
            await vf.search("red")
            with pytest.raises(RateLimitAPIError):
                await vf.search("red")

    asyncio.run(scenario())


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
