"""What both clients share: the server and key come from arguments, else the environment."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from viewfinder import AsyncClient, Client

STATUS = {"model_id": "fake", "stored": 0, "queued": 0, "indexed": 0, "failed": 0}


def _recording() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=STATUS)

    return seen, httpx.MockTransport(handler)


def test_server_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIEWFINDER_SERVER", "http://env-host:9000/")
    monkeypatch.setenv("VIEWFINDER_API_KEY", "vf_from_env")
    seen, transport = _recording()
    with Client(http_client=httpx.Client(transport=transport)) as vf:
        assert vf.status().model_id == "fake"
    assert str(seen[0].url) == "http://env-host:9000/v1/status"
    assert seen[0].headers["x-api-key"] == "vf_from_env"

    # Arguments win over the environment.
    with Client("http://arg-host", "vf_arg", http_client=httpx.Client(transport=transport)) as vf:
        vf.status()
    assert str(seen[1].url) == "http://arg-host/v1/status"
    assert seen[1].headers["x-api-key"] == "vf_arg"

    async def scenario() -> None:
        async with AsyncClient(http_client=httpx.AsyncClient(transport=transport)) as avf:
            await avf.status()

    asyncio.run(scenario())
    assert str(seen[2].url) == "http://env-host:9000/v1/status"
    assert seen[2].headers["x-api-key"] == "vf_from_env"


def test_without_the_environment_the_default_url_and_no_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VIEWFINDER_SERVER", raising=False)
    monkeypatch.setenv("VIEWFINDER_API_KEY", "")  # set but empty: no key
    seen, transport = _recording()
    with Client(http_client=httpx.Client(transport=transport)) as vf:
        vf.status()
    assert str(seen[0].url) == "http://127.0.0.1:8000/v1/status"
    assert "x-api-key" not in seen[0].headers and vf.api_key is None
