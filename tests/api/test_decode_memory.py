"""Peak memory is a setting, not what clients send, measured on a real server process:
concurrent uploads of huge-pixel images (tiny files that decode to 100 MB each) stay within
VIEWFINDER_DECODE_MEMORY_BYTES, and a large upload is spooled to disk and read a file at a
time, not held whole in memory."""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.server import Server, cli

pytestmark = [pytest.mark.e2e, pytest.mark.embedded_only]

SIDE = 5000  # 25 Mpx: Pillow holds RGB at 4 bytes a pixel, 100 MB per decoded image
DECODED = SIDE * SIDE * 4
BUDGET = DECODED + 8 * 1024 * 1024  # room for one decode at a time
UPLOADS = 6
SLACK = 80 * 1024 * 1024  # request handling, thread stacks, allocator noise


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (10, 120, 200)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc"
)


@needs_proc
def test_concurrent_huge_uploads_stay_within_the_decode_budget(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_DECODE_MEMORY_BYTES": str(BUDGET)}
    key = cli(data_dir, "keys", "create", "acme", env=env).strip()
    png = _huge_png()
    assert len(png) < 2 * 1024 * 1024
    meta = json.dumps({"requests": [{"indexing_config": {"index": False}}]})

    with Server(data_dir, env) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        assert server.proc is not None
        pid = server.proc.pid

        def upload(_: int) -> httpx.Response:
            return http.post(
                "/v1/images/upload",
                headers={"X-Api-Key": key},
                files=[("images", ("huge.png", png, "image/png"))],
                data={"metadata": meta},
            )

        assert upload(0).status_code == 200  # warm: code paths loaded, pools started
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _kib(pid, "VmRSS")
        with ThreadPoolExecutor(UPLOADS) as pool:
            responses = list(pool.map(upload, range(UPLOADS)))
        peak = _kib(pid, "VmHWM")

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    results = [r.json()["results"][0] for r in responses]
    assert all(r["indexing_status"] == 0 for r in results), results
    growth = peak - before
    assert growth < BUDGET + SLACK, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB during {UPLOADS} concurrent uploads; "
        f"the decode budget is {BUDGET / 2**20:.0f} MiB"
    )


@needs_proc
def test_a_large_upload_is_not_held_in_memory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"VIEWFINDER_MODEL": "fake"}
    key = cli(data_dir, "keys", "create", "acme", env=env).strip()
    # a 96 MB request of parts under the 1 MiB Starlette keeps in memory by default
    parts, part_bytes = 100, 960 * 1024
    # PNG-looking files that fail alone, fast: what matters is how their bytes are held
    files = [
        ("images", (f"{n}.png", b"\x89PNG\r\n\x1a\n" + os.urandom(part_bytes), "image/png"))
        for n in range(parts)
    ]
    with Server(data_dir, env) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        assert server.proc is not None
        pid = server.proc.pid
        small = [("images", ("s.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2 * 1024 * 1024)))]
        assert http.post("/v1/images/upload", headers={"X-Api-Key": key}, files=small).is_success
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before = _kib(pid, "VmRSS")
        r = http.post("/v1/images/upload", headers={"X-Api-Key": key}, files=files)
        peak = _kib(pid, "VmHWM")
    assert r.status_code == 200, r.text
    assert [i["indexing_status"] for i in r.json()["results"]] == [3] * parts
    growth = peak - before
    assert growth < parts * part_bytes / 3, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB for a {parts * part_bytes / 2**20:.0f} MiB "
        "upload: its files were held in memory"
    )
