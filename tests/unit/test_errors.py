"""`unwritable_storage` recognises each store's own "out of space" and "read-only" errors,
and nothing else."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import psycopg
import pytest
from botocore.exceptions import ClientError
from pymilvus import MilvusException

from viewfinder.errors import (
    StorageFull,
    StorageReadOnly,
    Unavailable,
    unwritable_storage,
)

_MILVUS_DENIED = (
    "deny to write, reason: {}, please allocate more resources, "
    "req: /milvus.proto.milvus.MilvusService/Insert"
)


def _sqlite_error(full: bool) -> sqlite3.Error:
    """SQLite's own error: SQLITE_FULL from a database at its page limit, or another."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        if full:
            for _ in range(100):
                conn.execute("INSERT INTO t VALUES (?)", ("x" * 5000,))
        else:
            conn.execute("SELECT * FROM nope")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("SQLite did not fail")


def _chained() -> BaseException:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as low:
            raise Unavailable("the blob store failed") from low
    except Unavailable as exc:
        return exc


def _read_only_sqlite(tmp: Path) -> sqlite3.Error:
    """SQLite's own error for a write to a database opened read-only."""
    sqlite3.connect(tmp / "ro.db").execute("CREATE TABLE t (x)")
    conn = sqlite3.connect(f"file:{tmp / 'ro.db'}?mode=ro", uri=True)
    try:
        conn.execute("INSERT INTO t VALUES (1)")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("SQLite wrote to a read-only database")


@pytest.mark.parametrize(
    ("exc", "kind", "detail"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), StorageFull, "No space left"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageFull, "Disk quota exceeded"),
        (_sqlite_error(full=True), StorageFull, "database or disk is full"),
        (psycopg.errors.DiskFull("could not extend file"), StorageFull, "disk is full"),
        (ClientError({"Error": {"Code": "XMinioStorageFull"}}, "PutObject"), StorageFull, "object"),
        (_chained(), StorageFull, "No space left on device"),
        (OSError(errno.EROFS, "Read-only file system"), StorageReadOnly, "Read-only file system"),
        (MilvusException(53, _MILVUS_DENIED.format("disk quota exceeded")), StorageFull, "disk"),
        (MilvusException(53, _MILVUS_DENIED.format("memory quota exhausted")), StorageFull, "memo"),
        (psycopg.errors.ReadOnlySqlTransaction("read-only"), StorageReadOnly, "a standby?"),
    ],
)
def test_refused_writes_are_recognised(exc: BaseException, kind: type, detail: str) -> None:
    refused = unwritable_storage(exc)
    assert isinstance(refused, kind) and refused.status == 503
    assert detail in refused.message


def test_a_read_only_sqlite_database_is_recognised(tmp_path: Path) -> None:
    refused = unwritable_storage(_read_only_sqlite(tmp_path))
    assert isinstance(refused, StorageReadOnly)
    assert "is read-only (attempt to write a readonly database)" in refused.message


def test_the_file_is_kept_for_the_operator_but_not_put_in_the_message() -> None:
    refused = unwritable_storage(OSError(errno.EROFS, "Read-only file system", "/srv/vf/x"))
    assert refused is not None and refused.where == "/srv/vf/x"
    assert "/srv" not in refused.message


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOENT, "No such file or directory"),
        _sqlite_error(full=False),
        psycopg.errors.UniqueViolation("duplicate key"),
        ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"),
        RuntimeError("database or disk is full"),  # words alone are not SQLite's error
        MilvusException(9, "quota exceeded[reason=rate type: DMLInsert]"),  # a rate limit
    ],
)
def test_other_errors_are_not(exc: BaseException) -> None:
    assert unwritable_storage(exc) is None
