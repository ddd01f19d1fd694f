"""`viewfinder index`, `search` and `images`, on a local data directory and on a server."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.e2e.server import cli as run_cli
from viewfinder.cli import cli
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient

ENV = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_POLL_INTERVAL_S": "0.05"}
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def invoke(*args: str) -> Result:
    # Server and key variables of the developer's shell must not leak into the tests.
    env = {**ENV, "VIEWFINDER_SERVER": None, "VIEWFINDER_API_KEY": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder tree: three images, a hidden one, a text file and a broken image."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    (root / ".cache").mkdir()
    (root / "red.png").write_bytes(png_bytes(RED))
    (root / "trip" / "green.png").write_bytes(png_bytes(GREEN))
    (root / "trip" / "day2" / "blue.PNG").write_bytes(png_bytes(BLUE))
    (root / ".cache" / "thumb.png").write_bytes(png_bytes(YELLOW))
    (root / "notes.txt").write_text("not an image")
    (root / "trip" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_local_index_is_recursive_and_incremental(photos: Path, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    first = invoke("index", str(photos), *where)
    assert first.exit_code == 1  # the broken image
    assert "4 files: 3 indexed, 0 already stored (skipped), 1 failed" in first.stdout
    assert "broken.jpg: could not decode image" in first.stderr

    again = invoke("index", str(photos), *where)
    assert again.exit_code == 0, again.output
    assert "4 files: 0 indexed, 4 already stored (skipped), 0 failed" in again.stdout
    assert "1 of the skipped files were refused before" in again.stderr

    (photos / "trip" / "yellow.png").write_bytes(png_bytes(YELLOW))
    (photos / "copy-of-red.png").write_bytes(png_bytes(RED))
    third = invoke("index", str(photos), str(photos / "red.png"), *where)
    assert "6 files: 1 indexed, 5 already stored" in third.stdout

    hits = _json(invoke("search", "something red", "--json", "-n", "2", *where))
    assert hits[0]["image_metadata"]["file_name"] == "red.png"
    assert hits[0]["image_metadata"]["path"] == str((photos / "red.png").resolve())
    assert 0.9 < hits[0]["score"] <= 1.0 and len(hits) == 2

    table = invoke("search", "blue", "--threshold", "0.9", *where)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["score", "image_id", "name"]
    assert len(lines) == 2 and lines[1].endswith("blue.PNG")
    nothing = invoke("search", "blue", "--threshold", "1", *where)
    assert nothing.stdout == "" and "no matches" in nothing.stderr


def test_a_rerun_after_an_interruption_indexes_what_was_left(photos: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", model="fake")
    # As if a run was stopped after storing an image but before indexing it.
    with LocalClient(settings) as local:
        stored = local.upload(photos / "red.png")[0]
        assert local.get_image(stored.image_id).status == "queued"

    result = invoke("index", str(photos / "red.png"), "--data-dir", str(settings.data_dir))
    assert "1 files: 0 indexed, 1 already stored (skipped), 0 failed" in result.stdout
    with LocalClient(settings) as local:
        assert local.get_image(stored.image_id).status == "indexed"


def test_local_images_list_get_delete(photos: Path, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data"), "--tenant", "acme"]
    invoke("index", str(photos / "trip" / "green.png"), str(photos / "red.png"), *where)
    listed = _json(invoke("images", "list", "--json", *where))
    assert [im["metadata"]["file_name"] for im in listed] == ["red.png", "green.png"]
    table = invoke("images", "list", "--limit", "1", *where).stdout.splitlines()
    assert table[0].split()[:3] == ["image_id", "status", "size"]
    assert len(table) == 2 and "indexed" in table[1] and "64x48" in table[1]

    image_id = listed[0]["image_id"]
    shown = invoke("images", "get", image_id, *where).stdout
    assert f"image_id:  {image_id}" in shown and "status:    indexed (2)" in shown
    assert _json(invoke("images", "get", image_id, "--json", *where))["width"] == 64

    # Another tenant of the same directory sees nothing.
    other = invoke("images", "list", "--data-dir", str(tmp_path / "data"))
    assert other.stdout == "" and "no images" in other.stderr
    # A mistyped directory is not read as an empty library (nor created).
    typo = tmp_path / "dta"
    for args in (["images", "list"], ["search", "red"], ["images", "get", image_id]):
        wrong = invoke(*args, "--data-dir", str(typo))
        assert wrong.exit_code == 2 and "no Viewfinder data in" in wrong.stderr
        assert "viewfinder index" in wrong.stderr
    assert not typo.exists()

    deleted = invoke("images", "delete", image_id, *where)
    assert deleted.stdout.strip() == f"deleted {image_id}"
    missing = invoke("images", "get", image_id, *where)
    assert missing.exit_code == 2 and f"error: image {image_id} not found" in missing.stderr

    # an id that is gone does not stop the ones after it
    last = listed[1]["image_id"]
    both = invoke("images", "delete", image_id, last, *where)
    assert both.exit_code == 2 and f"error: {image_id}: image {image_id} not found" in both.stderr
    assert both.stdout.strip() == f"deleted {last}"
    assert invoke("images", "get", last, *where).exit_code == 2


def test_index_shows_a_progress_bar_with_rate_and_eta(photos: Path, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    result = invoke("index", str(photos / "trip"), "--progress", *where)
    assert "3 files: 2 indexed" in result.stdout
    bar = result.stderr
    assert "3/3" in bar and "img/s" in bar and "<" in bar  # done/total, rate, elapsed<left


def test_usage_errors_say_how_to_fix_them(tmp_path: Path) -> None:
    no_key = invoke("search", "red", "--server", "http://127.0.0.1:9")
    assert no_key.exit_code == 2 and "--server needs --api-key" in no_key.stderr
    no_server = invoke("search", "red", "--api-key", "vf_x")
    assert no_server.exit_code == 2 and "--api-key needs --server" in no_server.stderr
    missing = invoke("index", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d"))
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    down = invoke("images", "list", "--server", "http://127.0.0.1:9", "--api-key", "vf_x")
    assert down.exit_code == 2 and "cannot reach Viewfinder at http://127.0.0.1:9" in down.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path_factory.mktemp("tools") / "data"
    key = run_cli(data_dir, "keys", "create", "acme", env=ENV).strip()
    with Server(data_dir, ENV) as running:
        yield running, key


def test_remote_index_search_and_images(server: tuple[Server, str], photos: Path) -> None:
    running, key = server
    remote = ["--server", running.url, "--api-key", key]
    first = invoke("index", str(photos), "--batch-size", "2", *remote)
    assert first.exit_code == 1
    assert "4 files: 3 indexed, 0 already stored (skipped), 1 failed" in first.stdout
    again = invoke("index", str(photos), *remote)
    assert "4 files: 0 indexed, 4 already stored (skipped), 0 failed" in again.stdout

    (photos / "yellow.png").write_bytes(png_bytes(YELLOW))
    queued = invoke("index", str(photos / "yellow.png"), "--no-wait", *remote)
    assert "1 uploaded (the server indexes them)" in queued.stdout

    hits = _json(invoke("search", "green", "--json", *remote))
    assert hits[0]["image_metadata"]["file_name"] == "green.png"
    assert hits[0]["image_url"].startswith(running.url + "/files/")

    listed = _json(invoke("images", "list", "--json", *remote))
    assert len(listed) == 5  # four images and the refused one
    by_name = {im["metadata"]["file_name"]: im for im in listed}
    assert by_name["broken.jpg"]["status"] == "failed"
    got = invoke("images", "get", by_name["red.png"]["image_id"], *remote).stdout
    assert "image_url: " + running.url in got

    gone = invoke("images", "delete", by_name["red.png"]["image_id"], *remote)
    assert gone.exit_code == 0
    after = invoke("search", "red", "--json", "--threshold", "0.9", *remote)
    assert _json(after) == []

    wrong = invoke("images", "list", "--server", running.url, "--api-key", "vf_wrong")
    assert wrong.exit_code == 2
    assert "invalid API key; check --api-key / VIEWFINDER_API_KEY" in wrong.stderr


def test_local_commands_refuse_a_running_servers_directory(photos: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Server(data_dir, ENV):
        refused = invoke("search", "red", "--data-dir", str(data_dir))
        assert refused.exit_code == 2
        assert "in use by another Viewfinder process" in refused.stderr
        assert "--server" in refused.stderr  # the fix
        indexed = invoke("index", str(photos / "red.png"), "--data-dir", str(data_dir))
        assert indexed.exit_code == 2
        # keys are made beside a running server, as the README says
        key = run_cli(data_dir, "keys", "create", "acme", env=ENV).strip()
        assert key.startswith("vf_")
    after = invoke("search", "red", "--data-dir", str(data_dir))  # stopped: free again
    assert after.exit_code == 0, after.output


def test_an_interrupted_index_continues_when_run_again(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(40):
        (folder / f"{n:02}.png").write_bytes(png_bytes((n * 6, 255 - n * 6, 0)))
    data_dir = tmp_path / "data"
    # slow enough (50 ms an image) to stop it part-way, by Ctrl-C as a user would
    env = {**os.environ, "VIEWFINDER_MODEL": "fake:0.05", "VIEWFINDER_POLL_INTERVAL_S": "0.05"}
    env.pop("VIEWFINDER_SERVER", None)
    env.pop("VIEWFINDER_API_KEY", None)
    cmd = [sys.executable, "-m", "viewfinder.cli", "index", str(folder), "--batch-size", "4"]
    cmd += ["--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    settings = Settings(data_dir=data_dir, model="fake")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        db = data_dir / "viewfinder.db"
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    stored = conn.execute("SELECT count(*) FROM images").fetchone()[0]
                except sqlite3.OperationalError:  # not migrated yet
                    stored = 0
            if stored >= 8:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "run the same command again to continue" in err

    again = invoke("index", str(folder), "--data-dir", str(data_dir))
    assert again.exit_code == 0, again.output
    summary = again.stdout.strip().splitlines()[-1]
    indexed, skipped = (int(x) for x in re.findall(r"(\d+) (?:indexed|already)", summary))
    assert skipped >= 8 and indexed + skipped == 40, summary
    with LocalClient(settings) as local:
        images = list(local.iter_images())
        assert len(images) == 40 and all(im.status == "indexed" for im in images)
