"""Moving a `vectors.db` SQLite file of the earlier format into the memory-mapped format.

The new index is built beside the old file (`<path>.migrating`), marked complete, and only
then renamed into place; the old file is removed last. A crash at any point leaves either the
old file (the migration starts over) or a complete new index (the renames are finished).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

from ..domain.ports import StoredModel
from .vector_file import VectorFile, is_vector_dir

log = logging.getLogger(__name__)

_BATCH = 10000
_COMPLETE = "migrated_from"  # meta key written last, in a synced transaction


def is_legacy(path: Path) -> bool:
    """Whether `path` is a vector index file of the SQLite format."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), check_same_thread=False)


def legacy_stored_model(path: Path) -> StoredModel | None:
    """The model recorded in a SQLite-format index file."""
    conn = _connect(path)
    try:
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:  # an empty file: no tables yet
            return None
    finally:
        conn.close()
    if "model_id" not in meta:
        return None
    return StoredModel(meta["model_id"], int(meta["dim"]), meta.get("spec", ""))


def _building(path: Path) -> Path:
    return path.with_name(path.name + ".migrating")


def _legacy_backup(path: Path) -> Path:
    return path.with_name(path.name + ".sqlite-migrated")


def _complete(root: Path) -> bool:
    if not is_vector_dir(root):
        return False
    conn = _connect(root / "index.sqlite")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_COMPLETE,)).fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return row is not None


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def recover_migration(path: Path) -> None:
    """Finish the renames of a migration that a crash interrupted, or drop its partial build."""
    building, backup = _building(path), _legacy_backup(path)
    if building.exists():
        if not path.exists() and _complete(building):
            building.rename(path)
        else:
            shutil.rmtree(building)
    if backup.exists() and is_vector_dir(path):
        _remove_sqlite(backup)


def migrate_legacy(path: Path) -> None:
    """Rewrite the SQLite-format index at `path` in the memory-mapped format, in place."""
    building = _building(path)
    if building.exists():
        shutil.rmtree(building)
    source = _connect(path)
    target = VectorFile(building, durable=False)
    try:
        stored = legacy_stored_model(path)
        try:
            total = int(source.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        except sqlite3.OperationalError:
            total = 0
        log.info(
            "migrating the vector index %s to the memory-mapped format: %d vectors", path, total
        )
        started, done = time.monotonic(), 0
        if stored is not None:
            target.write_model(stored.model_id, stored.dim, stored.spec)
            target.map_vectors(stored.dim)
            cursor = source.execute("SELECT image_id, tenant, vector FROM vectors ORDER BY rowid")
            while batch := cursor.fetchmany(_BATCH):
                vectors = np.frombuffer(b"".join(v for _, _, v in batch), np.float32)
                target.append(
                    [i for i, _, _ in batch],
                    [t for _, t, _ in batch],
                    vectors.reshape(len(batch), stored.dim),
                )
                done += len(batch)
                log.info("migrating the vector index: %d/%d vectors", done, total)
        assert target.vectors is not None or stored is None
        if target.vectors is not None:
            target.vectors.sync()
        target.labels.sync()
        target.db.execute("PRAGMA synchronous=FULL")
        target.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_COMPLETE, str(path))
        )
    finally:
        target.close()
        source.close()
    _fsync_dir(building)
    backup = _legacy_backup(path)
    path.rename(backup)
    building.rename(path)
    _fsync_dir(path.parent)
    _remove_sqlite(backup)
    log.info(
        "migrated the vector index %s: %d vectors in %.1f s", path, done, time.monotonic() - started
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
