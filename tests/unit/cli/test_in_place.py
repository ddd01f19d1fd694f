"""`viewfinder index --in-place` and `search --paths/--open`: a folder searched where it is."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.e2e.server import cli as run_cli
from tests.unit.cli.runner import ENV, RED, YELLOW, as_json, invoke
from viewfinder.cli import cli
from viewfinder.client import Client


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` with its size and mtime: what "nothing was written" compares."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    }


def _ids_by_path(where: list[str]) -> dict[str, str]:
    listed = as_json(invoke("images", "list", "--json", *where))
    paths = as_json(invoke("search", "anything", "--json", "-n", "200", *where))
    assert len(paths) == len(listed)  # every image is indexed
    return {h["image_url"].removeprefix("file://"): h["image_id"] for h in paths if h["image_url"]}


def test_index_in_place_follows_moves_changes_and_deletions(photos: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    where = ["--data-dir", str(data)]
    before = _snapshot(photos)
    first = invoke("index", str(photos), "--in-place", *where)
    assert first.exit_code == 1, first.output  # the broken image
    assert "4 files in place: 3 new, 0 changed, 0 moved, 0 removed" in first.stdout
    assert "broken.jpg: could not decode image" in first.stderr
    assert _snapshot(photos) == before  # nothing written in the folder
    assert not [p for p in (data / "blobs").rglob("*") if p.is_file()]  # nor copied

    red = str((photos / "red.png").resolve())
    found = invoke("search", "something red", "--paths", "-n", "1", *where)
    assert found.stdout == f"{red}\n"
    ids = _ids_by_path(where)
    assert sorted(ids) == sorted(
        str((photos / p).resolve()) for p in ("red.png", "trip/green.png", "trip/day2/blue.PNG")
    )

    again = invoke("index", str(photos), "--in-place", *where)
    assert "0 new, 0 changed, 0 moved, 0 removed (deleted files), 3 unchanged" in again.stdout

    # move one file, change another, delete a third, add a copy of the moved one
    moved = photos / "trip" / "day2" / "still-red.png"
    (photos / "red.png").rename(moved)
    green = photos / "trip" / "green.png"
    green.write_bytes(png_bytes(YELLOW))
    os.utime(green, (time.time() + 5, time.time() + 5))  # a new mtime even on coarse clocks
    (photos / "trip" / "day2" / "blue.PNG").unlink()
    (photos / "zz-copy-of-red.png").write_bytes(png_bytes(RED))  # walked after the move
    before = _snapshot(photos)
    third = invoke("index", str(photos), "--in-place", *where)
    assert "1 changed, 1 moved, 1 removed (deleted files), 0 unchanged, 1 duplicates" in (
        third.stdout
    )
    assert _snapshot(photos) == before

    now = _ids_by_path(where)
    assert now[str(moved.resolve())] == ids[red]  # the same image: no duplicate
    assert str(green.resolve()) in now and now[str(green.resolve())] not in ids.values()
    assert len(now) == 2  # blue is gone
    top = invoke("search", "yellow", "--paths", "-n", "1", *where).stdout
    assert top == f"{green.resolve()}\n"  # re-indexed as it is now
    shown = invoke("search", "red", "-n", "1", *where).stdout
    assert "still-red.png" in shown  # the table names the file as it is now called

    # deleting an image indexed in place never deletes the user's file
    assert invoke("images", "delete", now[str(moved.resolve())], *where).exit_code == 0
    assert moved.read_bytes() == png_bytes(RED)
    assert _snapshot(photos) == before


def test_the_setting_turns_it_on_and_a_server_refuses_it(photos: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**ENV, "VIEWFINDER_IN_PLACE": "true", "VIEWFINDER_SERVER": None}
    env["VIEWFINDER_API_KEY"] = None
    target = str(photos / "trip")
    result = CliRunner().invoke(cli, ["index", target, "--data-dir", str(data)], env=env)
    assert "3 files in place: 2 new" in result.stdout
    copied = invoke("index", str(photos / "red.png"), "--copy", "--data-dir", str(data))
    assert "1 files: 1 indexed" in copied.stdout  # --copy overrides the setting
    refused = invoke("index", target, "--in-place", "--server", "http://x", "--api-key", "k")
    assert refused.exit_code == 2 and "--in-place indexes files for a local" in refused.stderr


def test_search_opens_results(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    invoke("index", str(photos / "red.png"), str(photos / "trip"), "--in-place", *where)
    # click.launch runs the desktop's opener (xdg-open on Linux): stand one in on PATH
    opened = tmp_path / "opened.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    opener.chmod(opener.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = invoke("search", "red", "-n", "2", "--open", *where)
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_lines(opened)) < 2:
        time.sleep(0.05)
    shown = invoke("search", "red", "-n", "2", "--paths", *where).stdout.splitlines()
    assert sorted(_lines(opened)) == sorted(shown)  # each result, by its path
    assert shown[0] == str((photos / "red.png").resolve())


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_server_serves_files_indexed_in_place(photos: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    where = ["--data-dir", str(data), "--tenant", "acme"]
    assert invoke("index", str(photos / "red.png"), "--in-place", *where).exit_code == 0
    key = run_cli(data, "keys", "create", "acme", env=ENV).strip()
    with Server(data, ENV) as running, Client(running.url, key) as vf:
        (hit,) = vf.search("red", max_results=1)
        assert vf.download(hit) == (photos / "red.png").read_bytes()  # read from the folder
        assert vf.thumbnail(hit.image_id, size=64)[:2] == b"\xff\xd8"


def test_migrate_copies_the_bytes_of_images_indexed_in_place(photos: Path, tmp_path: Path) -> None:
    from viewfinder.stores.local_blobs import LocalBlobStore

    data = tmp_path / "data"
    invoke("index", str(photos), "--in-place", "--data-dir", str(data))
    rows_only = invoke(
        "migrate", "--data-dir", str(data), f"--to-database-url=sqlite:///{tmp_path / 'rows.db'}"
    )
    assert rows_only.exit_code == 0, rows_only.output
    assert "warning: 3 images are indexed in place" in rows_only.output
    assert "add --to-blob-url" in rows_only.output
    target = tmp_path / "target-blobs"
    moved = invoke(
        "migrate",
        "--data-dir",
        str(data),
        f"--to-database-url=sqlite:///{tmp_path / 'target.db'}",
        f"--to-blob-url=file://{target}",
    )
    assert moved.exit_code == 0, moved.output
    assert "3 of 3 images, 3 image files" in moved.output, moved.output
    assert "missing" not in moved.output and "in place" not in moved.output
    # the target serves them without the user's folder: its records hold no paths to it
    copies = LocalBlobStore(target)
    listed = as_json(invoke("images", "list", "--json", "--data-dir", str(data)))
    by_sha = {i["sha256"]: i for i in listed if i.get("sha256")}
    for name in ("red.png", "trip/green.png", "trip/day2/blue.PNG"):
        content = (photos / name).read_bytes()
        sha = hashlib.sha256(content).hexdigest()
        assert sha in by_sha
        assert copies.get(sha) == content
