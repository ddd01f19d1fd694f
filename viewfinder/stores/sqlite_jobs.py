"""The job queue in SQLite: claiming batches under a lease, completing, failing, releasing and
requeueing them (mixed into `SqliteMetadataStore`).

SQLite runs one write transaction at a time, so a claim is a plain select-then-update in one
transaction: two claimers can never take the same job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..domain.records import IndexingStatus, Job, Tag
from .tags_exif_sql import dump_tags


class _Sql(Protocol):
    """What the mixin needs of the store: a write transaction and a read."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...


class SqliteJobQueue:
    """`MetadataStore`'s job-queue methods over the `jobs` table."""

    def claim_jobs(self: _Sql, limit: int, lease_s: float, now: float) -> list[Job]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT j.image_id, j.attempts, i.tenant, i.sha256 FROM jobs j "
                "JOIN images i ON i.image_id = j.image_id "
                "WHERE j.available_at <= ? AND j.lease_until <= ? "
                "ORDER BY j.available_at, j.enqueued_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            for r in rows:
                conn.execute(
                    "UPDATE jobs SET lease_until = ? WHERE image_id = ?",
                    (now + lease_s, r["image_id"]),
                )
        return [
            Job(
                image_id=r["image_id"],
                tenant=r["tenant"],
                sha256=r["sha256"],
                attempts=r["attempts"],
            )
            for r in rows
        ]

    def complete_jobs(
        self: _Sql, image_ids: Sequence[str], tags: Mapping[str, Sequence[Tag]] | None = None
    ) -> set[str]:
        done: set[str] = set()
        with self._tx() as conn:
            for image_id in image_ids:
                cur = conn.execute(
                    "UPDATE images SET status = ?, error = NULL WHERE image_id = ?",
                    (int(IndexingStatus.INDEXED), image_id),
                )
                if cur.rowcount:
                    done.add(image_id)
                if tags and image_id in tags:
                    conn.execute(
                        "UPDATE images SET tags = ? WHERE image_id = ?",
                        (dump_tags(tags[image_id]), image_id),
                    )
                conn.execute("DELETE FROM jobs WHERE image_id = ?", (image_id,))
        return done

    def set_tags(self: _Sql, tags: Mapping[str, Sequence[Tag]]) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE images SET tags = ? WHERE image_id = ?",
                [(dump_tags(t), image_id) for image_id, t in tags.items()],
            )

    def fail_job(self: _Sql, image_id: str, error: str, max_attempts: int, retry_at: float) -> bool:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT attempts FROM jobs WHERE image_id = ?", (image_id,)
            ).fetchone()
            if row is None:
                return False
            attempts = row[0] + 1
            if attempts >= max_attempts:
                conn.execute("DELETE FROM jobs WHERE image_id = ?", (image_id,))
                conn.execute(
                    "UPDATE images SET status = ?, error = ? WHERE image_id = ?",
                    (int(IndexingStatus.FAILED), error, image_id),
                )
                return True
            conn.execute(
                "UPDATE jobs SET attempts = ?, available_at = ?, lease_until = 0, last_error = ? "
                "WHERE image_id = ?",
                (attempts, retry_at, error, image_id),
            )
            return False

    def release_jobs(self: _Sql, image_ids: Sequence[str], lease_until: float) -> int:
        ids = list(image_ids)
        with self._tx() as conn:
            return sum(
                conn.execute(
                    f"UPDATE jobs SET lease_until = 0 WHERE lease_until = ? AND image_id IN "
                    f"({','.join('?' * len(chunk))})",
                    (lease_until, *chunk),
                ).rowcount
                for chunk in (ids[n : n + 500] for n in range(0, len(ids), 500))
            )

    def oldest_queued_at(self: _Sql) -> float | None:
        found = self._query("SELECT MIN(enqueued_at) FROM jobs")[0][0]
        return None if found is None else float(found)

    def release_leases(self: _Sql) -> int:
        with self._tx() as conn:
            return conn.execute("UPDATE jobs SET lease_until = 0 WHERE lease_until > 0").rowcount

    def requeue(self: _Sql, image_ids: Iterable[str], now: float) -> int:
        count = 0
        with self._tx() as conn:
            for image_id in image_ids:
                cur = conn.execute(
                    "UPDATE images SET status = ?, error = NULL WHERE image_id = ?",
                    (int(IndexingStatus.QUEUED), image_id),
                )
                if cur.rowcount:
                    conn.execute(
                        "INSERT OR REPLACE INTO jobs (image_id, available_at, enqueued_at) "
                        "VALUES (?, ?, ?)",
                        (image_id, now, now),
                    )
                    count += 1
        return count
