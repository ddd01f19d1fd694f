"""A command that finds its disk full says so in one line and exits 2; nothing is half-stored,
and the same command succeeds once space is freed."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.cli.runner import BLUE, GREEN, RED, as_json, invoke
from viewfinder.stores.local_blobs import LocalBlobStore


def test_index_on_a_full_disk_says_so_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    photos.mkdir()
    for n, colour in enumerate((RED, GREEN, BLUE)):
        Image.new("RGB", (32, 24), colour).save(photos / f"{n}.png")
    put = LocalBlobStore.put

    def full(self: LocalBlobStore, sha256: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalBlobStore, "put", full)
    result = invoke("index", str(photos), "--data-dir", str(data), "--no-progress")
    assert result.exit_code == 2
    assert "error: storage is full (No space left on device)" in result.stderr
    assert "Traceback" not in result.output

    monkeypatch.setattr(LocalBlobStore, "put", put)  # space freed
    assert invoke("index", str(photos), "--data-dir", str(data), "--no-progress").exit_code == 0
    listed = as_json(invoke("images", "list", "--data-dir", str(data), "--json"))
    assert len(listed) == 3
