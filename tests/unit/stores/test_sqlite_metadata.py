"""The SQLite metadata store: schema, images, keys and the queue."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from viewfinder.domain.records import ImageRecord, IndexingStatus
from viewfinder.errors import ConfigurationError
from viewfinder.stores.sqlite_metadata import MIGRATIONS, SqliteMetadataStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteMetadataStore:
    s = SqliteMetadataStore(tmp_path / "m.db")
    s.migrate()
    return s


def rec(
    image_id: str,
    status: IndexingStatus = IndexingStatus.QUEUED,
    ts: float = 1.0,
    tenant: str = "t",
) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        tenant=tenant,
        status=status,
        upload_timestamp=ts,
        sha256="a" * 64,
        metadata={"k": image_id},
    )


def test_wal_and_schema_version(store: SqliteMetadataStore, tmp_path: Path) -> None:
    assert store.schema_version() == len(MIGRATIONS)
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.migrate()  # idempotent
    assert store.schema_version() == len(MIGRATIONS)


def test_newer_schema_refused(store: SqliteMetadataStore, tmp_path: Path) -> None:
    store.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(ConfigurationError, match="newer"):
        SqliteMetadataStore(tmp_path / "m.db").migrate()


def test_insert_get_list_delete(store: SqliteMetadataStore) -> None:
    store.insert_images([rec("a", ts=1), rec("b", ts=2), rec("c", ts=3, tenant="other")])
    assert [r.image_id for r in store.list_images("t", 10, 0)] == ["b", "a"]
    assert store.get_image("t", "a").metadata == {"k": "a"}  # type: ignore[union-attr]
    assert store.get_image("other", "a") is None
    assert store.find_image("c").tenant == "other"  # type: ignore[union-attr]
    assert store.delete_image("other", "a") is None
    assert store.delete_image("t", "a").image_id == "a"  # type: ignore[union-attr]
    assert store.get_image("t", "a") is None
    assert store.claim_jobs(10, 60, now=100) and True


def test_queue_claim_lease_complete(store: SqliteMetadataStore) -> None:
    store.insert_images([rec("a"), rec("b"), rec("s", IndexingStatus.STORED)])
    first = store.claim_jobs(1, lease_s=60, now=10)
    assert [j.image_id for j in first] == ["a"]
    second = store.claim_jobs(10, lease_s=60, now=10)
    assert [j.image_id for j in second] == ["b"]  # a is leased, s was never queued
    assert store.claim_jobs(10, lease_s=60, now=20) == []
    assert [j.image_id for j in store.claim_jobs(10, 60, now=71)] == ["a", "b"]  # leases ran out
    assert store.complete_jobs(["a", "gone"]) == {"a"}
    assert store.get_image("t", "a").status == IndexingStatus.INDEXED  # type: ignore[union-attr]
    assert store.release_leases() == 1
    assert [j.image_id for j in store.claim_jobs(10, 60, now=72)] == ["b"]


def test_failures_are_bounded(store: SqliteMetadataStore) -> None:
    store.insert_images([rec("a")])
    assert store.fail_job("a", "boom", max_attempts=2, retry_at=50) is False
    assert store.claim_jobs(10, 60, now=40) == []  # waits for retry_at
    (job,) = store.claim_jobs(10, 60, now=50)
    assert job.attempts == 1
    assert store.fail_job("a", "boom again", max_attempts=2, retry_at=60) is True
    failed = store.get_image("t", "a")
    assert failed.status == IndexingStatus.FAILED and failed.error == "boom again"  # type: ignore[union-attr]
    assert store.claim_jobs(10, 60, now=1000) == []


def test_requeue_and_counts(store: SqliteMetadataStore) -> None:
    store.insert_images([rec("a"), rec("b", tenant="u")])
    store.complete_jobs(["a", "b"])
    assert store.count_images(IndexingStatus.INDEXED) == 2
    assert store.count_images(IndexingStatus.INDEXED, tenant="u") == 1
    assert store.requeue(["a", "missing"], now=5) == 1
    assert store.image_ids_with_status(IndexingStatus.QUEUED) == {"a"}
    assert [j.image_id for j in store.claim_jobs(10, 60, now=5)] == ["a"]


def test_keys(store: SqliteMetadataStore) -> None:
    key = store.create_key("k1", "h" * 64, "t", {"search": "1/s"})
    assert store.find_key("h" * 64) == key
    assert store.find_key("x") is None
    assert store.list_keys() == [key]
    assert store.revoke_key("k1") and not store.revoke_key("k1")


def test_lookups_by_id_take_the_primary_key(store: SqliteMetadataStore, tmp_path: Path) -> None:
    # Walking the tenant index instead made every search and get O(images of the tenant).
    store.insert_images([rec(f"i{n}", ts=float(n)) for n in range(300)])
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    assert set(store.get_images("t", ["i1", "i7", "i250"])) == {"i1", "i7", "i250"}
    assert store.get_image("t", "i3") is not None and store.get_image("u", "i3") is None
    assert store.delete_image("t", "i4") is not None
    store._conn.set_trace_callback(None)
    lookups = [s for s in statements if s.lstrip().startswith("SELECT") and "image_id" in s]
    assert len(lookups) >= 4
    check = sqlite3.connect(tmp_path / "m.db")
    for sql in lookups:
        plan = " ".join(str(row) for row in check.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "images_by_tenant" not in plan, (sql, plan)
        assert "sqlite_autoindex_images_1" in plan, (sql, plan)
    check.close()


def test_counts_of_an_older_database_are_filled_by_the_migration(tmp_path: Path) -> None:
    from viewfinder.stores.image_counts_sql import SQLITE_MIGRATION

    path = tmp_path / "old.db"
    before = MIGRATIONS.index(SQLITE_MIGRATION)
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:before]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.executemany(
        "INSERT INTO images (image_id, tenant, status, upload_ts, metadata, sha256) "
        "VALUES (?, ?, ?, 1.0, '{}', 'x')",
        [(f"i{n}", "ab"[n % 2], n % 3) for n in range(30)],
    )
    conn.commit()
    conn.close()
    store = SqliteMetadataStore(path)
    store.migrate()
    assert store.count_images() == 30
    assert store.count_images(IndexingStatus(1), "a") == 5
    store.insert_images([ImageRecord("new", "a", IndexingStatus.QUEUED, 2.0, {})])
    assert store.count_images(tenant="a") == 16
    store.close()
