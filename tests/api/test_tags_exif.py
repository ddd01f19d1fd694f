"""Extensions `tags` (set by indexing) and `exif` (read at ingest) on image objects and hits."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from tests.exif_images import exif_block, jpeg_with_exif
from viewfinder.indexing.worker import IndexingWorker


def test_tags_and_exif_are_returned_everywhere(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    files = [
        ("images", ("camera.jpg", jpeg_with_exif(exif_block(orientation=6)), "image/jpeg")),
        ("images", ("blue.png", png_bytes((0, 0, 255)), "image/png")),
    ]
    r = client.post("/v1/images/upload", headers=auth, files=files)
    assert r.status_code == 200, r.text
    camera, blue = (item["image_id"] for item in r.json()["results"])
    queued = client.get(f"/v1/images/{camera}", headers=auth).json()
    assert "tags" not in queued  # tags come with indexing
    assert queued["exif"] == {
        "taken_at": 1689352205.0,  # 2023-07-14 18:30:05 +02:00
        "make": "Canon",
        "model": "EOS R5",
        "orientation": 6,
        "gps": {"lat": 48.8583694, "lon": -2.2944667},
    }
    worker.drain()

    got = {i: client.get(f"/v1/images/{i}", headers=auth).json() for i in (camera, blue)}
    assert got[camera]["tags"][0]["name"] == "red"  # the fake model names colours
    assert got[blue]["tags"][0] == {
        "name": "blue",
        "confidence": got[blue]["tags"][0]["confidence"],
    }
    assert got[blue]["tags"][0]["confidence"] > 0.9
    for image in got.values():
        confidences = [t["confidence"] for t in image["tags"]]
        assert confidences == sorted(confidences, reverse=True) and len(confidences) <= 5
        assert all(c >= 0.05 for c in confidences)  # VIEWFINDER_MIN_TAG_CONFIDENCE
    assert "exif" not in got[blue]  # no EXIF: no key, not null
    listed = client.get("/v1/images", headers=auth).json()["results"]
    assert {im["image_id"]: (im["tags"], im.get("exif")) for im in listed} == {
        i: (g["tags"], g.get("exif")) for i, g in got.items()
    }
    hits = client.post(
        "/v1/images/search", headers=auth, json={"query": "a red square", "max_results": 5}
    ).json()["results"]
    assert {h["image_id"]: (h["tags"], h.get("exif")) for h in hits} == {
        i: (g["tags"], g.get("exif")) for i, g in got.items()
    }


def test_an_exif_block_without_kept_fields_or_with_garbage_leaves_exif_out(
    client: TestClient, auth: dict[str, str]
) -> None:
    bad = exif_block(taken="garbage", offset="x", make=None, model=None, orientation=42, gps=None)
    files = [("images", ("bad.jpg", jpeg_with_exif(bad), "image/jpeg"))]
    (item,) = client.post("/v1/images/upload", headers=auth, files=files).json()["results"]
    assert item["status"] == "queued"
    assert "exif" not in client.get(f"/v1/images/{item['image_id']}", headers=auth).json()
