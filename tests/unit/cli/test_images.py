"""`viewfinder images list|get|delete` on a local data directory."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.runner import as_json, invoke


def test_local_images_list_get_delete(photos: Path, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data"), "--tenant", "acme"]
    invoke("index", str(photos / "trip" / "green.png"), str(photos / "red.png"), *where)
    listed = as_json(invoke("images", "list", "--json", *where))
    assert [im["metadata"]["file_name"] for im in listed] == ["red.png", "green.png"]
    table = invoke("images", "list", "--limit", "1", *where).stdout.splitlines()
    assert table[0].split()[:3] == ["image_id", "status", "size"]
    assert len(table) == 2 and "indexed" in table[1] and "64x48" in table[1]

    image_id = listed[0]["image_id"]
    shown = invoke("images", "get", image_id, *where).stdout
    assert f"image_id:  {image_id}" in shown and "status:    indexed (2)" in shown
    assert as_json(invoke("images", "get", image_id, "--json", *where))["width"] == 64

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
