"""References to stored bytes in PostgreSQL: the hold an upload writes before it stores bytes,
and the sweeper's check-and-remove of bytes nothing needs (mixed into `PostgresMetadataStore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from .postgres_rows import Sql

# Transaction locks on (BLOB_LOCK, hashtext(sha256)) order whatever makes bytes needed (a hold,
# an image row) against the sweeper's check-and-remove of the same bytes. Two-key advisory
# locks live apart from the one-key migration lock.
BLOB_LOCK = 0x76666231  # "vfb1"


def lock_blobs(cur: psycopg.Cursor[dict[str, Any]], shas: Iterable[str]) -> None:
    """Take the transaction locks of these bytes, in one order (no deadlocks)."""
    for sha in sorted(set(shas)):
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (BLOB_LOCK, sha))


class PostgresBlobHolds:
    """`MetadataStore`'s blob-reference methods over `blob_holds` and `blob_orphans`."""

    def hold_blob(self: Sql, image_id: str, sha256: str, now: float) -> None:
        with self._tx() as cur:
            lock_blobs(cur, [sha256])
            cur.execute(
                "INSERT INTO blob_holds (image_id, sha256, since) VALUES (%s, %s, %s) "
                "ON CONFLICT (image_id) DO UPDATE SET sha256 = EXCLUDED.sha256, "
                "since = EXCLUDED.since",
                (image_id, sha256, now),
            )
            cur.execute("DELETE FROM blob_orphans WHERE sha256 = %s", (sha256,))

    def blob_sweep_candidates(self: Sql, cutoff: float, limit: int) -> list[str]:
        rows = self._query(
            "SELECT sha256 FROM blob_orphans WHERE since <= %(cutoff)s "
            "UNION SELECT sha256 FROM blob_holds WHERE since <= %(cutoff)s LIMIT %(limit)s",
            {"cutoff": cutoff, "limit": limit},
        )
        return [r["sha256"] for r in rows]

    def sweep_blob(self: Sql, sha256: str, cutoff: float, remove: Callable[[str], None]) -> bool:
        with self._tx() as cur:
            # Holds and image rows of these bytes are written under the same lock, so what this
            # one statement sees stays true until the commit: the bytes go only if unneeded.
            lock_blobs(cur, [sha256])
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM images WHERE sha256 = %(sha)s) "
                "OR EXISTS (SELECT 1 FROM blob_holds WHERE sha256 = %(sha)s AND since > %(cut)s) "
                "OR EXISTS (SELECT 1 FROM blob_orphans WHERE sha256 = %(sha)s AND since > %(cut)s) "
                "AS needed, "
                "EXISTS (SELECT 1 FROM blob_holds WHERE sha256 = %(sha)s AND since <= %(cut)s) "
                "OR EXISTS (SELECT 1 FROM blob_orphans "
                "WHERE sha256 = %(sha)s AND since <= %(cut)s) AS due",
                {"sha": sha256, "cut": cutoff},
            )
            row = cur.fetchone()
            if row is None or not row["due"]:
                return False  # nothing held or marked that long ago (swept meanwhile)
            needed = bool(row["needed"])
            if not needed:
                remove(sha256)
            cur.execute(
                "DELETE FROM blob_holds WHERE sha256 = %s AND since <= %s", (sha256, cutoff)
            )
            # A stale mark goes with the bytes, or once an image refers to them again, asked
            # in this statement: a delete that committed since the check above marked them
            # anew, and its mark must stay.
            cur.execute(
                "DELETE FROM blob_orphans WHERE sha256 = %(sha)s AND since <= %(cut)s "
                "AND (%(gone)s OR EXISTS (SELECT 1 FROM images WHERE sha256 = %(sha)s))",
                {"sha": sha256, "cut": cutoff, "gone": not needed},
            )
            return not needed
