"""Authentication, request ids, rate limits, error shapes and the docs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from viewfinder.api.app import create_app
from viewfinder.domain.keys import KeyRing


def test_missing_and_unknown_keys_are_401(client: TestClient) -> None:
    for headers in ({}, {"X-Api-Key": "vf_wrong"}, {"Authorization": "Bearer vf_wrong"}):
        r = client.get("/v1/images", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"


def test_bearer_and_metering_header_accepted(client: TestClient, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "X-Enable-Overwrite-Metering": "true"}
    assert client.get("/v1/images", headers=headers).status_code == 200


def test_request_id_echoed_or_made(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/images", headers={**auth, "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    made = client.get("/v1/images", headers=auth).headers["x-request-id"]
    assert len(made) >= 16
    assert client.get("/v1/images/missing", headers=auth).headers["x-request-id"]


def test_rate_limit_headers_present_without_limits(
    client: TestClient, auth: dict[str, str]
) -> None:
    r = client.get("/v1/images", headers=auth)
    for name in (
        "x-ratelimit-requests-limit",
        "x-ratelimit-requests-remaining",
        "x-ratelimit-requests-reset",
        "retry-after",
    ):
        assert name in r.headers
    assert r.headers["retry-after"] == "0"
    assert "x-ratelimit-requests-limit" in client.get("/v1/images").headers  # on 401 too


def test_endpoint_limit_from_settings(settings, service, api_key: str) -> None:
    limited = settings.model_copy(update={"rate_limits": {"list": "2/minute"}})
    with TestClient(create_app(limited, service)) as c:
        headers = {"X-Api-Key": api_key}
        first = c.get("/v1/images", headers=headers)
        assert first.headers["x-ratelimit-requests-limit"] == "2"
        assert first.headers["x-ratelimit-requests-remaining"] == "1"
        assert c.get("/v1/images", headers=headers).status_code == 200
        third = c.get("/v1/images", headers=headers)
        assert third.status_code == 429
        assert third.json()["error"]["type"] == "rate_limit_error"
        assert int(third.headers["retry-after"]) >= 1
        assert third.headers["x-ratelimit-requests-remaining"] == "0"
        # other endpoints are not limited
        assert c.post("/v1/images/search", headers=headers, json={"query": "x"}).status_code == 200


def test_per_key_limit_overrides(client: TestClient, service) -> None:
    key = KeyRing(service.metadata).create("acme", {"search": "1/hour"}).secret
    headers = {"X-Api-Key": key}
    assert client.post("/v1/images/search", headers=headers, json={"query": "a"}).status_code == 200
    assert client.post("/v1/images/search", headers=headers, json={"query": "a"}).status_code == 429


def test_unknown_route_has_error_shape(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/nothing", headers=auth)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/images/upload", "/v1/images/search", "/v1/images", "/v1/images/{image_id}"} <= set(
        spec["paths"]
    )
