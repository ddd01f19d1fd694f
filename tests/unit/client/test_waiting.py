"""`wait_until_indexed` gives up with an error naming what is still queued and what failed."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from viewfinder import AsyncClient, Client
from viewfinder.client import IndexingTimeout

# One image never leaves the queue, one failed, one is indexed.
STATES = {
    "stuck": (1, None),
    "broken": (3, "could not decode image"),
    "done": (2, None),
}


def _server(request: httpx.Request) -> httpx.Response:
    image_id = request.url.path.rsplit("/", 1)[-1]
    status, error = STATES[image_id]
    body = {
        "image_id": image_id,
        "image_url": "",
        "indexing_status": status,
        "upload_timestamp": 0.0,
        "error": error,
    }
    return httpx.Response(200, json=body)


def _check(exc: IndexingTimeout) -> None:
    assert isinstance(exc, TimeoutError)  # `except TimeoutError` works too
    assert exc.pending == ["stuck"]
    assert exc.failed == {"broken": "could not decode image"}
    assert "1 of 3 images still queued after 0.3 s: stuck" in exc.message
    assert "1 failed: broken (could not decode image)" in exc.message


def test_a_timeout_names_the_pending_and_the_failed_images() -> None:
    http = httpx.Client(transport=httpx.MockTransport(_server))
    with Client("http://vf.test", "k", http_client=http) as vf:
        started = time.monotonic()
        with pytest.raises(IndexingTimeout) as caught:
            vf.wait_until_indexed(["stuck", "broken", "done"], timeout_s=0.3, poll_s=0.05)
        assert 0.3 <= time.monotonic() - started < 5
        _check(caught.value)
        # Nothing queued: the images come back, failed ones included, without an error.
        done = vf.wait_until_indexed(["broken", "done"], timeout_s=0.3)
        assert [im.status for im in done] == ["failed", "indexed"]


def test_the_async_client_raises_the_same() -> None:
    async def scenario() -> IndexingTimeout:
        http = httpx.AsyncClient(transport=httpx.MockTransport(_server))
        async with AsyncClient("http://vf.test", "k", http_client=http) as vf:
            with pytest.raises(IndexingTimeout) as caught:
                await vf.wait_until_indexed(["stuck", "broken", "done"], 0.3, poll_s=0.05)
            return caught.value

    _check(asyncio.run(scenario()))
