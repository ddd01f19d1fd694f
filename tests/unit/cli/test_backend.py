"""Which backend a command uses (--server with a key, else a data directory); fixable errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.e2e.server import cli as run_cli
from tests.unit.cli.runner import ENV, YELLOW, as_json, invoke


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

    hits = as_json(invoke("search", "green", "--json", *remote))
    assert hits[0]["image_metadata"]["file_name"] == "green.png"
    assert hits[0]["image_url"].startswith(running.url + "/files/")

    listed = as_json(invoke("images", "list", "--json", *remote))
    assert len(listed) == 5  # four images and the refused one
    by_name = {im["metadata"]["file_name"]: im for im in listed}
    assert by_name["broken.jpg"]["status"] == "failed"
    got = invoke("images", "get", by_name["red.png"]["image_id"], *remote).stdout
    assert "image_url: " + running.url in got

    gone = invoke("images", "delete", by_name["red.png"]["image_id"], *remote)
    assert gone.exit_code == 0
    after = invoke("search", "red", "--json", "--threshold", "0.9", *remote)
    assert as_json(after) == []

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
