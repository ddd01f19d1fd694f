"""The CLI tables show tags and the EXIF capture date; `images get` shows all of the EXIF."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from tests.exif_images import exif_block, jpeg_with_exif
from tests.unit.cli.runner import BLUE, as_json, invoke
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient


def test_tables_show_tags_and_taken_date(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with LocalClient(Settings(data_dir=data_dir, model="fake"), tenant="acme") as local:
        up = local.upload(
            [("camera.jpg", jpeg_with_exif(exif_block(orientation=6))), ("b.png", png_bytes(BLUE))]
        )
        local.wait_until_indexed([u.image_id for u in up], timeout_s=30)
    where = ["--data-dir", str(data_dir), "--tenant", "acme"]

    header, *rows = invoke("images", "list", *where).stdout.splitlines()
    assert "taken" in header and "tags" in header
    by_name = {row.split()[-1]: row for row in rows}
    assert "2023-07-14" in by_name["camera.jpg"] and "red" in by_name["camera.jpg"]
    assert "blue" in by_name["b.png"] and "2023" not in by_name["b.png"]

    shown = invoke("images", "get", up[0].image_id, *where).stdout
    assert "taken:     2023-07-14 16:30:05 UTC" in shown
    assert "camera:    Canon EOS R5 (orientation 6)" in shown
    assert "gps:       48.858369, -2.294467" in shown
    assert "tags:      red 0." in shown
    assert "taken:" not in invoke("images", "get", up[1].image_id, *where).stdout

    header, first, *_ = invoke("search", "blue", *where).stdout.splitlines()
    assert "tags" in header and "taken" in header
    assert first.endswith("b.png") and " blue" in first
    (hit, *_) = as_json(invoke("search", "red", "--json", *where))
    assert hit["exif"]["make"] == "Canon" and hit["tags"][0]["name"] == "red"
