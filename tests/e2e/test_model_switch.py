"""A real server restarted with another model keeps answering while it re-embeds, then swaps."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server, cli

pytestmark = pytest.mark.e2e


def test_switch_model_without_downtime(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli(data_dir, "keys", "create", "acme").strip()
    headers = {"X-Api-Key": key}
    with Server(data_dir, {"VIEWFINDER_MODEL": "fake"}) as server:
        files = [("images", (f"{n}.png", png_bytes((255, n, 0)), "image/png")) for n in range(20)]
        httpx.post(f"{server.url}/v1/images/upload", headers=headers, files=files, timeout=30)
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/v1/status", headers=headers).json()["indexed"] < 20:
            assert time.monotonic() < deadline
            time.sleep(0.1)

    env = {"VIEWFINDER_MODEL": "fake64:0.1", "VIEWFINDER_BATCH_SIZE": "2"}
    with Server(data_dir, env) as server:
        seen_switch = False
        deadline = time.monotonic() + 120
        while True:
            status = httpx.get(f"{server.url}/v1/status", headers=headers).json()
            found = httpx.post(
                f"{server.url}/v1/images/search", headers=headers, json={"query": "red"}
            ).json()["results"]
            assert len(found) == 10  # search keeps answering throughout
            if status["switch"] is None:
                break
            seen_switch = True
            assert status["model_id"] == "fake-32"  # the model answering, not the target
            assert status["switch"]["to_model"] == "fake-64"
            assert 0 <= status["switch"]["done"] <= status["switch"]["total"] == 20
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert seen_switch
        assert status["model_id"] == "fake-64" and status["indexed"] == 20
    out = cli(data_dir, "status", env={"VIEWFINDER_MODEL": "fake64"})
    assert "fake-64" in out and "indexed  20" in out and "switch" not in out
