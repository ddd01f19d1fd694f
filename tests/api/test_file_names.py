"""Extension `file_name`: the multipart part's name (or a URL's last segment), kept and returned."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.indexing.worker import IndexingWorker


def test_file_names_are_kept_cleaned_and_returned(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    files = [
        ("images", ("Zürich beach.png", png_bytes((255, 0, 0)), "image/png")),
        ("images", ("../../etc/passwd.png", png_bytes((0, 0, 255)), "image/png")),
    ]
    meta = {"image_urls": ["http://127.0.0.1:1/albums/summer/dog%20on%20sand.jpg?w=1"]}
    r = client.post(
        "/v1/images/upload", headers=auth, files=files, data={"metadata": json.dumps(meta)}
    )
    assert r.status_code == 200, r.text
    ids = [item["image_id"] for item in r.json()["results"]]
    worker.drain()

    got = [client.get(f"/v1/images/{i}", headers=auth).json() for i in ids]
    assert [g["file_name"] for g in got] == ["Zürich beach.png", "passwd.png", "dog on sand.jpg"]
    assert got[2]["status"] == "failed"  # the URL is refused, and its card still has a name
    listed = client.get("/v1/images", headers=auth).json()["results"]
    assert {im["image_id"]: im["file_name"] for im in listed} == {
        i: g["file_name"] for i, g in zip(ids, got, strict=True)
    }
    hits = client.post(
        "/v1/images/search", headers=auth, json={"query": "a red square", "max_results": 5}
    ).json()["results"]
    assert {h["image_id"]: h["file_name"] for h in hits} == {
        ids[0]: "Zürich beach.png",
        ids[1]: "passwd.png",
    }


def test_a_part_without_a_usable_name_has_no_file_name(
    client: TestClient, auth: dict[str, str]
) -> None:
    files = [("images", ("..", png_bytes((1, 2, 3)), "image/png"))]
    (item,) = client.post("/v1/images/upload", headers=auth, files=files).json()["results"]
    got = client.get(f"/v1/images/{item['image_id']}", headers=auth).json()
    assert "file_name" not in got
