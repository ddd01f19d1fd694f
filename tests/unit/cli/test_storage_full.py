"""A command that finds its storage full or read-only says so in one line and exits 2;
nothing is half-stored, and the same command succeeds once the storage is fixed."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.cli.runner import BLUE, GREEN, RED, as_json, invoke
from viewfinder.stores.local_blobs import LocalBlobStore


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "error: storage is full at /srv/blobs/x (No space left on device); free"),
        (errno.EROFS, "error: storage is read-only at /srv/blobs/x (Read-only file system); make"),
    ],
)
def test_index_on_a_full_disk_says_so_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, says: str
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    photos.mkdir()
    for n, colour in enumerate((RED, GREEN, BLUE)):
        Image.new("RGB", (32, 24), colour).save(photos / f"{n}.png")
    put = LocalBlobStore.put

    def refused(self: LocalBlobStore, sha256: str, data: bytes) -> None:
        raise OSError(code, os_message(code), "/srv/blobs/x")

    monkeypatch.setattr(LocalBlobStore, "put", refused)
    result = invoke("index", str(photos), "--data-dir", str(data), "--no-progress")
    assert result.exit_code == 2
    assert says in result.stderr
    assert "Traceback" not in result.output

    monkeypatch.setattr(LocalBlobStore, "put", put)  # space freed
    assert invoke("index", str(photos), "--data-dir", str(data), "--no-progress").exit_code == 0
    listed = as_json(invoke("images", "list", "--data-dir", str(data), "--json"))
    assert len(listed) == 3


def os_message(code: int) -> str:
    return {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}[code]


def test_a_database_that_cannot_be_opened_is_one_line_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "viewfinder.db").mkdir(parents=True)  # not a file SQLite can open
    result = invoke("keys", "create", "acme", "--data-dir", str(data))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open database ")
    assert "viewfinder.db" in result.stderr and "Traceback" not in result.output
