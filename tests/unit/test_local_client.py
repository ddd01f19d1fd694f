"""`LocalClient`: the calls of `Client` over a data directory in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import png_bytes
from viewfinder.client import IndexingTimeout
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient

RED, GREEN = (255, 0, 0), (0, 255, 0)


def test_wait_until_indexed_raises_when_time_runs_out(tmp_path: Path) -> None:
    # A slow model (0.5 s an image) on background threads: not done within 0.1 s.
    settings = Settings(data_dir=tmp_path / "data", model="fake:0.5")
    with LocalClient(settings, background=True) as local:
        up = local.upload([png_bytes(RED), b"not an image"])
        with pytest.raises(IndexingTimeout) as caught:
            local.wait_until_indexed([up[0].image_id, up[1].image_id], timeout_s=0.1)
        assert caught.value.pending == [up[0].image_id]
        assert up[1].image_id in caught.value.failed
        assert "unsupported image type" in caught.value.failed[up[1].image_id]
        done = local.wait_until_indexed([up[0].image_id], timeout_s=30)
        assert done[0].status == "indexed"
