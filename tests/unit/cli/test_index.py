"""`viewfinder index`: recursive, incremental, resumable, with a progress bar."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import png_bytes
from tests.unit.cli.runner import RED, YELLOW, as_json, invoke
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient


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

    hits = as_json(invoke("search", "something red", "--json", "-n", "2", *where))
    assert hits[0]["image_metadata"]["file_name"] == "red.png"
    assert hits[0]["image_metadata"]["path"] == str((photos / "red.png").resolve())
    assert 0.9 < hits[0]["score"] <= 1.0 and len(hits) == 2

    table = invoke("search", "blue", "--threshold", "0.9", *where)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["score", "image_id", "taken", "tags", "name"]
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


def test_index_shows_a_progress_bar_with_rate_and_eta(photos: Path, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    result = invoke("index", str(photos / "trip"), "--progress", *where)
    assert "3 files: 2 indexed" in result.stdout
    bar = result.stderr
    assert "3/3" in bar and "img/s" in bar and "<" in bar  # done/total, rate, elapsed<left


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
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a terminal's Ctrl-C: SIGINT as the default, even when these tests run in a background
        # job (whose shell ignores SIGINT, which the child would otherwise inherit)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
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


def test_index_takes_heic_photos(tmp_path: Path) -> None:
    """A folder copied off an iPhone: its .HEIC photos are indexed with the rest."""
    folder = tmp_path / "DCIM"
    folder.mkdir()
    heic = Path(__file__).resolve().parents[2] / "data" / "heic" / "two_tone.heic"
    (folder / "IMG_0001.HEIC").write_bytes(heic.read_bytes())
    (folder / "IMG_0002.png").write_bytes(png_bytes(RED))
    data = tmp_path / "data"
    result = invoke("index", str(folder), "--data-dir", str(data), "--no-progress")
    assert result.exit_code == 0, result.output
    listed = as_json(invoke("images", "list", "--data-dir", str(data), "--json"))
    assert sorted(i["file_name"] for i in listed) == ["IMG_0001.HEIC", "IMG_0002.png"]
    assert {i["indexing_status"] for i in listed} == {2}
