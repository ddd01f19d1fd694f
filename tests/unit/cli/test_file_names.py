"""The CLI tables name images by the file name they were uploaded with."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from tests.unit.cli.runner import RED, as_json, invoke
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient


def test_tables_show_the_uploaded_file_name(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # uploaded with a name and no metadata at all: the table can only have the name from the image
    with LocalClient(Settings(data_dir=data_dir, model="fake"), tenant="acme") as local:
        (up,) = local.upload([("Zürich lake.png", png_bytes(RED))])
        local.wait_until_indexed([up.image_id], timeout_s=30)
    where = ["--data-dir", str(data_dir), "--tenant", "acme"]

    (listed,) = as_json(invoke("images", "list", "--json", *where))
    assert listed["file_name"] == "Zürich lake.png" and listed["metadata"] == {}
    table = invoke("images", "list", *where).stdout.splitlines()
    assert table[1].endswith("Zürich lake.png")
    shown = invoke("images", "get", up.image_id, *where).stdout
    assert "file_name: Zürich lake.png" in shown
    found = invoke("search", "red", *where).stdout.splitlines()
    assert found[1].endswith("Zürich lake.png")
    assert as_json(invoke("search", "red", "--json", *where))[0]["file_name"] == "Zürich lake.png"
