"""Metadata and the indexing queue in SQLite (WAL, one connection, every write under one lock)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..domain.filters import Filter
from ..domain.metadata_rules import load_stored_metadata
from ..domain.ports import JobRow, KeyRow
from ..domain.records import ApiKey, ImageRecord, IndexingStatus
from ..errors import BlobHoldLost, ConfigurationError, Unavailable, unwritable_storage
from .filter_sql import SELECTIVE_ROWS, compile_sqlite_filter
from .image_counts_sql import SQLITE_MIGRATION as IMAGE_COUNTS_MIGRATION
from .image_counts_sql import count_query
from .image_meta_sql import SQLITE_MIGRATION as IMAGE_META_MIGRATION
from .in_place_sql import MIGRATION as IN_PLACE_MIGRATION
from .in_place_sql import InPlaceFilesSql
from .perceptual_hash_sql import COLUMN as PHASH_COLUMN
from .perceptual_hash_sql import SQLITE_MIGRATION as PHASH_MIGRATION
from .sqlite_jobs import SqliteJobQueue
from .tags_exif_sql import COLUMNS as TAGS_EXIF_COLUMNS
from .tags_exif_sql import SQLITE_MIGRATION as TAGS_EXIF_MIGRATION
from .tags_exif_sql import load_exif, load_tags
from .tags_exif_sql import values as tags_exif_values

# Each entry upgrades the schema by one version; never edit a released one, append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        created_at REAL NOT NULL,
        rate_limits TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE images (
        image_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        status INTEGER NOT NULL,
        upload_ts REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        sha256 TEXT,
        content_type TEXT,
        size_bytes INTEGER NOT NULL DEFAULT 0,
        width INTEGER,
        height INTEGER,
        error TEXT,
        source_url TEXT
    );
    CREATE INDEX images_by_tenant ON images (tenant, upload_ts DESC);
    CREATE INDEX images_by_sha ON images (sha256);
    CREATE INDEX images_by_status ON images (status);
    CREATE TABLE jobs (
        image_id TEXT PRIMARY KEY REFERENCES images (image_id) ON DELETE CASCADE,
        attempts INTEGER NOT NULL DEFAULT 0,
        available_at REAL NOT NULL,
        lease_until REAL NOT NULL DEFAULT 0,
        enqueued_at REAL NOT NULL,
        last_error TEXT
    );
    CREATE INDEX jobs_ready ON jobs (available_at, enqueued_at);
    """,
    "ALTER TABLE images ADD COLUMN file_name TEXT",
    # Blob references, for the sweeper (domain/blob_sweeper.py): a hold is an upload's claim on
    # bytes it stores before its row exists; an orphan mark says a delete may have left bytes
    # unreferenced. Both carry the time they were written, for the grace period.
    """
    CREATE TABLE blob_holds (
        image_id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        since REAL NOT NULL
    );
    CREATE INDEX blob_holds_by_sha ON blob_holds (sha256);
    CREATE INDEX blob_holds_by_since ON blob_holds (since);
    CREATE TABLE blob_orphans (
        sha256 TEXT PRIMARY KEY,
        since REAL NOT NULL
    );
    CREATE INDEX blob_orphans_by_since ON blob_orphans (since);
    """,
    # Images indexed in place: where their files are (stores/in_place_sql.py).
    IN_PLACE_MIGRATION,
    # Image counts per (tenant, status), kept by triggers (stores/image_counts_sql.py).
    IMAGE_COUNTS_MIGRATION,
    # Tags (set when indexed) and EXIF (at ingest), with the capture time indexed
    # (stores/tags_exif_sql.py).
    TAGS_EXIF_MIGRATION,
    # The perceptual hash of each image, for near-duplicates (stores/perceptual_hash_sql.py).
    PHASH_MIGRATION,
    # Metadata flattened into indexed rows, for fast selective filters (stores/image_meta_sql.py).
    IMAGE_META_MIGRATION,
]

_IMAGE_COLUMNS = (
    "image_id, tenant, status, upload_ts, metadata, sha256, content_type, size_bytes, "
    "width, height, error, source_url, file_name, " + TAGS_EXIF_COLUMNS + ", " + PHASH_COLUMN
)
_IMAGE_MARKS = ",".join("?" * (_IMAGE_COLUMNS.count(",") + 1))


def _record(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        image_id=row["image_id"],
        tenant=row["tenant"],
        status=IndexingStatus(row["status"]),
        upload_timestamp=row["upload_ts"],
        metadata=load_stored_metadata(row["metadata"]),  # a bad row never fails a read
        sha256=row["sha256"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        width=row["width"],
        height=row["height"],
        error=row["error"],
        source_url=row["source_url"],
        file_name=row["file_name"],
        tags=load_tags(row["tags"]),
        exif=load_exif(row["exif"]),
        phash=row["phash"],
    )


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant=row["tenant"],
        created_at=row["created_at"],
        rate_limits=json.loads(row["rate_limits"]),
    )


def _values(r: ImageRecord) -> tuple[Any, ...]:
    """An image's values in `_IMAGE_COLUMNS` order."""
    return (
        r.image_id,
        r.tenant,
        int(r.status),
        r.upload_timestamp,
        json.dumps(r.metadata),
        r.sha256,
        r.content_type,
        r.size_bytes,
        r.width,
        r.height,
        r.error,
        r.source_url,
        r.file_name,
        *tags_exif_values(r.tags, r.exif),
        r.phash,
    )


def _statements(script: str) -> list[str]:
    """The statements of a migration, trigger bodies (with their own `;`) kept whole."""
    statements, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                statements.append(current)
            current = ""
    return statements


class SqliteMetadataStore(InPlaceFilesSql, SqliteJobQueue):
    """The embedded metadata store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")  # the file is opened here
        except sqlite3.Error as exc:
            if unwritable_storage(exc) is not None:
                raise
            raise ConfigurationError(
                f"cannot open database {path}: {exc}; check that this user may read and "
                "write its folder"
            ) from exc
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=30000")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def migrate(self) -> None:
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise ConfigurationError(
                    f"database {self.path} has schema version {version}, newer than this "
                    f"Viewfinder understands ({len(MIGRATIONS)}); upgrade Viewfinder"
                )
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")

    def schema_version(self) -> int:
        """The applied migration count."""
        return int(self._query("PRAGMA user_version")[0][0])

    def ping(self, timeout_s: float) -> None:
        del timeout_s  # a local file: it answers or raises at once
        try:
            self._query("SELECT 1")
        except sqlite3.Error as exc:
            raise Unavailable(f"the database {self.path} can't be read: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # keys
    def create_key(
        self, key_id: str, key_hash: str, tenant: str, rate_limits: dict[str, str]
    ) -> ApiKey:
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, key_hash, tenant, created_at, rate_limits) "
                "VALUES (?, ?, ?, ?, ?)",
                (key_id, key_hash, tenant, now, json.dumps(rate_limits)),
            )
        return ApiKey(key_id=key_id, tenant=tenant, created_at=now, rate_limits=rate_limits)

    def find_key(self, key_hash: str) -> ApiKey | None:
        rows = self._query("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))
        return _key(rows[0]) if rows else None

    def list_keys(self) -> list[ApiKey]:
        return [_key(r) for r in self._query("SELECT * FROM api_keys ORDER BY created_at")]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,)).rowcount > 0

    # images
    def insert_images(self, records: Sequence[ImageRecord], *, held: bool = False) -> None:
        # One writer at a time (BEGIN IMMEDIATE): the sweeper's check-and-remove can't interleave.
        with self._tx() as conn:
            for r in records:
                conn.execute(
                    f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES ({_IMAGE_MARKS})", _values(r)
                )
                if r.status == IndexingStatus.QUEUED:
                    conn.execute(
                        "INSERT INTO jobs (image_id, available_at, enqueued_at) VALUES (?,?,?)",
                        (r.image_id, r.upload_timestamp, r.upload_timestamp),
                    )
            if held:
                lost = [
                    r.image_id
                    for r in records
                    if r.sha256
                    and not conn.execute(
                        "DELETE FROM blob_holds WHERE image_id = ?", (r.image_id,)
                    ).rowcount
                ]
                if lost:
                    raise BlobHoldLost(lost)  # rolls the inserts back

    # Lookups by id write `+tenant` so that SQLite takes the primary key: with the plain column
    # its planner prefers the (tenant, upload_ts) index and walks every image of the tenant.
    def get_image(self, tenant: str, image_id: str) -> ImageRecord | None:
        rows = self._query(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE +tenant = ? AND image_id = ?",
            (tenant, image_id),
        )
        return _record(rows[0]) if rows else None

    def find_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE image_id = ?", (image_id,))
        return _record(rows[0]) if rows else None

    def get_images(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        found: dict[str, ImageRecord] = {}
        ids = list(image_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT {_IMAGE_COLUMNS} FROM images WHERE +tenant = ? AND image_id IN ({marks})",
                (tenant, *chunk),
            ):
                found[row["image_id"]] = _record(row)
        return found

    def list_images(
        self, tenant: str, limit: int, offset: int, where: Filter | None = None
    ) -> list[ImageRecord]:
        where_sql, params = self._where(tenant, where)
        rows = self._query(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE {where_sql} "
            "ORDER BY upload_ts DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_record(r) for r in rows]

    def filtered_ids(self, tenant: str, where: Filter, limit: int) -> list[str]:
        where_sql, params = self._where(tenant, where, int(IndexingStatus.INDEXED))
        rows = self._query(
            f"SELECT image_id FROM images WHERE {where_sql} LIMIT ?", (*params, limit)
        )
        return [r["image_id"] for r in rows]

    def _where(
        self, tenant: str, where: Filter | None, status: int | None = None
    ) -> tuple[str, list[Any]]:
        """The WHERE clause on `images` for one tenant (and status) and a filter."""
        if where is None:
            clause, params, driven = "1 = 1", [], False
        else:
            compiled = compile_sqlite_filter(where, tenant, self._count_rows)
            clause, params, driven = compiled.sql, compiled.params, compiled.driven
        plus = "+" if driven else ""
        head = f"{plus}tenant = ?" + ("" if status is None else f" AND {plus}status = ?")
        head_params = [tenant] + ([] if status is None else [status])
        return f"{head} AND {clause}", head_params + params

    def _count_rows(self, sql: str, params: list[Any]) -> int:
        rows = self._query(f"SELECT count(*) FROM ({sql} LIMIT {SELECTIVE_ROWS})", params)
        return int(rows[0][0])

    def delete_image(
        self, tenant: str, image_id: str, now: float | None = None
    ) -> ImageRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images WHERE +tenant = ? AND image_id = ?",
                (tenant, image_id),
            ).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM jobs WHERE image_id = ?", (image_id,))
            conn.execute("DELETE FROM images WHERE image_id = ?", (image_id,))
            if row["sha256"]:  # always marked: whether others share the bytes is the sweeper's call
                conn.execute(
                    "INSERT INTO blob_orphans (sha256, since) VALUES (?, ?) ON CONFLICT (sha256) "
                    "DO UPDATE SET since = max(since, excluded.since)",
                    (row["sha256"], time.time() if now is None else now),
                )
            return _record(row)

    def existing_image_ids(self, image_ids: Sequence[str]) -> set[str]:
        ids = list(image_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT image_id FROM images WHERE image_id IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    def sha_in_use(self, sha256: str) -> bool:
        return bool(self._query("SELECT 1 FROM images WHERE sha256 = ? LIMIT 1", (sha256,)))

    def image_with_sha256(self, tenant: str, sha256: str) -> ImageRecord | None:
        rows = self._query(  # `+tenant`: look up by the sha256 index, then check the tenant
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE sha256 = ? AND +tenant = ? "
            "ORDER BY upload_ts, image_id LIMIT 1",
            (sha256, tenant),
        )
        return _record(rows[0]) if rows else None

    def count_images(self, status: IndexingStatus | None = None, tenant: str | None = None) -> int:
        # maintained by triggers: a few rows, not a scan of every image
        sql, params = count_query(None if status is None else int(status), tenant)
        return int(self._query(sql, params)[0][0])

    def image_ids_with_status(self, status: IndexingStatus) -> set[str]:
        rows = self._query("SELECT image_id FROM images WHERE status = ?", (int(status),))
        return {r[0] for r in rows}

    # queue
    # blob references
    def hold_blob(self, image_id: str, sha256: str, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO blob_holds (image_id, sha256, since) VALUES (?, ?, ?) "
                "ON CONFLICT (image_id) DO UPDATE SET sha256 = excluded.sha256, "
                "since = excluded.since",
                (image_id, sha256, now),
            )
            conn.execute("DELETE FROM blob_orphans WHERE sha256 = ?", (sha256,))

    def blob_sweep_candidates(self, cutoff: float, limit: int) -> list[str]:
        rows = self._query(
            "SELECT sha256 FROM blob_orphans WHERE since <= ? "
            "UNION SELECT sha256 FROM blob_holds WHERE since <= ? LIMIT ?",
            (cutoff, cutoff, limit),
        )
        return [r[0] for r in rows]

    def sweep_blob(self, sha256: str, cutoff: float, remove: Callable[[str], None]) -> bool:
        # Under BEGIN IMMEDIATE no upload can hold or commit these bytes until this commits,
        # so the bytes go only if they are still unneeded when they go.
        with self._tx() as conn:
            needed, due = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM images WHERE sha256 = :sha) "
                "OR EXISTS (SELECT 1 FROM blob_holds WHERE sha256 = :sha AND since > :cut) "
                "OR EXISTS (SELECT 1 FROM blob_orphans WHERE sha256 = :sha AND since > :cut), "
                "EXISTS (SELECT 1 FROM blob_holds WHERE sha256 = :sha AND since <= :cut) "
                "OR EXISTS (SELECT 1 FROM blob_orphans WHERE sha256 = :sha AND since <= :cut)",
                {"sha": sha256, "cut": cutoff},
            ).fetchone()
            if not due:
                return False  # nothing held or marked that long ago (swept meanwhile)
            if not needed:
                remove(sha256)
            conn.execute("DELETE FROM blob_holds WHERE sha256 = ? AND since <= ?", (sha256, cutoff))
            # a stale mark goes with the bytes, or once an image refers to them again (whose
            # delete marks them anew); else it waits for the newer hold or mark to age
            conn.execute(
                "DELETE FROM blob_orphans WHERE sha256 = ? AND since <= ? "
                "AND (? OR EXISTS (SELECT 1 FROM images WHERE sha256 = ?))",
                (sha256, cutoff, not needed, sha256),
            )
            return not needed

    # copying between stores
    def export_keys(self) -> list[KeyRow]:
        rows = self._query(
            "SELECT key_id, key_hash, tenant, created_at, rate_limits FROM api_keys "
            "ORDER BY created_at"
        )
        return [
            KeyRow(r["key_id"], r["key_hash"], r["tenant"], r["created_at"], json.loads(r[4]))
            for r in rows
        ]

    def iter_images(
        self, batch_size: int = 500
    ) -> Iterator[tuple[list[ImageRecord], list[JobRow]]]:
        last = -1
        while True:
            rows = self._query(
                f"SELECT rowid, {_IMAGE_COLUMNS} FROM images WHERE rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (last, batch_size),
            )
            if not rows:
                return
            last = rows[-1]["rowid"]
            marks = ",".join("?" * len(rows))
            jobs = self._query(
                "SELECT image_id, attempts, available_at, enqueued_at, last_error FROM jobs "
                f"WHERE image_id IN ({marks})",
                [r["image_id"] for r in rows],
            )
            yield [_record(r) for r in rows], [JobRow(*j) for j in jobs]

    def import_keys(self, keys: Sequence[KeyRow]) -> int:
        with self._tx() as conn:
            return sum(
                conn.execute(
                    "INSERT OR IGNORE INTO api_keys "
                    "(key_id, key_hash, tenant, created_at, rate_limits) VALUES (?,?,?,?,?)",
                    (k.key_id, k.key_hash, k.tenant, k.created_at, json.dumps(k.rate_limits)),
                ).rowcount
                for k in keys
            )

    def import_images(self, records: Sequence[ImageRecord], jobs: Sequence[JobRow]) -> int:
        new: set[str] = set()
        with self._tx() as conn:
            for r in records:
                cur = conn.execute(
                    f"INSERT OR IGNORE INTO images ({_IMAGE_COLUMNS}) VALUES ({_IMAGE_MARKS})",
                    _values(r),
                )
                if cur.rowcount:
                    new.add(r.image_id)
            for j in jobs:
                if j.image_id in new:
                    conn.execute(
                        "INSERT OR IGNORE INTO jobs (image_id, attempts, available_at, "
                        "enqueued_at, last_error) VALUES (?,?,?,?,?)",
                        (j.image_id, j.attempts, j.available_at, j.enqueued_at, j.last_error),
                    )
        return len(new)
