"""Local commands remove image bytes nothing has needed for the grace period when they end."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient


def _stored(data_dir: Path) -> int:
    return sum(1 for p in (data_dir / "blobs").rglob("*") if p.is_file())


def test_deleted_bytes_go_at_close_once_past_the_grace_period(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with LocalClient(Settings(data_dir=data_dir, model="fake")) as local:
        kept, deleted = local.upload([png_bytes((255, 0, 0)), png_bytes((0, 255, 0))])
        local.delete_image(deleted.image_id)
    assert _stored(data_dir) == 2  # within the grace period (an hour by default): kept
    with LocalClient(Settings(data_dir=data_dir, model="fake", blob_grace_s=0)) as local:
        assert _stored(data_dir) == 2
    assert _stored(data_dir) == 1  # the next command past the grace period removed them
    with LocalClient(Settings(data_dir=data_dir, model="fake")) as local:
        assert local.download(kept) == png_bytes((255, 0, 0))
