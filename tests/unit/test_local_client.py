"""`LocalClient`: the calls of `Client` over a data directory in this process."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

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


def test_image_url_links_to_the_bytes_on_disk(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", model="fake")
    photo = tmp_path / "photos" / "green.png"
    photo.parent.mkdir()
    photo.write_bytes(png_bytes(GREEN))
    with LocalClient(settings) as local:
        (up,) = local.upload([png_bytes(RED)])
        copy = Path(url2pathname(urlparse(up.image_url).path))  # a copy in the blob folder
        assert copy.read_bytes() == png_bytes(RED)
        assert copy.is_relative_to(settings.data_dir.resolve())
        assert local.get_image(up.image_id).image_url == up.image_url

        report = local.index_in_place([photo.resolve()], [photo.parent.resolve()])
        assert report.new == [str(photo.resolve())]
        local.process_queue()
        hit = local.search("green", max_results=1)[0]
        assert hit.image_url == photo.resolve().as_uri()  # the user's own file
        assert local.download(hit) == photo.read_bytes()
