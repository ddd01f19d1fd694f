"""Copying a PostgreSQL metadata store's keys and images to another store and back (`viewfinder
migrate`; mixed into `PostgresMetadataStore`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from ..domain.ports import JobRow, KeyRow
from ..domain.records import ImageRecord
from .postgres_rows import IMAGE_COLUMNS, IMAGE_MARKS, Sql, record, values


class PostgresTransfer:
    """`MetadataStore`'s export and import methods."""

    def export_keys(self: Sql) -> list[KeyRow]:
        rows = self._query(
            "SELECT key_id, key_hash, tenant, created_at, rate_limits FROM api_keys "
            "ORDER BY created_at"
        )
        return [
            KeyRow(
                key_id=r["key_id"],
                key_hash=r["key_hash"],
                tenant=r["tenant"],
                created_at=r["created_at"],
                rate_limits=json.loads(r["rate_limits"]),
            )
            for r in rows
        ]

    def iter_images(
        self: Sql, batch_size: int = 500
    ) -> Iterator[tuple[list[ImageRecord], list[JobRow]]]:
        last = 0
        while True:
            rows = self._query(
                f"SELECT seq, {IMAGE_COLUMNS} FROM images WHERE seq > %s ORDER BY seq LIMIT %s",
                (last, batch_size),
            )
            if not rows:
                return
            last = rows[-1]["seq"]
            jobs = self._query(
                "SELECT image_id, attempts, available_at, enqueued_at, last_error FROM jobs "
                "WHERE image_id = ANY(%s)",
                ([r["image_id"] for r in rows],),
            )
            yield [record(r) for r in rows], [JobRow(**j) for j in jobs]

    def import_keys(self: Sql, keys: Sequence[KeyRow]) -> int:
        new = 0
        with self._tx() as cur:
            for k in keys:
                cur.execute(
                    "INSERT INTO api_keys (key_id, key_hash, tenant, created_at, rate_limits) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (k.key_id, k.key_hash, k.tenant, k.created_at, json.dumps(k.rate_limits)),
                )
                new += cur.rowcount
        return new

    def import_images(self: Sql, records: Sequence[ImageRecord], jobs: Sequence[JobRow]) -> int:
        new: set[str] = set()
        with self._tx() as cur:
            for r in records:  # one by one, in order, so `seq` keeps the source's order
                cur.execute(
                    f"INSERT INTO images ({IMAGE_COLUMNS}) VALUES ({IMAGE_MARKS}) "
                    "ON CONFLICT (image_id) DO NOTHING RETURNING image_id",
                    values(r),
                )
                if cur.fetchone() is not None:
                    new.add(r.image_id)
            rows = [
                (j.image_id, j.attempts, j.available_at, j.enqueued_at, j.last_error)
                for j in jobs
                if j.image_id in new
            ]
            if rows:
                cur.executemany(
                    "INSERT INTO jobs (image_id, attempts, available_at, enqueued_at, last_error) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    rows,
                )
        return len(new)
