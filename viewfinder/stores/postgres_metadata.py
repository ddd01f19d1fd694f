"""Metadata and the indexing queue in PostgreSQL, shared by many API and worker processes.

The schema is SQLite's, adapted; migrations are numbered rows of `schema_migrations` and run
under an advisory lock, so processes starting together migrate once. Workers claim jobs with
`FOR UPDATE SKIP LOCKED` and a lease: two workers never take the same ready job, and the jobs
of a worker that dies are claimable again once its lease runs out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..domain.filters import Filter
from ..domain.records import ApiKey, ImageRecord, IndexingStatus
from ..errors import BlobHoldLost, ConfigurationError, Unavailable
from . import reembed_leases_sql as reembed_sql
from .filter_sql import compile_filter
from .image_counts_sql import count_query
from .in_place_sql import PostgresInPlaceFilesSql
from .postgres_blob_holds import PostgresBlobHolds, lock_blobs
from .postgres_jobs import PostgresJobQueue
from .postgres_rows import IMAGE_COLUMNS, IMAGE_MARKS, record, values
from .postgres_schema import MIGRATIONS
from .postgres_transfer import PostgresTransfer
from .rate_counters_sql import COUNT_REQUEST, count_params, counted

log = logging.getLogger(__name__)


# Any constant works; it only has to be the same in every process migrating this database.
_MIGRATION_LOCK = 0x7669657766696E64  # "viewfind"


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant=row["tenant"],
        created_at=row["created_at"],
        rate_limits=json.loads(row["rate_limits"]),
    )


def _reason(exc: BaseException) -> str:
    """The first line of an error's message, for logs and messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _safe_target(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


@dataclass(frozen=True)
class PostgresOptions:
    """Pool size and timeouts (VIEWFINDER_DATABASE_* settings)."""

    pool_size: int = 10
    connect_timeout_s: float = 5.0  # one connection attempt
    pool_timeout_s: float = 10.0  # a request waiting for a free connection
    statement_timeout_s: float = 30.0  # 0: no limit


# After the database was found unreachable, requests ask it directly (one quick connection
# attempt) instead of waiting on the pool, for this long after the last failure.
_DOWN_PROBE_S = 60.0


class PostgresMetadataStore(
    PostgresInPlaceFilesSql, PostgresJobQueue, PostgresBlobHolds, PostgresTransfer
):
    """The shared metadata store: a pool of connections, one transaction per call."""

    def __init__(self, url: str, options: PostgresOptions | None = None) -> None:
        self._target = _safe_target(url)
        self._url = url
        self._options = options = options or PostgresOptions()
        self._connect_timeout = max(1, round(options.connect_timeout_s))
        self._down_at: float | None = None  # monotonic time the database was last unreachable
        self._down_lock = threading.Lock()
        # psycopg_pool logs every checkout at INFO; keep it to warnings unless the application
        # chose a level for it
        pool_log = logging.getLogger("psycopg.pool")
        if pool_log.level == logging.NOTSET:
            pool_log.setLevel(logging.WARNING)
        try:  # one plain connection first: a wrong address or password fails fast and clearly
            psycopg.connect(url, connect_timeout=self._connect_timeout).close()
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {self._target}: {_reason(exc)}; check "
                "VIEWFINDER_DATABASE_URL and that the server is up"
            ) from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, options.pool_size),
            # prepare_threshold=None: no server-side prepared statements, which PgBouncer in
            # transaction mode can't follow across server connections ("prepared statement
            # already exists")
            kwargs={"connect_timeout": self._connect_timeout, "prepare_threshold": None},
            configure=self._configure,
            check=ConnectionPool.check_connection,  # survive a database restart
            timeout=options.pool_timeout_s,
            open=False,
            name="viewfinder",
        )
        try:
            self._pool.open(wait=True, timeout=options.pool_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {self._target} within "
                f"{options.pool_timeout_s:g} s; check VIEWFINDER_DATABASE_URL and that the "
                "server is up"
            ) from exc

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Set up a new pooled connection: the statement timeout."""
        ms = int(self._options.statement_timeout_s * 1000)
        if ms > 0:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{ms}ms",))
            conn.commit()

    def _unreachable(self, exc: BaseException) -> Unavailable:
        """Note that the database does not answer; the 503 to raise."""
        with self._down_lock:
            first = self._down_at is None
            self._down_at = time.monotonic()
        if first:
            log.warning("PostgreSQL at %s is unreachable: %s", self._target, _reason(exc))
        return Unavailable("the database is unreachable; retry shortly")

    def _probe_if_down(self) -> None:
        """While the database was lately unreachable, ask it directly (one quick connection)
        rather than wait on the pool: fail at once while it is down, go on once it is back."""
        down_at = self._down_at
        if down_at is None:
            return
        if time.monotonic() - down_at > _DOWN_PROBE_S:
            with self._down_lock:
                self._down_at = None
            return
        try:
            psycopg.connect(self._url, connect_timeout=self._connect_timeout).close()
        except psycopg.Error as exc:
            raise self._unreachable(exc) from exc
        with self._down_lock:
            if self._down_at is not None:
                log.warning("PostgreSQL at %s answers again", self._target)
            self._down_at = None
        # connections opened before the outage are dead: drop them now, not one per request
        self._pool.check()

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A cursor in one transaction: committed on exit, rolled back on error."""
        self._probe_if_down()
        try:
            with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except PoolTimeout as exc:
            # no free connection in time: all busy, or none can be made (the database is gone)
            try:
                psycopg.connect(self._url, connect_timeout=self._connect_timeout).close()
            except psycopg.Error as probe:
                raise self._unreachable(probe) from exc
            raise Unavailable("the database is busy; retry shortly") from exc
        except psycopg.errors.TransactionRollback as exc:  # a deadlock, a serialisation
            log.warning("PostgreSQL at %s: %s", self._target, exc)
            raise Unavailable("the database is busy; retry shortly") from exc
        except psycopg.errors.QueryCanceled as exc:
            log.warning("PostgreSQL at %s: %s", self._target, exc)
            raise Unavailable("the database took too long; retry shortly") from exc
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from exc

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._tx() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def migrate(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            cur.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
            version = int(cur.fetchone()["v"])  # type: ignore[index]
            if version > len(MIGRATIONS):
                raise ConfigurationError(
                    f"database {self._target} has schema version {version}, newer than this "
                    f"Viewfinder understands ({len(MIGRATIONS)}); upgrade Viewfinder"
                )
            for number in range(version, len(MIGRATIONS)):
                cur.execute(MIGRATIONS[number])  # several statements, so no parameters
                cur.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (number + 1, time.time()),
                )

    def schema_version(self) -> int:
        """The applied migration count."""
        rows = self._query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(rows[0]["v"])

    def ping(self, timeout_s: float) -> None:
        try:
            with self._pool.connection(timeout=timeout_s) as conn:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (f"{max(1, int(timeout_s * 1000))}ms",),
                )
                conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise Unavailable(f"PostgreSQL at {self._target} does not answer") from exc

    def close(self) -> None:
        self._pool.close()

    # keys
    def create_key(
        self, key_id: str, key_hash: str, tenant: str, rate_limits: dict[str, str]
    ) -> ApiKey:
        now = time.time()
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO api_keys (key_id, key_hash, tenant, created_at, rate_limits) "
                "VALUES (%s, %s, %s, %s, %s)",
                (key_id, key_hash, tenant, now, json.dumps(rate_limits)),
            )
        return ApiKey(key_id=key_id, tenant=tenant, created_at=now, rate_limits=rate_limits)

    def find_key(self, key_hash: str) -> ApiKey | None:
        rows = self._query("SELECT * FROM api_keys WHERE key_hash = %s", (key_hash,))
        return _key(rows[0]) if rows else None

    def list_keys(self) -> list[ApiKey]:
        return [_key(r) for r in self._query("SELECT * FROM api_keys ORDER BY created_at")]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as cur:
            cur.execute("DELETE FROM api_keys WHERE key_id = %s", (key_id,))
            return cur.rowcount > 0

    # rate limits
    def count_request(self, key_id: str, endpoint: str, window_s: float) -> tuple[int, float]:
        """Count a request in the current fixed window (api/ratelimit.SharedWindowCounters)."""
        return counted(self._query(COUNT_REQUEST, count_params(key_id, endpoint, window_s))[0])

    # re-embedding during a model switch (domain/spaces.ReembedLeases)
    def lease_reembed(
        self, target: str, image_ids: Sequence[str], lease_s: float, now: float
    ) -> list[str]:
        """Of these images, the ones no other process re-embeds for `target`, leased."""
        if not image_ids:
            return []
        rows = self._query(
            reembed_sql.LEASE,
            {"target": target, "ids": list(image_ids), "until": now + lease_s, "now": now},
        )
        return [r["image_id"] for r in rows]

    def finish_reembed(self, target: str, image_ids: Sequence[str]) -> None:
        """These images are done (or can't be done): no process takes them again."""
        if image_ids:
            self._query_none(reembed_sql.FINISH, {"target": target, "ids": list(image_ids)})

    def release_reembed(self, target: str, image_ids: Sequence[str]) -> None:
        """Give leased images back (a failed batch)."""
        if image_ids:
            self._query_none(reembed_sql.RELEASE, {"target": target, "ids": list(image_ids)})

    def clear_reembed(self, target: str) -> None:
        """Forget the leases of a finished switch."""
        self._query_none(reembed_sql.CLEAR, {"target": target})

    def finished_reembed(self, target: str, image_ids: Sequence[str]) -> set[str]:
        """Those of these images some process finished (or gave up on) for `target`."""
        rows = self._query(reembed_sql.FINISHED, {"target": target, "ids": list(image_ids)})
        return {r["image_id"] for r in rows}

    def _query_none(self, sql: str, params: dict[str, Any]) -> None:
        with self._tx() as cur:
            cur.execute(sql, params)

    # images
    def insert_images(self, records: Sequence[ImageRecord], *, held: bool = False) -> None:
        if not records:
            return
        with self._tx() as cur:
            lock_blobs(cur, [r.sha256 for r in records if r.sha256])
            cur.executemany(
                f"INSERT INTO images ({IMAGE_COLUMNS}) VALUES ({IMAGE_MARKS})",
                [values(r) for r in records],
            )
            queued = [
                (r.image_id, r.upload_timestamp, r.upload_timestamp)
                for r in records
                if r.status == IndexingStatus.QUEUED
            ]
            if queued:
                cur.executemany(
                    "INSERT INTO jobs (image_id, available_at, enqueued_at) VALUES (%s, %s, %s)",
                    queued,
                )
            if held:
                with_bytes = [r.image_id for r in records if r.sha256]
                cur.execute(
                    "DELETE FROM blob_holds WHERE image_id = ANY(%s) RETURNING image_id",
                    (with_bytes,),
                )
                released = {r["image_id"] for r in cur.fetchall()}
                lost = [i for i in with_bytes if i not in released]
                if lost:
                    raise BlobHoldLost(lost)  # rolls the inserts back

    def get_image(self, tenant: str, image_id: str) -> ImageRecord | None:
        rows = self._query(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE tenant = %s AND image_id = %s",
            (tenant, image_id),
        )
        return record(rows[0]) if rows else None

    def find_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query(f"SELECT {IMAGE_COLUMNS} FROM images WHERE image_id = %s", (image_id,))
        return record(rows[0]) if rows else None

    def get_images(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        if not image_ids:
            return {}
        rows = self._query(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE tenant = %s AND image_id = ANY(%s)",
            (tenant, list(image_ids)),
        )
        return {r["image_id"]: record(r) for r in rows}

    def list_images(
        self, tenant: str, limit: int, offset: int, where: Filter | None = None
    ) -> list[ImageRecord]:
        clause, params = ("1 = 1", []) if where is None else compile_filter(where, "postgres")
        rows = self._query(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE tenant = %s AND {clause} "
            "ORDER BY upload_ts DESC, seq DESC LIMIT %s OFFSET %s",
            (tenant, *params, limit, offset),
        )
        return [record(r) for r in rows]

    def filtered_ids(self, tenant: str, where: Filter, limit: int) -> list[str]:
        clause, params = compile_filter(where, "postgres")
        rows = self._query(
            f"SELECT image_id FROM images WHERE tenant = %s AND status = %s AND {clause} LIMIT %s",
            (tenant, int(IndexingStatus.INDEXED), *params, limit),
        )
        return [r["image_id"] for r in rows]

    def delete_image(
        self, tenant: str, image_id: str, now: float | None = None
    ) -> ImageRecord | None:
        with self._tx() as cur:
            cur.execute(
                f"DELETE FROM images WHERE tenant = %s AND image_id = %s RETURNING {IMAGE_COLUMNS}",
                (tenant, image_id),
            )
            row = cur.fetchone()  # its job goes with it (ON DELETE CASCADE)
            if row is None:
                return None
            if row["sha256"]:  # always marked: whether others share the bytes is the sweeper's call
                cur.execute(
                    "INSERT INTO blob_orphans (sha256, since) VALUES (%s, %s) "
                    "ON CONFLICT (sha256) DO UPDATE "
                    "SET since = GREATEST(blob_orphans.since, EXCLUDED.since)",
                    (row["sha256"], time.time() if now is None else now),
                )
            return record(row)

    def existing_image_ids(self, image_ids: Sequence[str]) -> set[str]:
        if not image_ids:
            return set()
        rows = self._query(
            "SELECT image_id FROM images WHERE image_id = ANY(%s)", (list(image_ids),)
        )
        return {r["image_id"] for r in rows}

    def sha_in_use(self, sha256: str) -> bool:
        return bool(self._query("SELECT 1 FROM images WHERE sha256 = %s LIMIT 1", (sha256,)))

    def image_with_sha256(self, tenant: str, sha256: str) -> ImageRecord | None:
        rows = self._query(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE sha256 = %s AND tenant = %s "
            "ORDER BY upload_ts, image_id LIMIT 1",
            (sha256, tenant),
        )
        return record(rows[0]) if rows else None

    def count_images(self, status: IndexingStatus | None = None, tenant: str | None = None) -> int:
        # maintained by triggers: a few rows, not a scan of every image
        sql, params = count_query(None if status is None else int(status), tenant, "%s")
        return int(self._query(sql, params)[0]["n"])

    def image_ids_page(self, status: IndexingStatus, after: str, limit: int) -> list[str]:
        """Up to `limit` ids of images in `status` after `after`, in order (keyset paging)."""
        rows = self._query(
            "SELECT image_id FROM images WHERE status = %s AND image_id > %s "
            "ORDER BY image_id LIMIT %s",
            (int(status), after, limit),
        )
        return [r["image_id"] for r in rows]

    def image_ids_with_status(self, status: IndexingStatus) -> set[str]:
        rows = self._query("SELECT image_id FROM images WHERE status = %s", (int(status),))
        return {r["image_id"] for r in rows}

    # queue
