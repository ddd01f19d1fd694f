"""Duplicates: `duplicate_of` and `indexing_config.dedupe` on upload, and the near-duplicate
routes GET /v1/images/{id}/duplicates and GET /v1/duplicates (extensions)."""

from __future__ import annotations

import io
import json

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import png_bytes
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService
from viewfinder.indexing.worker import IndexingWorker


def gradient(width: int = 96, height: int = 64, *, vertical: bool = False) -> Image.Image:
    """Blue to yellow (dark to bright) across the image: the fake model sees one mean colour
    either way, the perceptual hash sees which way it runs."""
    ramp = np.linspace(0.0, 1.0, height if vertical else width)
    t = ramp[:, None] * np.ones((1, width)) if vertical else np.ones((height, 1)) * ramp[None, :]
    rgb = np.stack([255 * t, 255 * t, 255 * (1 - t)], axis=2).astype(np.uint8)
    return Image.fromarray(rgb)


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _upload(
    client: TestClient, auth: dict[str, str], blobs: list[bytes], **config: object
) -> list[dict]:
    files = [("images", (f"{n}.img", b, "application/octet-stream")) for n, b in enumerate(blobs)]
    meta = {"requests": [{"indexing_config": config} for _ in blobs]}
    r = client.post(
        "/v1/images/upload", headers=auth, files=files, data={"metadata": json.dumps(meta)}
    )
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_exact_reupload_says_duplicate_of(
    client: TestClient, auth: dict[str, str], service: ImageService
) -> None:
    data = png_bytes((10, 200, 30))
    first = _upload(client, auth, [data])[0]
    assert "duplicate_of" not in first
    again, twin = _upload(client, auth, [data, data])
    assert again["duplicate_of"] == first["image_id"] != again["image_id"]
    assert twin["duplicate_of"] == first["image_id"]
    assert service.metadata.count_images(tenant="acme") == 3  # stored all the same
    within = _upload(client, auth, [png_bytes((1, 2, 3)), png_bytes((1, 2, 3))])
    assert within[1]["duplicate_of"] == within[0]["image_id"]


def test_dedupe_returns_the_existing_image_and_stores_nothing(
    client: TestClient, auth: dict[str, str], service: ImageService
) -> None:
    data = png_bytes((10, 200, 30))
    first = _upload(client, auth, [data])[0]
    deduped, fresh = _upload(client, auth, [data, png_bytes((5, 5, 5))], dedupe=True)
    assert deduped["image_id"] == first["image_id"] == deduped["duplicate_of"]
    assert deduped["upload_timestamp"] == first["upload_timestamp"]
    assert "duplicate_of" not in fresh
    assert service.metadata.count_images(tenant="acme") == 2
    listed = client.get("/v1/images", headers=auth).json()["results"]
    assert sorted(i["image_id"] for i in listed) == sorted([first["image_id"], fresh["image_id"]])
    # the same bytes twice in one deduplicating upload: one image
    a, b = _upload(client, auth, [png_bytes((9, 9, 9)), png_bytes((9, 9, 9))], dedupe=True)
    assert b["image_id"] == a["image_id"] == b["duplicate_of"]
    assert service.metadata.count_images(tenant="acme") == 3


def test_near_duplicates_group_a_resized_copy(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker
) -> None:
    picture = gradient()
    original, copy, turned, green = (
        r["image_id"]
        for r in _upload(
            client,
            auth,
            [
                encoded(picture),
                encoded(picture.resize((48, 32)), "JPEG", quality=60),
                encoded(gradient(vertical=True)),  # the same mean colour, another picture
                png_bytes((0, 255, 0)),
            ],
        )
    )
    worker.drain()
    r = client.get(f"/v1/images/{original}/duplicates", headers=auth)
    assert r.status_code == 200, r.text
    found = r.json()["results"]
    assert [d["image_id"] for d in found] == [copy]
    assert found[0]["similarity"] > 0.99 and 0 <= found[0]["hamming"] <= 14
    groups = client.get("/v1/duplicates", headers=auth).json()["results"]
    assert [[i["image_id"] for i in g["images"]] for g in groups] == [[original, copy]]
    assert client.get(f"/v1/images/{green}/duplicates", headers=auth).json()["results"] == []
    assert turned not in {d["image_id"] for d in found}


def test_duplicates_stay_within_a_tenant(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker, service: ImageService
) -> None:
    r = client.get("/v1/images/nope/duplicates", headers=auth)
    assert r.status_code == 404
    assert client.get("/v1/duplicates", headers=auth).json() == {"results": []}
    mine = _upload(client, auth, [encoded(gradient())])[0]
    other = {"X-Api-Key": KeyRing(service.metadata).create("globex").secret}
    theirs = _upload(client, other, [encoded(gradient())], dedupe=True)[0]
    assert "duplicate_of" not in theirs and theirs["image_id"] != mine["image_id"]
    worker.drain()
    assert client.get("/v1/duplicates", headers=auth).json() == {"results": []}
    r = client.get(f"/v1/images/{mine['image_id']}/duplicates", headers=other)
    assert r.status_code == 404
