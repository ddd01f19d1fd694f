"""A database made before tags and EXIF existed gains their columns; its images have none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from viewfinder.domain.records import Exif, ImageRecord, IndexingStatus, Tag
from viewfinder.stores.sqlite_metadata import MIGRATIONS, SqliteMetadataStore
from viewfinder.stores.tags_exif_sql import SQLITE_MIGRATION, load_exif, load_tags


def test_an_older_database_gains_tags_and_exif(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = MIGRATIONS.index(SQLITE_MIGRATION)
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:before]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.execute(
        "INSERT INTO images (image_id, tenant, status, upload_ts, metadata, sha256) "
        "VALUES ('old', 't', 1, 1.0, '{}', 'x')"
    )
    conn.execute("INSERT INTO jobs (image_id, available_at, enqueued_at) VALUES ('old', 0, 0)")
    conn.commit()
    conn.close()
    store = SqliteMetadataStore(path)
    try:
        store.migrate()
        assert store.schema_version() == len(MIGRATIONS)
        old = store.get_image("t", "old")
        assert old is not None and old.tags == [] and old.exif is None
        store.complete_jobs(["old"], {"old": [Tag("dog", 0.5)]})
        store.insert_images(
            [ImageRecord("new", "t", IndexingStatus.STORED, 2.0, exif=Exif(taken_at=5.0, make="X"))]
        )
        got = store.get_images("t", ["old", "new"])
        assert got["old"].tags == [Tag("dog", 0.5)] and got["new"].exif == Exif(
            taken_at=5.0, make="X"
        )
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT taken_at FROM images WHERE image_id = 'new'").fetchone() == (5.0,)
    check.close()


def test_bad_stored_values_read_as_nothing() -> None:
    assert load_tags("not json") == [] and load_tags('{"a": 1}') == []
    assert load_tags(
        '[{"name": "x", "confidence": "high"}, 3, {"name": "y", "confidence": 0.5}]'
    ) == [Tag("y", 0.5)]
    assert load_exif("[1]") is None and load_exif("{") is None and load_exif(None) is None
    assert load_exif('{"make": 3, "gps": {"lat": 91, "lon": 0}, "orientation": 9}') is None
    assert load_exif('{"taken_at": 5, "gps": {"lat": -1.5, "lon": 2}}') is not None
