"""`--filter JSON` on `viewfinder search` and `viewfinder images list` (a local data dir)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from tests.unit.cli.runner import BLUE, RED, as_json, invoke
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient


def test_filter_option_on_search_and_list(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with LocalClient(Settings(data_dir=data_dir, model="fake"), tenant="acme") as local:
        up = local.upload(
            [("red.png", png_bytes(RED)), ("blue.png", png_bytes(BLUE))],
            metadata=[{"album": "trip"}, {"album": "home"}],
        )
        local.wait_until_indexed([u.image_id for u in up], timeout_s=30)
    red, blue = (u.image_id for u in up)
    where = ["--data-dir", str(data_dir), "--tenant", "acme"]

    home = '{"metadata.album": "home"}'
    hits = as_json(invoke("search", "red", "--json", "--filter", home, *where))
    assert [h["image_id"] for h in hits] == [blue]  # the best match (red) does not pass
    listed = as_json(
        invoke("images", "list", "--json", "--filter", '{"file_name": "red.png"}', *where)
    )
    assert [i["image_id"] for i in listed] == [red]

    trip = '{"metadata.album": "trip"}'
    like = as_json(invoke("search", "--like", blue, "--include-self", "--json", *where))
    assert {h["image_id"] for h in like} == {red, blue}
    like = invoke("search", "--like", blue, "--include-self", "--json", "--filter", trip, *where)
    assert [h["image_id"] for h in as_json(like)] == [red]  # by example, filtered alike

    bad_json = invoke("images", "list", "--filter", "{album", *where)
    assert bad_json.exit_code == 2 and "not JSON" in bad_json.stderr
    bad_field = invoke("search", "red", "--filter", '{"colour": "red"}', *where)
    assert bad_field.exit_code != 0 and "unknown filter field 'colour'" in bad_field.stderr
