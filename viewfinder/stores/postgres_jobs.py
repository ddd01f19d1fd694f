"""The job queue in PostgreSQL: claiming batches under a lease, completing, failing, releasing
and requeueing them (mixed into `PostgresMetadataStore`).

Many workers claim at once: a claim takes its rows with `FOR UPDATE SKIP LOCKED`, so claimers
pass over rows another transaction is taking and never wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..domain.records import IndexingStatus, Job, Tag
from .postgres_rows import Sql as _Sql
from .tags_exif_sql import dump_tags


def _update_tags(cur: Any, tags: Mapping[str, Sequence[Tag]]) -> None:
    """Set the tags of images by id, in one statement (one firing of the count trigger)."""
    if not tags:
        return
    cur.execute(
        "UPDATE images AS i SET tags = t.tags "
        "FROM unnest(%s::text[], %s::text[]) AS t(image_id, tags) WHERE i.image_id = t.image_id",
        (list(tags), [dump_tags(t) for t in tags.values()]),
    )


class PostgresJobQueue:
    """`MetadataStore`'s job-queue methods over the `jobs` table."""

    def claim_jobs(self: _Sql, limit: int, lease_s: float, now: float) -> list[Job]:
        # SKIP LOCKED: concurrent claimers pass over rows another transaction is taking, so
        # workers never wait on each other and never take the same job.
        rows = self._query(
            "WITH picked AS ("
            "  SELECT image_id FROM jobs"
            "  WHERE available_at <= %(now)s AND lease_until <= %(now)s"
            "  ORDER BY available_at, enqueued_at LIMIT %(limit)s"
            "  FOR UPDATE SKIP LOCKED"
            ") "
            "UPDATE jobs j SET lease_until = %(until)s FROM picked, images i "
            "WHERE j.image_id = picked.image_id AND i.image_id = j.image_id "
            "RETURNING j.image_id, j.attempts, j.available_at, j.enqueued_at, i.tenant, i.sha256",
            {"now": now, "limit": limit, "until": now + lease_s},
        )
        rows.sort(key=lambda r: (r["available_at"], r["enqueued_at"]))
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
        if not image_ids:
            return set()
        ids = list(image_ids)
        with self._tx() as cur:
            cur.execute(
                "UPDATE images SET status = %s, error = NULL WHERE image_id = ANY(%s) "
                "RETURNING image_id",
                (int(IndexingStatus.INDEXED), ids),
            )
            done = {r["image_id"] for r in cur.fetchall()}
            if tags:
                _update_tags(cur, {i: t for i, t in tags.items() if i in done})
            cur.execute("DELETE FROM jobs WHERE image_id = ANY(%s)", (ids,))
        return done

    def set_tags(self: _Sql, tags: Mapping[str, Sequence[Tag]]) -> None:
        if not tags:
            return
        with self._tx() as cur:
            _update_tags(cur, tags)

    def fail_job(self: _Sql, image_id: str, error: str, max_attempts: int, retry_at: float) -> bool:
        with self._tx() as cur:
            cur.execute("SELECT attempts FROM jobs WHERE image_id = %s FOR UPDATE", (image_id,))
            row = cur.fetchone()
            if row is None:
                return False
            attempts = row["attempts"] + 1
            if attempts >= max_attempts:
                cur.execute("DELETE FROM jobs WHERE image_id = %s", (image_id,))
                cur.execute(
                    "UPDATE images SET status = %s, error = %s WHERE image_id = %s",
                    (int(IndexingStatus.FAILED), error, image_id),
                )
                return True
            cur.execute(
                "UPDATE jobs SET attempts = %s, available_at = %s, lease_until = 0, "
                "last_error = %s WHERE image_id = %s",
                (attempts, retry_at, error, image_id),
            )
            return False

    def release_jobs(self: _Sql, image_ids: Sequence[str], lease_until: float) -> int:
        if not image_ids:
            return 0
        with self._tx() as cur:
            cur.execute(
                "UPDATE jobs SET lease_until = 0 WHERE image_id = ANY(%s) AND lease_until = %s",
                (list(image_ids), lease_until),
            )
            return cur.rowcount

    def oldest_queued_at(self: _Sql) -> float | None:
        rows = self._query("SELECT MIN(enqueued_at) AS t FROM jobs")
        return None if rows[0]["t"] is None else float(rows[0]["t"])

    def release_leases(self: _Sql) -> int:
        # Only safe when no other process works this queue: the single-process server
        # calls it at start; shared deployments let leases run out instead.
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET lease_until = 0 WHERE lease_until > 0")
            return cur.rowcount

    def requeue(self: _Sql, image_ids: Iterable[str], now: float) -> int:
        ids = list(image_ids)
        if not ids:
            return 0
        with self._tx() as cur:
            cur.execute(
                "UPDATE images SET status = %s, error = NULL WHERE image_id = ANY(%s) "
                "RETURNING image_id",
                (int(IndexingStatus.QUEUED), ids),
            )
            found = [r["image_id"] for r in cur.fetchall()]
            if found:
                cur.executemany(
                    "INSERT INTO jobs (image_id, available_at, enqueued_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (image_id) DO UPDATE SET attempts = 0, "
                    "available_at = EXCLUDED.available_at, lease_until = 0, "
                    "enqueued_at = EXCLUDED.enqueued_at, last_error = NULL",
                    [(i, now, now) for i in found],
                )
        return len(found)
