"""The client sends each file's own name, and reads `file_name` back on images and hits."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from tests.unit.client.conftest import BLUE, RED
from viewfinder import Client


def test_paths_and_named_bytes_keep_their_names(vf: Client, tmp_path: Path) -> None:
    red = tmp_path / "holiday" / "red beach.png"
    red.parent.mkdir()
    red.write_bytes(png_bytes(RED))
    up = vf.upload([red, ("blue sky.png", png_bytes(BLUE))])
    images = vf.wait_until_indexed([u.image_id for u in up], timeout_s=30)
    assert [im.file_name for im in images] == ["red beach.png", "blue sky.png"]
    assert [im.metadata for im in images] == [{}, {}]  # the name is not smuggled in metadata
    hit = vf.search("red", max_results=1)[0]
    assert (hit.image_id, hit.file_name) == (up[0].image_id, "red beach.png")
