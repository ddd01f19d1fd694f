"""`InPlaceIndexer`: what a run over files in place records, keeps and removes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from viewfinder.config import Settings
from viewfinder.domain.in_place import InPlaceReport
from viewfinder.local_client import LocalClient

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalClient]:
    with LocalClient(Settings(data_dir=tmp_path / "data", model="fake")) as client:
        yield client


def _folder(root: Path, **colours: tuple[int, int, int]) -> Path:
    root.mkdir(parents=True)
    for name, rgb in colours.items():
        (root / f"{name}.png").write_bytes(png_bytes(rgb))
    return root.resolve()


def _sync(local: LocalClient, *roots: Path) -> InPlaceReport:
    files = sorted(p for root in roots for p in root.rglob("*.png"))
    report = local.index_in_place(files, list(roots))
    local.process_queue()
    return report


def test_a_touched_file_is_remembered_not_indexed_again(local: LocalClient, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "a", red=RED)
    _sync(local, folder)
    (before,) = local.service.metadata.in_place_files("default")
    later = before.mtime + 100
    os.utime(folder / "red.png", (later, later))  # same bytes, new mtime
    report = _sync(local, folder)
    assert report.unchanged == 1 and not report.changed and not report.queued
    (after,) = local.service.metadata.in_place_files("default")
    assert after.image_id == before.image_id and after.mtime == later
    assert local.get_image(after.image_id).status == "indexed"


def test_only_files_under_the_paths_given_are_removed(local: LocalClient, tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", red=RED)
    b = _folder(tmp_path / "b", green=GREEN, blue=BLUE)
    _sync(local, a, b)
    (green,) = [f for f in local.service.metadata.in_place_files("default") if "green" in f.path]
    local.thumbnail(green.image_id, 64)
    thumbnails = local.settings.data_dir / "thumbnails"
    assert list(thumbnails.rglob(f"{green.sha256}-*"))
    (b / "green.png").unlink()
    report = _sync(local, a)  # b was not named: its missing file is left alone
    assert report.removed == [] and report.unchanged == 1
    assert len(local.service.metadata.in_place_files("default")) == 3
    report = _sync(local, b)
    assert report.removed == [str(b / "green.png")]
    assert len(local.list_images()) == 2
    assert not list(thumbnails.rglob(f"{green.sha256}-*"))  # its thumbnails went with it


def test_a_file_moved_between_folders_keeps_its_image(local: LocalClient, tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", red=RED)
    b = _folder(tmp_path / "b", blue=BLUE)
    _sync(local, a, b)
    (red_id,) = [
        f.image_id for f in local.service.metadata.in_place_files("default") if "red" in f.path
    ]
    (a / "red.png").rename(b / "red.png")
    report = _sync(local, b)  # the move is found from b alone
    assert report.moved == [(str(a / "red.png"), str(b / "red.png"))] and not report.new
    paths = {f.path: f.image_id for f in local.service.metadata.in_place_files("default")}
    assert paths[str(b / "red.png")] == red_id and len(paths) == 2
