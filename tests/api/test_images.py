"""List, get, delete, image bytes and tenant isolation."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.domain.blob_sweeper import BlobSweeper, SweepOptions
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService
from viewfinder.indexing.worker import IndexingWorker


def _put(client: TestClient, auth: dict[str, str], colour: tuple[int, int, int]) -> dict:
    files = [("images", ("x.png", png_bytes(colour), "image/png"))]
    return client.post("/v1/images/upload", headers=auth, files=files).json()["results"][0]


def test_list_newest_first_with_paging(client: TestClient, auth: dict[str, str]) -> None:
    ids = [_put(client, auth, (n, 0, 0))["image_id"] for n in range(3)]
    listed = client.get("/v1/images", headers=auth).json()["results"]
    assert [i["image_id"] for i in listed] == ids[::-1]
    page = client.get("/v1/images?limit=1&offset=1", headers=auth).json()["results"]
    assert [i["image_id"] for i in page] == [ids[1]]
    keys = set(listed[0])
    assert {"image_id", "image_url", "indexing_status", "upload_timestamp", "metadata"} <= keys
    assert {"width", "height", "content_type", "size_bytes", "status"} <= keys


def test_bad_list_params_are_400(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/images?limit=0", headers=auth)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "validation_error",
        "message": r.json()["error"]["message"],
        "param": "limit",
    }


def test_get_unknown_is_404(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/images/nope", headers=auth)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_delete_removes_everywhere(
    client: TestClient, auth: dict[str, str], worker: IndexingWorker, service: ImageService
) -> None:
    item = _put(client, auth, (255, 0, 0))
    worker.drain()
    image_id = item["image_id"]
    sha = service.metadata.get_image("acme", image_id).sha256  # type: ignore[union-attr]
    assert client.get(item["image_url"]).status_code == 200
    r = client.delete(f"/v1/images/{image_id}", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "success"
    assert client.get(f"/v1/images/{image_id}", headers=auth).status_code == 404
    assert client.get("/v1/images", headers=auth).json()["results"] == []
    hits = client.post("/v1/images/search", headers=auth, json={"query": "red"}).json()
    assert hits["results"] == []
    assert image_id not in service.vectors.ids()
    assert client.get(item["image_url"]).status_code == 404
    # the bytes go once unneeded for the grace period, by the sweeper (never inline)
    sweeper = BlobSweeper(service.metadata, service.blobs, SweepOptions(grace_s=60))
    assert sweeper.sweep_once().removed == 0 and service.blobs.exists(sha)
    assert sweeper.sweep_once(now=time.time() + 61).removed == 1
    assert not service.blobs.exists(sha)
    assert client.delete(f"/v1/images/{image_id}", headers=auth).status_code == 404


def test_shared_bytes_survive_deleting_one_copy(
    client: TestClient, auth: dict[str, str], service: ImageService
) -> None:
    a = _put(client, auth, (5, 5, 5))
    b = _put(client, auth, (5, 5, 5))
    client.delete(f"/v1/images/{a['image_id']}", headers=auth)
    assert client.get(b["image_url"]).content == png_bytes((5, 5, 5))


def test_image_url_serves_bytes_and_rejects_tampering(
    client: TestClient, auth: dict[str, str]
) -> None:
    item = _put(client, auth, (0, 0, 255))
    r = client.get(item["image_url"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content == png_bytes((0, 0, 255))
    url = urlparse(item["image_url"])
    q = parse_qs(url.query)
    tampered = f"{url.path}?expires={int(q['expires'][0]) + 60}&sig={q['sig'][0]}"
    bad = client.get(tampered)
    assert bad.status_code == 403 and bad.json()["error"]["type"] == "permission_error"
    expired_sig = client.app.state.ctx.signer._mac(item["image_id"], 1000)  # type: ignore[attr-defined]
    expired = client.get(f"{url.path}?expires=1000&sig={expired_sig}")
    assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]


def test_tenants_never_see_each_other(
    client: TestClient, auth: dict[str, str], service: ImageService, worker: IndexingWorker
) -> None:
    ring = KeyRing(service.metadata)
    other = {"Authorization": f"Bearer {ring.create('globex').secret}"}
    same_tenant = {"X-Api-Key": ring.create("acme").secret}
    item = _put(client, auth, (255, 0, 0))
    worker.drain()
    image_id = item["image_id"]
    assert client.get(f"/v1/images/{image_id}", headers=other).status_code == 404
    assert client.delete(f"/v1/images/{image_id}", headers=other).status_code == 404
    assert client.get("/v1/images", headers=other).json()["results"] == []
    assert client.post("/v1/images/search", headers=other, json={"query": "red"}).json() == {
        "results": []
    }
    # a second key of the same tenant shares its images
    assert client.get(f"/v1/images/{image_id}", headers=same_tenant).status_code == 200
    found = client.post("/v1/images/search", headers=same_tenant, json={"query": "red"}).json()
    assert [h["image_id"] for h in found["results"]] == [image_id]
