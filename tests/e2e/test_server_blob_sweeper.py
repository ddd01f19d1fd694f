"""A running `viewfinder serve` sweeps the bytes of deleted images on its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import png_bytes
from tests.e2e.server import Server, cli


def test_the_server_sweeps_deleted_bytes_after_the_grace_period(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        "VIEWFINDER_MODEL": "fake",
        "VIEWFINDER_BLOB_GRACE_S": "2",
        "VIEWFINDER_BLOB_SWEEP_INTERVAL_S": "0.1",
    }
    headers = {"X-Api-Key": cli(data_dir, "keys", "create", "acme", env=env).strip()}
    with Server(data_dir, env) as server:
        files = [("images", ("red.png", png_bytes((255, 0, 0)), "image/png"))]
        r = httpx.post(f"{server.url}/v1/images/upload", headers=headers, files=files)
        assert r.status_code == 200, r.text
        image_id = r.json()["results"][0]["image_id"]
        (stored,) = [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]
        assert httpx.delete(f"{server.url}/v1/images/{image_id}", headers=headers).is_success
        assert stored.exists()  # not inline: other uploads may need the same bytes
        deadline = time.monotonic() + 20
        while stored.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not stored.exists()
