"""Search by example image: `image_id` on POST /v1/images/search, and the multipart
POST /v1/images/search/image (both extensions)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService
from viewfinder.indexing.worker import IndexingWorker

COLOURS = {
    "red": (255, 0, 0),
    "dark_red": (200, 20, 0),
    "blue": (0, 0, 255),
    "green": (0, 255, 0),
}


def _index(client: TestClient, auth: dict[str, str], worker: IndexingWorker) -> dict[str, str]:
    files = [("images", (f"{n}.png", png_bytes(c), "image/png")) for n, c in COLOURS.items()]
    r = client.post("/v1/images/upload", headers=auth, files=files)
    assert r.status_code == 200
    worker.drain()
    return {n: item["image_id"] for n, item in zip(COLOURS, r.json()["results"], strict=True)}


def _search(client: TestClient, auth: dict[str, str], **body: object) -> list[dict]:
    r = client.post("/v1/images/search", headers=auth, json=body)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_image_id_ranks_the_same_colour_first_and_leaves_itself_out(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    ids = _index(client, auth, worker)
    hits = _search(client, auth, image_id=ids["red"])
    assert [h["image_id"] for h in hits][:1] == [ids["dark_red"]]
    assert ids["red"] not in [h["image_id"] for h in hits]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    # calibrated for image-to-image: a near colour is a likely match, the opposite one is not
    assert scores[0] > 0.5 > scores[-1]
    with_self = _search(client, auth, image_id=ids["red"], include_self=True, max_results=2)
    assert [h["image_id"] for h in with_self] == [ids["red"], ids["dark_red"]]
    assert with_self[0]["score"] > 0.99
    only_close = _search(client, auth, image_id=ids["red"], threshold=0.5)
    assert [h["image_id"] for h in only_close] == [ids["dark_red"]]


def test_another_tenants_image_id_is_404(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker, service: ImageService
) -> None:
    ids = _index(client, auth, worker)
    other = {"X-Api-Key": KeyRing(service.metadata).create("globex").secret}
    r = client.post("/v1/images/search", headers=other, json={"image_id": ids["red"]})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"
    r = client.post("/v1/images/search", headers=auth, json={"image_id": "no-such-image"})
    assert r.status_code == 404


def test_a_search_needs_a_query_or_an_image(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/images/search", headers=auth, json={"max_results": 3})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "query"


def test_text_and_image_weights(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    ids = _index(client, auth, worker)
    text_only = _search(
        client, auth, query="blue", image_id=ids["red"], text_weight=1, image_weight=0
    )
    image_only = _search(
        client, auth, query="blue", image_id=ids["red"], text_weight=0, image_weight=1
    )
    assert text_only[0]["image_id"] == ids["blue"]
    assert image_only[0]["image_id"] == ids["dark_red"]
    # both: the mixed query still leaves the query image out, and scores stay in [0, 1]
    both = _search(client, auth, query="blue", image_id=ids["red"])
    assert ids["red"] not in [h["image_id"] for h in both]
    assert all(0 <= h["score"] <= 1 for h in both)
    r = client.post(
        "/v1/images/search",
        headers=auth,
        json={"image_id": ids["red"], "search_mode": "joined", "query": "x"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "search_mode"


def test_multipart_image_search_stores_nothing(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker, service: ImageService
) -> None:
    ids = _index(client, auth, worker)
    r = client.post(
        "/v1/images/search/image",
        headers=auth,
        files={"image": ("q.png", png_bytes((250, 5, 0)), "image/png")},
        data={"max_results": "2"},
    )
    assert r.status_code == 200, r.text
    assert [h["image_id"] for h in r.json()["results"]] == [ids["red"], ids["dark_red"]]
    assert service.metadata.count_images(tenant="acme") == len(COLOURS)
    mixed = client.post(
        "/v1/images/search/image",
        headers=auth,
        files={"image": ("q.png", png_bytes((250, 5, 0)), "image/png")},
        data={"query": "green", "text_weight": "1", "image_weight": "0"},
    )
    assert mixed.json()["results"][0]["image_id"] == ids["green"]


def test_multipart_image_search_refuses_what_an_upload_refuses(
    client: TestClient, auth: dict[str, str]
) -> None:
    r = client.post(
        "/v1/images/search/image",
        headers=auth,
        files={"image": ("q.txt", b"not an image at all", "text/plain")},
    )
    assert r.status_code == 415
    assert r.json()["error"]["type"] == "validation_error"
    missing = client.post("/v1/images/search/image", headers=auth, data={"query": "red"})
    assert missing.status_code == 400


def test_image_not_indexed_yet_searches_by_its_bytes(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    ids = _index(client, auth, worker)
    r = client.post(
        "/v1/images/upload",
        headers=auth,
        files=[("images", ("q.png", png_bytes((0, 10, 250)), "image/png"))],
        data={"metadata": json.dumps({"requests": [{"indexing_config": {"index": False}}]})},
    )
    stored_only = r.json()["results"][0]["image_id"]
    assert _search(client, auth, image_id=stored_only)[0]["image_id"] == ids["blue"]
