"""The real server process: upload, index, search; and a SIGKILL mid-indexing."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import COCO_MINI, png_bytes
from tests.e2e.server import Server, cli

pytestmark = pytest.mark.e2e


def _photos(n: int) -> list[tuple[str, bytes]]:
    """Real photos from coco_mini when present, else distinct generated images."""
    if COCO_MINI.exists():
        files = sorted((COCO_MINI / "images").glob("*.jpg"))[:n]
        return [(f.name, f.read_bytes()) for f in files]
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.effect_noise((96, 64), 20 + i).convert("RGB").save(buf, format="JPEG")
        out.append((f"gen{i}.jpg", buf.getvalue()))
    return out


def _wait_indexed(url: str, headers: dict[str, str], ids: list[str], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = httpx.get(f"{url}/v1/images?limit=1000", headers=headers).json()["results"]
        statuses = {i["image_id"]: i["indexing_status"] for i in listed}
        if all(statuses.get(i) == 2 for i in ids):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"not indexed in time: {statuses}")


def test_upload_index_search_over_http(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli(data_dir, "keys", "create", "acme", env={"VIEWFINDER_MODEL": "fake"}).strip()
    assert key.startswith("vf_") and "\n" not in key
    headers = {"X-Api-Key": key}
    with Server(data_dir, {"VIEWFINDER_MODEL": "fake"}) as server:
        photos = _photos(4)
        files = [("images", (name, data, "image/jpeg")) for name, data in photos]
        files.append(("images", ("red.png", png_bytes((255, 0, 0)), "image/png")))
        meta = {"requests": [{"metadata": {"name": name}} for name, _ in photos]}
        r = httpx.post(
            f"{server.url}/v1/images/upload",
            headers=headers,
            files=files,
            data={"metadata": json.dumps(meta)},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["indexing_status"] for x in results] == [1] * 5
        ids = [x["image_id"] for x in results]
        _wait_indexed(server.url, headers, ids, 60)
        found = httpx.post(
            f"{server.url}/v1/images/search",
            headers=headers,
            json={"query": "something red", "max_results": 3, "threshold": None},
        ).json()["results"]
        assert found[0]["image_id"] == ids[-1]
        picture = httpx.get(found[0]["image_url"])
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        first = httpx.get(results[0]["image_url"])
        assert first.content == photos[0][1]


def test_sigkill_mid_indexing_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"VIEWFINDER_MODEL": "fake:0.1", "VIEWFINDER_BATCH_SIZE": "4"}
    key = cli(data_dir, "keys", "create", "acme", env=env).strip()
    headers = {"X-Api-Key": key}
    acknowledged: list[str] = []
    server = Server(data_dir, env).start()
    stop = threading.Event()

    def uploader() -> None:
        n = 0
        while not stop.is_set() and n < 100:
            try:
                # four images a request: uploads outpace the slowed-down indexing
                files = [
                    ("images", (f"{n}-{i}.png", png_bytes((n % 256, i, 7)), "image/png"))
                    for i in range(4)
                ]
                r = httpx.post(
                    f"{server.url}/v1/images/upload", headers=headers, files=files, timeout=10
                )
            except httpx.HTTPError:
                return  # the server died under us: this upload was never acknowledged
            if r.status_code == 200:
                acknowledged.extend(x["image_id"] for x in r.json()["results"])
            n += 1

    thread = threading.Thread(target=uploader)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = httpx.get(f"{server.url}/v1/status", headers=headers).json()
            if status["indexed"] >= 4 and status["queued"] >= 4:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("never caught the server mid-indexing")
        server.kill()
    finally:
        stop.set()
        thread.join()
    assert len(acknowledged) >= 10
    with Server(data_dir, {"VIEWFINDER_MODEL": "fake"}) as again:
        statuses = _wait_indexed(again.url, headers, acknowledged, 120)
        assert set(acknowledged) <= set(statuses)
    conn = sqlite3.connect(data_dir / "vectors.db" / "index.sqlite")  # the id -> row table
    rows = conn.execute("SELECT image_id FROM ids").fetchall()
    assert len(rows) == len({r[0] for r in rows}) == len(statuses)  # one vector per image
    assert set(acknowledged) <= {r[0] for r in rows}
