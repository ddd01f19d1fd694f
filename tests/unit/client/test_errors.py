"""API errors, retries of 429 and an unreachable server."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.server import Server
from tests.unit.client.conftest import make_key
from viewfinder import Client, errors
from viewfinder.client import (
    AuthenticationAPIError,
    RateLimitAPIError,
    ServerAPIError,
    ValidationAPIError,
    ViewfinderConnectionError,
)


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
    with Client(server.url, make_key(server, "limited1", "search=1/second")) as vf:
        vf.search("red")
        started = time.monotonic()
        vf.search("red")  # over the limit: waits as told, then succeeds
        assert time.monotonic() - started >= 0.5

    with Client(server.url, make_key(server, "limited2", "search=1/second"), max_retries=0) as vf:
        vf.search("red")
        with pytest.raises(RateLimitAPIError) as caught:
            vf.search("red")
        assert caught.value.status == 429 and 0 < caught.value.retry_after <= 1

    bounded = Client(
        server.url, make_key(server, "limited3", "search=1/minute"), max_retry_wait_s=5
    )
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
