"""Slow `image_urls` never stall the API: uploads wait for their URLs holding no thread that
serves other requests, and every upload answers by its deadline.

The fetch path does not depend on the stores, so these run on the embedded ones only.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.slow_http import SlowServer, slow_server
from viewfinder.api.app import create_app
from viewfinder.config import Settings
from viewfinder.domain.service import ImageService

pytestmark = pytest.mark.embedded_only


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Localhost URLs allowed; the upload deadline is the test's parameter, if it has one."""
    deadline = getattr(request, "param", 20.0)
    return settings.model_copy(
        update={"fetch_allow_private": True, "fetch_timeout_s": 20.0, "fetch_deadline_s": deadline}
    )


def url_upload(*urls: str) -> dict[str, str]:
    return {"metadata": json.dumps({"image_urls": list(urls)})}


def test_slow_urls_do_not_stall_other_requests(
    settings: Settings, service: ImageService, auth: dict[str, str]
) -> None:
    app = create_app(settings, service)

    async def scenario(server: SlowServer) -> tuple[float, list[httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=auth, timeout=30
        ) as c:
            assert (await c.get("/v1/status")).status_code == 200
            uploads = [
                asyncio.ensure_future(
                    c.post("/v1/images/upload", data=url_upload(server.url("/held")))
                )
                for _ in range(45)
            ]
            try:
                # every fetch thread is busy with a URL that does not answer
                loop = asyncio.get_running_loop()
                assert await loop.run_in_executor(
                    None, server.wait_in_flight, settings.fetch_threads
                )
                started = time.monotonic()
                status = await asyncio.wait_for(c.get("/v1/status"), timeout=5.0)
                took = time.monotonic() - started
                assert status.status_code == 200
                listed = await asyncio.wait_for(c.get("/v1/images"), timeout=5.0)
                assert listed.status_code == 200
            finally:
                server.release.set()
            return took, list(await asyncio.gather(*uploads))

    with slow_server() as server:
        took, uploads = asyncio.run(scenario(server))
    assert took < 2.0  # milliseconds normally; before the fetch pool, not before the release
    assert [r.status_code for r in uploads] == [200] * 45
    assert {r.json()["results"][0]["status"] for r in uploads} == {"queued"}
    assert server.peak == settings.fetch_threads  # fetched at once, but no more than that


@pytest.mark.parametrize("settings", [0.5], indirect=True)
def test_an_upload_answers_by_its_deadline_and_a_late_url_fails_alone(
    settings: Settings, service: ImageService, auth: dict[str, str]
) -> None:
    app = create_app(settings, service)

    async def scenario(server: SlowServer) -> tuple[float, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=auth, timeout=30
        ) as c:
            started = time.monotonic()
            response = await c.post(
                "/v1/images/upload",
                data=url_upload(server.url("/img"), server.url("/held"), server.url("/img")),
            )
            return time.monotonic() - started, response

    with slow_server() as server:
        took, response = asyncio.run(scenario(server))
    assert took < 2.5  # the deadline (0.5 s) and a margin for a busy machine
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["queued", "failed", "queued"]
    assert "timed out" in results[1]["error"]
