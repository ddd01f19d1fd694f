"""The `in_place_files` table, the same SQL for SQLite and PostgreSQL (mixed into both stores).

A row says where the bytes of an image indexed in place live (the user's file: path, size,
mtime, hash). Rows are written before their image rows, so reads join `images`: a row whose
image never came, or was deleted since, is invisible until `purge_in_place_files` drops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import PurePath
from typing import Any, Protocol

from ..domain.ports import InPlaceFile

# Appended to both stores' MIGRATIONS (the same statements run on both).
MIGRATION = """
    CREATE TABLE in_place_files (
        image_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        mtime DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX in_place_files_by_tenant ON in_place_files (tenant, path);
    CREATE INDEX in_place_files_by_sha ON in_place_files (sha256)
"""

_COLUMNS = "f.image_id, f.tenant, f.path, f.sha256, f.size_bytes, f.mtime"


class _Sql(Protocol):
    """What the mixin needs of a store: a write transaction and a read."""

    _mark: str

    def _tx(self) -> AbstractContextManager[Any]: ...
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


def _file(row: Any) -> InPlaceFile:
    return InPlaceFile(
        image_id=row["image_id"],
        tenant=row["tenant"],
        path=row["path"],
        sha256=row["sha256"],
        size_bytes=int(row["size_bytes"]),
        mtime=float(row["mtime"]),
    )


class InPlaceFilesSql:
    """`MetadataStore`'s in-place methods; `_mark` is the driver's parameter mark."""

    _mark = "?"

    def add_in_place_files(self: _Sql, files: Sequence[InPlaceFile]) -> None:
        """See `MetadataStore.add_in_place_files`."""
        upsert = (
            "INSERT INTO in_place_files (image_id, tenant, path, sha256, size_bytes, mtime) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET "
            "tenant = excluded.tenant, path = excluded.path, sha256 = excluded.sha256, "
            "size_bytes = excluded.size_bytes, mtime = excluded.mtime"
        ).replace("?", self._mark)
        rename = "UPDATE images SET file_name = ? WHERE image_id = ?".replace("?", self._mark)
        with self._tx() as tx:
            for f in files:
                tx.execute(upsert, (f.image_id, f.tenant, f.path, f.sha256, f.size_bytes, f.mtime))
                # a moved or renamed file shows its new name (no-op before the image row exists)
                tx.execute(rename, (PurePath(f.path).name, f.image_id))

    def in_place_files(self: _Sql, tenant: str) -> list[InPlaceFile]:
        """See `MetadataStore.in_place_files`."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM in_place_files f JOIN images i ON i.image_id = f.image_id "
            f"WHERE f.tenant = {self._mark} ORDER BY f.path",
            (tenant,),
        )
        return [_file(r) for r in rows]

    def in_place_files_with_sha(self: _Sql, sha256: str) -> list[InPlaceFile]:
        """See `MetadataStore.in_place_files_with_sha`."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM in_place_files f JOIN images i ON i.image_id = f.image_id "
            f"WHERE f.sha256 = {self._mark} ORDER BY f.path",
            (sha256,),
        )
        return [_file(r) for r in rows]

    def purge_in_place_files(self: _Sql) -> int:
        """See `MetadataStore.purge_in_place_files`."""
        with self._tx() as tx:
            cur = tx.execute(
                "DELETE FROM in_place_files WHERE NOT EXISTS "
                "(SELECT 1 FROM images i WHERE i.image_id = in_place_files.image_id)"
            )
            return int(cur.rowcount)


class PostgresInPlaceFilesSql(InPlaceFilesSql):
    """The same, with psycopg's parameter mark."""

    _mark = "%s"
