"""POST /v1/images/search."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.indexing.worker import IndexingWorker

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def _index_colours(client: TestClient, auth: dict[str, str], worker: IndexingWorker) -> dict:
    files = [("images", (f"{n}.png", png_bytes(c), "image/png")) for n, c in COLOURS.items()]
    meta = {"requests": [{"metadata": {"caption": f"a {n} square"}} for n in COLOURS]}
    import json

    r = client.post(
        "/v1/images/upload", headers=auth, files=files, data={"metadata": json.dumps(meta)}
    )
    worker.drain()
    return {n: item["image_id"] for n, item in zip(COLOURS, r.json()["results"], strict=True)}


def test_search_ranks_and_scores(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    ids = _index_colours(client, auth, worker)
    r = client.post("/v1/images/search", headers=auth, json={"query": "a blue thing"})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0]["image_id"] == ids["blue"]
    assert results[0]["image_metadata"] == {"caption": "a blue square"}
    scores = [h["score"] for h in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert set(results[0]) == {
        "image_id",
        "image_url",
        "image_metadata",
        "upload_timestamp",
        "score",
        "file_name",  # extension: the file part's name
        "tags",  # extension: what the model sees (no `exif`: a PNG without one)
    }


def test_max_results_and_threshold(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    _index_colours(client, auth, worker)
    one = client.post("/v1/images/search", headers=auth, json={"query": "red", "max_results": 1})
    assert len(one.json()["results"]) == 1
    everything = client.post("/v1/images/search", headers=auth, json={"query": "red"}).json()
    cut = everything["results"][0]["score"] - 1e-6
    strict = client.post(
        "/v1/images/search", headers=auth, json={"query": "red", "threshold": cut}
    ).json()
    assert len(strict["results"]) == 1 and len(everything["results"]) == 3


def test_only_indexed_images_are_searched(client: TestClient, auth: dict[str, str]) -> None:
    client.post(
        "/v1/images/upload",
        headers=auth,
        files=[("images", ("r.png", png_bytes((255, 0, 0)), "image/png"))],
    )
    assert client.post("/v1/images/search", headers=auth, json={"query": "red"}).json() == {
        "results": []
    }


def test_joined_mode_uses_captions(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    ids = _index_colours(client, auth, worker)
    body = {"query": "a green square", "search_mode": "joined", "image_weight": 0, "text_weight": 1}
    r = client.post("/v1/images/search", headers=auth, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["image_id"] == ids["green"]


def test_invalid_bodies_are_400(client: TestClient, auth: dict[str, str]) -> None:
    cases = [
        ({"query": ""}, "query"),
        ({"query": "x", "max_results": 0}, "max_results"),
        ({"query": "x", "max_results": 201}, "max_results"),
        ({"query": "x", "threshold": 1.5}, "threshold"),
        ({"query": "x", "search_mode": "other"}, "search_mode"),
        ({}, "query"),
    ]
    for body, param in cases:
        r = client.post("/v1/images/search", headers=auth, json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["type"] == "validation_error"
        assert r.json()["error"]["param"] == param
    r = client.post(
        "/v1/images/search", headers={**auth, "content-type": "application/json"}, content=b"{x"
    )
    assert r.status_code == 400
