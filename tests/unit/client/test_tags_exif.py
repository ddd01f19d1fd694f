"""The client and LocalClient read `tags` and `exif` as Tag and Exif objects, alike."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from tests.exif_images import jpeg_with_exif
from tests.unit.client.conftest import BLUE
from viewfinder import Client
from viewfinder.client import Exif, Gps, Tag
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient

EXIF = Exif(taken_at=1689352205.0, make="Canon", model="EOS R5", gps=Gps(48.8583694, -2.2944667))


def test_remote_and_local_images_carry_tags_and_exif(vf: Client, tmp_path: Path) -> None:
    files = [("camera.jpg", jpeg_with_exif()), ("blue.png", png_bytes(BLUE))]
    up = vf.upload(files)
    remote = vf.wait_until_indexed([u.image_id for u in up], timeout_s=30)
    with LocalClient(Settings(data_dir=tmp_path / "data", model="fake")) as local:
        mine = local.upload(files)
        local.process_queue()
        here = [local.get_image(u.image_id) for u in mine]
        local_hit = local.search("blue", max_results=1)[0]
    for camera, blue in (remote, here):
        assert camera.exif == EXIF and blue.exif is None
        assert camera.tags[0].name == "red" and isinstance(camera.tags[0], Tag)
        assert blue.tags[0].name == "blue" and blue.tags[0].confidence > 0.9
    assert [t.name for t in remote[1].tags] == [t.name for t in here[1].tags]
    hit = vf.search("blue", max_results=1)[0]
    assert hit.tags == remote[1].tags and hit.exif is None
    assert local_hit.tags == here[1].tags
    assert vf.list_images()[0].exif == EXIF or vf.list_images()[1].exif == EXIF
