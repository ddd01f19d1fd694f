"""POST /v1/images/upload through the in-process client."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import jpeg_bytes, png_bytes
from viewfinder.indexing.worker import IndexingWorker


def _upload(client: TestClient, auth: dict[str, str], files: list, meta: dict | None = None):
    data = {"metadata": json.dumps(meta)} if meta is not None else {}
    return client.post("/v1/images/upload", headers=auth, files=files, data=data)


def test_upload_queues_then_worker_indexes(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    meta = {"requests": [{"indexing_config": {"index": True}, "metadata": {"caption": "red"}}]}
    r = _upload(client, auth, [("images", ("a.png", png_bytes((255, 0, 0)), "image/png"))], meta)
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert item["indexing_status"] == 1 and item["status"] == "queued"
    assert item["image_url"].startswith("http://testserver/files/")
    assert isinstance(item["upload_timestamp"], float)
    worker.drain()
    got = client.get(f"/v1/images/{item['image_id']}", headers=auth).json()
    assert got["indexing_status"] == 2 and got["status"] == "indexed"
    assert got["metadata"] == {"caption": "red"}
    assert (got["width"], got["height"], got["content_type"]) == (64, 48, "image/png")


def test_requests_pair_with_files_then_urls_and_index_false(
    client: TestClient, auth: dict[str, str]
) -> None:
    meta = {
        "requests": [
            {"indexing_config": {"index": False}, "metadata": {"n": 1}},
            {"metadata": {"n": 2}},
        ]
    }
    files = [
        ("images", ("one.jpg", jpeg_bytes((0, 0, 255)), "image/jpeg")),
        ("images", ("two.png", png_bytes((0, 255, 0)), "image/png")),
        ("images", ("three.png", png_bytes((9, 9, 9)), "image/png")),
    ]
    results = _upload(client, auth, files, meta).json()["results"]
    assert [r["indexing_status"] for r in results] == [0, 1, 1]
    metas = [client.get(f"/v1/images/{r['image_id']}", headers=auth).json() for r in results]
    assert [m["metadata"] for m in metas] == [{"n": 1}, {"n": 2}, {}]


def test_bad_item_fails_alone(client: TestClient, auth: dict[str, str]) -> None:
    files = [
        ("images", ("ok.png", png_bytes((1, 2, 3)), "image/png")),
        ("images", ("bad.png", b"this is not an image", "image/png")),
    ]
    ok, bad = _upload(client, auth, files).json()["results"]
    assert ok["indexing_status"] == 1 and "error" not in ok
    assert bad["indexing_status"] == 3 and bad["status"] == "failed"
    assert "JPEG" in bad["error"] or "format" in bad["error"].lower()


def test_refused_url_is_a_per_item_failure(client: TestClient, auth: dict[str, str]) -> None:
    meta = {"image_urls": ["http://127.0.0.1:1/x.png", "ftp://example.com/a.png"]}
    files = [("images", ("ok.png", png_bytes((1, 2, 3)), "image/png"))]
    results = _upload(client, auth, files, meta).json()["results"]
    assert [r["indexing_status"] for r in results] == [1, 3, 3]
    assert all(r["error"] for r in results[1:])


def test_no_images_is_400(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/images/upload", headers=auth, data={"metadata": "{}"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "validation_error"
    assert r.json()["error"]["param"] == "images"


def test_bad_metadata_json_is_400(client: TestClient, auth: dict[str, str]) -> None:
    files = [("images", ("ok.png", png_bytes((1, 2, 3)), "image/png"))]
    r = client.post("/v1/images/upload", headers=auth, files=files, data={"metadata": "{nope"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "metadata"


def test_request_over_the_size_cap_is_413(settings, service, api_key: str) -> None:
    from viewfinder.api.app import create_app

    small = settings.model_copy(update={"max_request_bytes": 10_000})
    with TestClient(create_app(small, service)) as c:
        files = [("images", ("big.png", b"x" * 20_000, "image/png"))]
        r = c.post("/v1/images/upload", headers={"X-Api-Key": api_key}, files=files)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "validation_error"


def test_too_many_images_is_413(settings, service, api_key: str) -> None:
    from viewfinder.api.app import create_app

    few = settings.model_copy(update={"max_images_per_request": 2})
    with TestClient(create_app(few, service)) as c:
        files = [("images", (f"{n}.png", png_bytes((n, n, n)), "image/png")) for n in range(3)]
        r = c.post("/v1/images/upload", headers={"X-Api-Key": api_key}, files=files)
    assert r.status_code == 413


def test_alias_without_v1(client: TestClient, auth: dict[str, str]) -> None:
    files = [("images", ("ok.png", png_bytes((1, 2, 3)), "image/png"))]
    r = client.post("/images/upload", headers=auth, files=files)
    assert r.status_code == 200
    assert r.json()["results"][0]["indexing_status"] == 1


@pytest.mark.embedded_only
def test_far_too_many_file_parts_are_refused_while_read(settings, service, api_key: str) -> None:
    from viewfinder.api.app import create_app

    few = settings.model_copy(update={"max_images_per_request": 2})
    with TestClient(create_app(few, service)) as c:
        files = [("images", (f"{n}.png", b"x" * 70_000, "image/png")) for n in range(50)]
        r = c.post("/v1/images/upload", headers={"X-Api-Key": api_key}, files=files)
    assert r.status_code == 400, r.text
    assert "Too many files" in r.json()["error"]["message"]


@pytest.mark.embedded_only
def test_the_first_parts_stay_in_memory_and_later_ones_spool(
    client: TestClient, auth: dict[str, str], service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo-sized part is parsed without a disk round trip (a thread hop a chunk), but a
    request's parts past the first few spool to disk, so a large upload is not held in
    memory (tests/api/test_decode_memory.py measures that)."""
    from viewfinder.api.upload_form import PART_IN_MEMORY, PARTS_IN_MEMORY

    rolled: list[bool] = []
    upload = service.upload

    def watched(tenant, items, *args):  # noqa: ANN001, ANN202
        rolled.extend(bool(item.file._rolled) for item in items)
        return upload(tenant, items, *args)

    monkeypatch.setattr(service, "upload", watched)
    big = jpeg_bytes((9, 9, 9), (16, 16)) + b"\0" * (PART_IN_MEMORY // 4)  # ~256 KiB
    parts = PARTS_IN_MEMORY + 3
    files = [("images", (f"{n}.jpg", big, "image/jpeg")) for n in range(parts)]
    r = _upload(client, auth, files)
    assert r.status_code == 200, r.text
    assert [x["indexing_status"] for x in r.json()["results"]] == [1] * parts
    assert rolled == [False] * PARTS_IN_MEMORY + [True] * 3


def test_a_heic_photo_is_stored_indexed_and_shown(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    heic = (Path(__file__).resolve().parents[1] / "data" / "heic" / "rotated.heic").read_bytes()
    r = _upload(client, auth, [("images", ("IMG_0001.HEIC", heic, "image/heic"))])
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert item["indexing_status"] == 1
    worker.drain()
    image = client.get(f"/v1/images/{item['image_id']}", headers=auth).json()
    assert image["indexing_status"] == 2
    assert (image["content_type"], image["width"], image["height"]) == ("image/heic", 64, 96)
    original = client.get(image["image_url"].replace("http://testserver", ""))
    assert original.headers["content-type"] == "image/heic" and original.content == heic
    # browsers show few HEICs: the web page's thumbnails are JPEG, upright
    thumb = client.get(f"/v1/images/{item['image_id']}/thumbnail", headers=auth)
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 96)
