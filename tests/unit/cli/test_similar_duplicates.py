"""`viewfinder search --like ID|PATH` and `viewfinder duplicates`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from tests.unit.cli.runner import BLUE, RED, as_json, invoke
from tests.unit.client.test_similar_duplicates import COPY, PICTURE
from viewfinder.config import Settings
from viewfinder.local_client import LocalClient


def test_search_like_and_duplicates(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    files = [
        ("red.png", png_bytes(RED)),
        ("dark.png", png_bytes((200, 20, 0))),
        ("blue.png", png_bytes(BLUE)),
        ("picture.png", PICTURE),
        ("copy.jpg", COPY),
    ]
    with LocalClient(Settings(data_dir=data_dir, model="fake"), tenant="acme") as local:
        red, dark, blue, picture, copy = (u.image_id for u in local.upload(files))
        local.process_queue()
    where = ["--data-dir", str(data_dir), "--tenant", "acme"]

    hits = as_json(invoke("search", "--like", red, "-n", "2", "--json", *where))
    assert [h["image_id"] for h in hits][:1] == [dark] and red not in [h["image_id"] for h in hits]
    with_self = as_json(
        invoke("search", "--like", red, "--include-self", "-n", "1", "--json", *where)
    )
    assert with_self[0]["image_id"] == red
    example = tmp_path / "example.png"
    example.write_bytes(png_bytes((250, 5, 0)))
    header, first, *_ = invoke("search", "--like", str(example), *where).stdout.splitlines()
    assert "score" in header and first.endswith("red.png")
    # text + image, equal weights: the blue image rises into the top 2, where the image alone
    # puts the dark red one and a grey picture
    mixed = as_json(invoke("search", "blue", "--like", red, "-n", "2", "--json", *where))
    assert blue in [h["image_id"] for h in mixed] and blue not in [h["image_id"] for h in hits]
    nothing = invoke("search", *where)
    assert nothing.exit_code == 2 and "--like" in nothing.output
    missing = invoke("search", "--like", str(tmp_path / "nope.png"), *where)
    assert missing.exit_code == 2 and "no such file" in missing.output

    groups = as_json(invoke("duplicates", "--json", *where))
    assert [[i["image_id"] for i in g["images"]] for g in groups][0] == [picture, copy]
    table = invoke("duplicates", *where).stdout
    assert table.startswith("group 1: 2 images") and "picture.png" in table and "copy.jpg" in table
    near = as_json(invoke("duplicates", picture, "--json", *where))
    assert [d["image_id"] for d in near] == [copy] and near[0]["hamming"] is not None
    assert "copy.jpg" in invoke("duplicates", picture, *where).stdout
    assert invoke("duplicates", blue, *where).stderr.startswith("no near-duplicates")
