"""A full (or read-only) disk or database is a 503 that says so, keeps nothing half-stored,
and passes: the same upload succeeds once space is freed."""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3

import pytest
from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.config import Settings
from viewfinder.domain.service import ImageService
from viewfinder.stores.disk_reserve import DiskReserve
from viewfinder.stores.factory import local_storage


def _upload(client: TestClient, auth: dict[str, str], n: int, shade: int = 0):
    files = [("images", (f"{i}.png", png_bytes((shade, i, 200)), "image/png")) for i in range(n)]
    # a long caption each, so that the rows need new database pages
    item = {"indexing_config": {"index": True}, "metadata": {"caption": "a red car " * 300}}
    meta = {"requests": [item] * n}
    return client.post(
        "/v1/images/upload", headers=auth, files=files, data={"metadata": json.dumps(meta)}
    )


def _listed(client: TestClient, auth: dict[str, str]) -> int:
    return len(client.get("/v1/images?limit=100", headers=auth).json()["results"])


def _assert_storage_full(r, detail: str, state: str = "full") -> None:
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["type"] == "server_error"
    assert f"storage is {state}" in error["message"] and detail in error["message"]
    assert "internal server error" not in error["message"]
    assert int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("code", "state", "detail"),
    [
        (errno.ENOSPC, "full", "No space left on device"),
        (errno.EROFS, "read-only", "Read-only file system"),  # remounted after disk errors
    ],
)
def test_a_full_disk_under_the_blob_store_is_a_503_and_stores_nothing(
    client: TestClient,
    auth: dict[str, str],
    service: ImageService,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    state: str,
    detail: str,
) -> None:
    assert _upload(client, auth, 1, shade=9).status_code == 200
    put = service.blobs.put
    calls = 0

    def full_after_one(sha256: str, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:  # the second image of the request finds the disk full
            raise OSError(code, detail, "/srv/viewfinder/blobs/ab/cd")
        put(sha256, data)

    monkeypatch.setattr(service.blobs, "put", full_after_one)
    r = _upload(client, auth, 3)
    _assert_storage_full(r, detail, state)
    assert "/srv" not in r.text  # the server's paths are for its log, not its clients
    assert _listed(client, auth) == 1  # no row of the failed request was committed

    monkeypatch.setattr(service.blobs, "put", put)  # space freed: the same request succeeds
    r = _upload(client, auth, 3)
    assert r.status_code == 200 and all(x["indexing_status"] == 1 for x in r.json()["results"])
    assert _listed(client, auth) == 4


@pytest.mark.embedded_only
def test_a_full_sqlite_database_is_a_503_and_stores_nothing(
    client: TestClient, auth: dict[str, str], service: ImageService
) -> None:
    assert _upload(client, auth, 1, shade=9).status_code == 200
    conn: sqlite3.Connection = service.metadata._conn  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL from now on
    _assert_storage_full(_upload(client, auth, 3), "database or disk is full")
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert _listed(client, auth) == 1
    assert _upload(client, auth, 3).status_code == 200
    assert _listed(client, auth) == 4


@pytest.mark.embedded_only
def test_under_the_upload_reserve_uploads_wait_and_deletes_go_on(
    client: TestClient,
    auth: dict[str, str],
    service: ImageService,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = _upload(client, auth, 2).json()["results"]
    free = shutil.disk_usage(settings.data_dir).free
    # as if the data directory's disk had less free than the reserve
    reserve = DiskReserve(local_storage(settings), free + 2**30)
    monkeypatch.setattr(service, "_room_for_uploads", reserve.check)
    _assert_storage_full(_upload(client, auth, 1), "VIEWFINDER_UPLOAD_RESERVE_BYTES")
    assert _listed(client, auth) == 2
    # the room kept lets a user free space: deletes, searches and listings go on
    gone = client.delete(f"/v1/images/{kept[0]['image_id']}", headers=auth)
    assert gone.status_code == 200
    assert client.post("/v1/images/search", headers=auth, json={"query": "x"}).status_code == 200
    assert _listed(client, auth) == 1
