"""Odd but possible input is a 4xx with the error envelope, never a 500."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import png_bytes

pytestmark = pytest.mark.embedded_only


@pytest.mark.parametrize("path", ["/files/x", "/files/x/thumbnail"])
@pytest.mark.parametrize("sig", ["%C3%A9", "%E2%82%AC" * 40, "%FF", ""])
def test_non_ascii_signature_is_403(client: TestClient, path: str, sig: str) -> None:
    r = client.get(f"{path}?expires=99999999999&sig={sig}")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize("offset", ["9223372036854775808", "9223372036854775807", "2147483648"])
def test_offset_is_bounded(client: TestClient, auth: dict[str, str], offset: str) -> None:
    r = client.get(f"/v1/images?offset={offset}", headers=auth)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["type"], error["param"]) == ("validation_error", "offset")
    assert client.get("/v1/images?offset=2147483647", headers=auth).json() == {"results": []}


@pytest.mark.parametrize(
    "weights",
    [
        '"image_weight": 1e999',
        '"text_weight": -1e999',
        '"image_weight": NaN',
        '"image_weight": 1e308, "text_weight": 1e308',  # each finite, their sum is not
    ],
)
def test_search_weights_must_be_finite(
    client: TestClient, auth: dict[str, str], weights: str
) -> None:
    client.post(
        "/v1/images/upload",
        headers=auth,
        files=[("images", ("a.png", png_bytes((200, 0, 0)), "image/png"))],
    )
    body = '{"query": "red", "search_mode": "joined", ' + weights + "}"
    r = client.post(
        "/v1/images/search", headers={**auth, "content-type": "application/json"}, content=body
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] in ("image_weight", "text_weight")


def test_large_json_body_is_refused_unread(client: TestClient, auth: dict[str, str]) -> None:
    body = '{"query": "red", "pad": "' + "x" * (2 * 1024 * 1024) + '"}'
    r = client.post(
        "/v1/images/search", headers={**auth, "content-type": "application/json"}, content=body
    )
    assert r.status_code == 413, r.text
    assert "VIEWFINDER_MAX_JSON_BODY_BYTES" in r.json()["error"]["message"]


def test_url_only_upload_form_is_not_held_to_the_json_cap(
    client: TestClient, auth: dict[str, str]
) -> None:
    # Without file parts, clients send the form urlencoded, a `"` as %5C%22 (6 bytes): about
    # 480 KB of metadata travels as 1.4 MB, over the JSON cap and Starlette's 1 MB per field.
    meta = {
        "image_urls": ["http://127.0.0.1:1/a.png"],
        "requests": [{"metadata": {"q": '"' * 20_000}}] * 12,
    }
    r = client.post("/v1/images/upload", headers=auth, data={"metadata": json.dumps(meta)})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["indexing_status"] == 3  # the URL is refused, alone
