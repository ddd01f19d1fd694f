"""A database made before `file_name` existed gains the column; its images have no name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from viewfinder.domain.records import ImageRecord, IndexingStatus
from viewfinder.stores.sqlite_metadata import MIGRATIONS, SqliteMetadataStore


def test_an_old_database_gains_file_name(tmp_path: Path) -> None:
    path = tmp_path / "viewfinder.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.execute(
        "INSERT INTO images (image_id, tenant, status, upload_ts) VALUES ('old', 't', 2, 1.0)"
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    store = SqliteMetadataStore(path)
    try:
        store.migrate()
        assert store.schema_version() == len(MIGRATIONS)
        before = store.get_image("t", "old")
        assert before is not None and before.file_name is None
        store.insert_images(
            [ImageRecord("new", "t", IndexingStatus.STORED, 2.0, file_name="ünïcode.png")]
        )
        assert [(r.image_id, r.file_name) for r in store.list_images("t", 10, 0)] == [
            ("new", "ünïcode.png"),
            ("old", None),
        ]
    finally:
        store.close()
