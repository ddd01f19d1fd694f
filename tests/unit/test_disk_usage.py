"""The file system under a store: how full it is, and whether SQLite is safe on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from viewfinder import bootstrap
from viewfinder.config import Settings
from viewfinder.disk_usage import disk_usage, network_filesystem

MOUNTS = """\
/dev/vda1 / ext4 rw,relatime 0 0
nas:/volume1 /mnt/nas nfs4 rw,relatime,vers=4.1 0 0
/dev/vdb1 /mnt/nas/cache ext4 rw 0 0
//server/share /mnt/my\\040photos cifs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/mnt/nas/viewfinder-data/viewfinder.db", "nfs4"),
        ("/mnt/nas", "nfs4"),
        ("/mnt/nas/cache/viewfinder.db", None),  # a local disk mounted inside the share
        ("/mnt/nasty/viewfinder.db", None),  # a prefix of the name is not the mount
        ("/mnt/my photos/data/viewfinder.db", "cifs"),  # "\040" is a space in /proc/mounts
        ("/home/me/viewfinder-data", None),
    ],
)
def test_network_filesystems_are_told_apart(path: str, kind: str | None) -> None:
    assert network_filesystem(Path(path), MOUNTS) == kind


def test_disk_usage_measures_the_nearest_existing_folder(tmp_path: Path) -> None:
    usage = disk_usage(tmp_path / "not" / "made" / "yet")
    assert usage is not None and usage.total == shutil.disk_usage(tmp_path).total


def test_a_data_directory_on_a_network_file_system_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bootstrap, "network_filesystem", lambda path: "nfs4")
    with caplog.at_level("WARNING", logger="viewfinder.bootstrap"):
        bootstrap.build_service(Settings(data_dir=tmp_path, model="fake")).close()
    said = [r.getMessage() for r in caplog.records if "network file system" in r.getMessage()]
    assert len(said) == 2  # the metadata database and the vector index's
    assert all("nfs4" in s and "PostgreSQL" in s for s in said)
    caplog.clear()
    monkeypatch.setattr(bootstrap, "network_filesystem", lambda path: None)
    with caplog.at_level("WARNING", logger="viewfinder.bootstrap"):
        bootstrap.build_service(Settings(data_dir=tmp_path, model="fake")).close()
    assert not [r for r in caplog.records if "network file system" in r.getMessage()]
