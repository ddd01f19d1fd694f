"""A request with a body is authenticated and rate-limited from its headers before the body is
read: an anonymous or throttled client's upload is refused unreceived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import png_bytes
from viewfinder.api.app import create_app
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService

pytestmark = pytest.mark.embedded_only

BOUNDARY = "vfboundary"
CHUNK = b"x" * 65536
CHUNKS = 200  # a 13 MB upload, if it were read


class CountingBody:
    """A multipart upload body that counts how many chunks the server pulled."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; '
            'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        self.sent += 1
        yield head + png_bytes((1, 2, 3))
        for _ in range(CHUNKS):
            self.sent += 1
            yield CHUNK
        self.sent += 1
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _post(settings: Settings, service: ImageService, headers: dict[str, str], path: str):
    app = create_app(settings, service)
    body = CountingBody()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(
                path,
                content=body,
                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}", **headers},
            )

    return asyncio.run(go()), body.sent


@pytest.mark.parametrize("path", ["/v1/images/upload", "/v1/images/search", "/images/upload"])
@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "not-a-key"}])
def test_unauthenticated_body_is_never_read(
    settings: Settings, service: ImageService, headers: dict[str, str], path: str
) -> None:
    response, sent = _post(settings, service, headers, path)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"
    assert sent <= 1, f"the server read {sent} chunks of an anonymous body"


def test_rate_limited_body_is_never_read(settings: Settings, service: ImageService) -> None:
    limited = settings.model_copy(update={"rate_limits": {"upload": "1/hour"}})
    secret = KeyRing(service.metadata).create("acme").secret
    first, sent = _post(limited, service, {"X-Api-Key": secret}, "/v1/images/upload")
    assert first.status_code == 200, first.text
    assert sent == CHUNKS + 2  # the allowed one was read whole
    # a new app has a new limiter: post twice through the same one
    app = create_app(limited, service)
    bodies = [CountingBody(), CountingBody()]

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                await client.post(
                    "/v1/images/upload",
                    content=body,
                    headers={
                        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
                        "X-Api-Key": secret,
                    },
                )
                for body in bodies
            ]

    ok, limited_response = asyncio.run(go())
    assert ok.status_code == 200
    assert limited_response.status_code == 429, limited_response.text
    assert limited_response.headers["retry-after"] != "0"
    assert bodies[1].sent <= 1
    # counted once per request, not once by the route and again by the handler
    assert ok.headers["x-ratelimit-requests-remaining"] == "0"
