"""`storage_full` recognises each store's own "out of space" error, and nothing else."""

from __future__ import annotations

import errno
import sqlite3

import psycopg
import pytest
from botocore.exceptions import ClientError

from viewfinder.errors import StorageFull, Unavailable, storage_full


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


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded"),
        (_sqlite_error(full=True), "database or disk is full"),
        (psycopg.errors.DiskFull("could not extend file"), "PostgreSQL server's disk is full"),
        (ClientError({"Error": {"Code": "XMinioStorageFull"}}, "PutObject"), "object store"),
        (_chained(), "No space left on device"),
    ],
)
def test_out_of_space_errors_are_recognised(exc: BaseException, detail: str) -> None:
    full = storage_full(exc)
    assert isinstance(full, StorageFull) and full.status == 503
    assert detail in full.message


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOENT, "No such file or directory"),
        _sqlite_error(full=False),
        psycopg.errors.UniqueViolation("duplicate key"),
        ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"),
        RuntimeError("database or disk is full"),  # words alone are not SQLite's error
    ],
)
def test_other_errors_are_not(exc: BaseException) -> None:
    assert storage_full(exc) is None
