"""The on-disk format of the embedded vector index: a directory that opens in O(1).

    index.sqlite   meta (model, dim, committed rows), tenants (name, count), ids (row <-> image
                   id), freed rows, ANN files: the commit point of every write
    vectors.f32    float32 rows, append-only, memory-mapped read-only (shared page cache)
    labels.i32     the tenant number of each row, -1 once the row is replaced or deleted
    ann/           approximate indexes of big tenants (immutable files, see ann_index.py)

A write appends its rows and their labels past the committed end, syncs them, then commits
the id -> row mapping and the new end in one SQLite transaction: that commit is the
acknowledgement. A crash before it leaves only bytes past the committed end, which the next
append overwrites. Rows that a commit frees are recorded in the same transaction and marked -1
in `labels.i32` after it, again at open, so a crash in between leaves no stale label behind.
Nothing is read per vector at open: the files are mapped, and rows are looked up by id in
SQLite only for the top-k of a search.
"""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..domain.ports import StoredModel

log = logging.getLogger(__name__)

DB_NAME = "index.sqlite"
VECTORS_NAME = "vectors.f32"
LABELS_NAME = "labels.i32"
ANN_DIR = "ann"
FREE = -1
_GROW_ROWS = 65536  # files grow (sparsely) by at least this many rows at a time

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tenants "
    "(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, count INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS ids "
    "(row INTEGER PRIMARY KEY, image_id TEXT NOT NULL UNIQUE, tenant INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS freed (row INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS ann "
    "(tenant INTEGER PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class AnnEntry:
    """A tenant's approximate index file and the rows it covers (every row below `rows`)."""

    tenant: int
    file: str
    rows: int


def is_vector_dir(path: Path) -> bool:
    """Whether `path` holds an index in this format."""
    return (path / DB_NAME).is_file()


class _Mapped:
    """A file of fixed-size rows, written with pwrite and read through a shared mapping."""

    def __init__(self, path: Path, dtype: type[np.generic], width: int) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.width = width
        self.row_bytes = self.dtype.itemsize * width
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.capacity = 0
        self.view: np.ndarray = np.zeros((0, width), self.dtype)
        self._map()

    def _map(self) -> None:
        size = os.fstat(self.fd).st_size
        self.capacity = size // self.row_bytes
        if self.capacity == 0:
            self.view = np.zeros((0, self.width), self.dtype)
            return
        mapped = mmap.mmap(self.fd, self.capacity * self.row_bytes, prot=mmap.PROT_READ)
        self.view = np.frombuffer(mapped, self.dtype).reshape(self.capacity, self.width)

    def write(self, start: int, rows: np.ndarray) -> None:
        end = start + len(rows)
        if end > self.capacity:
            grown = max(end, self.capacity + max(_GROW_ROWS, self.capacity // 4))
            os.ftruncate(self.fd, grown * self.row_bytes)  # sparse: costs no disk until written
            self._map()  # old views stay valid until their last reader drops them
        data = np.ascontiguousarray(rows, self.dtype).tobytes()
        offset = start * self.row_bytes
        while data:
            written = os.pwrite(self.fd, data, offset)
            data, offset = data[written:], offset + written

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Copies of `rows` (ascending), read with pread rather than through the mapping: a
        few scattered rows then cost page cache, shared and reclaimable, not this process's
        resident memory (a mapping keeps every page it ever touched)."""
        out = np.empty((len(rows), self.width), self.dtype)
        if not len(rows):
            return out
        buffer = memoryview(out.data).cast("B")
        size = self.row_bytes
        for n, row in enumerate(rows.tolist()):
            got = os.preadv(self.fd, [buffer[n * size : (n + 1) * size]], row * size)
            if got != size:
                raise OSError(f"{self.path}: short read of row {row}")
        return out

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        self.view = np.zeros((0, self.width), self.dtype)
        os.close(self.fd)


class VectorFile:
    """One index directory: rows, labels and the SQLite commit point."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.durable = durable
        root.mkdir(parents=True, exist_ok=True)
        (root / ANN_DIR).mkdir(exist_ok=True)
        self.db = sqlite3.connect(
            str(root / DB_NAME), check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        for statement in _SCHEMA:
            self.db.execute(statement)
        self.vectors: _Mapped | None = None
        self.labels = _Mapped(root / LABELS_NAME, np.int32, 1)
        self.rows = int(self.meta().get("rows", "0"))
        self._tenant_ids: dict[str, int] = {}
        self._repair_freed()

    # meta ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """The key/value metadata (model_id, dim, spec, rows)."""
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def stored_model(self) -> StoredModel | None:
        """The model recorded here, or None when new."""
        meta = self.meta()
        if "model_id" not in meta:
            return None
        return StoredModel(meta["model_id"], int(meta["dim"]), meta.get("spec", ""))

    def write_model(self, model_id: str, dim: int, spec: str) -> None:
        """Record the model that built these vectors."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("model_id", model_id), ("dim", str(dim)), ("spec", spec)],
            )

    def take_clean_mark(self) -> bool:
        """Whether the index was closed cleanly last time; it is marked in use from now on."""
        clean = self.meta().get("clean") == "1"
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', '0')")
        return clean

    def mark_clean(self) -> None:
        """Record a clean close (every write of this process finished)."""
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', '1')")

    def map_vectors(self, dim: int) -> None:
        """Map the vector rows (once the dimension is known)."""
        if self.vectors is None or self.vectors.width != dim:
            if self.vectors is not None:
                self.vectors.close()
            self.vectors = _Mapped(self.root / VECTORS_NAME, np.float32, dim)

    # writes ----------------------------------------------------------------------------------
    def _transaction(self) -> _Txn:
        return _Txn(self.db)

    def tenant_id(self, name: str, *, create: bool = False) -> int | None:
        """The number of a tenant (created when asked), or None when it has no rows."""
        tid = self._tenant_ids.get(name)
        if tid is not None:
            return tid
        row = self.db.execute("SELECT id FROM tenants WHERE name = ?", (name,)).fetchone()
        if row is None:
            if not create:
                return None
            row = self.db.execute(
                "INSERT INTO tenants (name) VALUES (?) RETURNING id", (name,)
            ).fetchone()
        self._tenant_ids[name] = int(row[0])
        return int(row[0])

    def append(
        self, ids: Sequence[str], tenants: Sequence[str], vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """Store vectors durably; return their rows, their tenant numbers and the freed
        (row, tenant) pairs."""
        assert self.vectors is not None
        start = self.rows
        rows = np.arange(start, start + len(ids), dtype=np.int64)
        try:
            freed = self._append(ids, tenants, vectors, rows)
        except BaseException:
            self._tenant_ids.clear()  # tenants created by a rolled-back transaction
            raise
        self.rows = start + len(ids)
        self._mark_free([r for r, _ in freed])
        return rows, self.labels.view[start : self.rows, 0].copy(), freed

    def _append(
        self, ids: Sequence[str], tenants: Sequence[str], vectors: np.ndarray, rows: np.ndarray
    ) -> list[tuple[int, int]]:
        assert self.vectors is not None
        start = int(rows[0]) if len(rows) else self.rows
        with self._transaction():
            self.db.execute("DELETE FROM freed")  # marked in labels (and synced) before now
            labels = np.array([self.tenant_id(t, create=True) for t in tenants], np.int32)
            self.vectors.write(start, vectors)
            self.labels.write(start, labels[:, None])
            if self.durable:
                self.vectors.sync()
                self.labels.sync()
            freed = self._unlink(ids)
            latest = {image_id: n for n, image_id in enumerate(ids)}  # a repeated id: last wins
            freed += [
                (int(rows[n]), int(labels[n]))
                for n, image_id in enumerate(ids)
                if latest[image_id] != n
            ]
            self.db.executemany(
                "INSERT INTO ids (row, image_id, tenant) VALUES (?, ?, ?)",
                [(int(rows[n]), ids[n], int(labels[n])) for n in latest.values()],
            )
            added: dict[int, int] = {}
            for n in latest.values():
                added[int(labels[n])] = added.get(int(labels[n]), 0) + 1
            self.db.executemany(
                "UPDATE tenants SET count = count + ? WHERE id = ?",
                [(c, t) for t, c in added.items()],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO freed (row) VALUES (?)", [(r,) for r, _ in freed]
            )
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('rows', ?)",
                (str(start + len(ids)),),
            )
        return freed

    def delete(self, ids: Sequence[str]) -> list[tuple[int, int]]:
        """Remove ids durably; return the (row, tenant) pairs they held."""
        with self._transaction():
            freed = self._unlink(ids)
            self.db.executemany(
                "INSERT OR IGNORE INTO freed (row) VALUES (?)", [(r,) for r, _ in freed]
            )
        self._mark_free([r for r, _ in freed])
        return freed

    def _unlink(self, ids: Sequence[str]) -> list[tuple[int, int]]:
        """Inside a transaction: drop the rows of ids, keeping tenant counts right."""
        freed: list[tuple[int, int]] = []
        removed: dict[int, int] = {}
        for image_id in set(ids):
            found = self.db.execute(
                "DELETE FROM ids WHERE image_id = ? RETURNING row, tenant", (image_id,)
            ).fetchone()
            if found is not None:
                freed.append((int(found[0]), int(found[1])))
                removed[int(found[1])] = removed.get(int(found[1]), 0) + 1
        self.db.executemany(
            "UPDATE tenants SET count = count - ? WHERE id = ?",
            [(c, t) for t, c in removed.items()],
        )
        return freed

    def _mark_free(self, rows: list[int]) -> None:
        for row in rows:
            self.labels.write(row, np.array([[FREE]], np.int32))

    def _repair_freed(self) -> None:
        freed = [int(r) for (r,) in self.db.execute("SELECT row FROM freed")]
        if freed:
            self._mark_free(freed)
            if self.durable:
                self.labels.sync()

    def clear(self) -> None:
        """Drop every row (the files stay, emptied)."""
        with self._transaction():
            for table in ("tenants", "ids", "freed", "ann"):
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rows', '0')")
        self.rows = 0
        self._tenant_ids.clear()
        os.ftruncate(self.labels.fd, 0)
        self.labels._map()
        if self.vectors is not None:
            os.ftruncate(self.vectors.fd, 0)
            self.vectors._map()

    # reads -----------------------------------------------------------------------------------
    def label_view(self) -> np.ndarray:
        """The tenant number of every committed row (a read-only mapping)."""
        return self.labels.view[: self.rows, 0]

    def vector_view(self) -> np.ndarray:
        """Every committed row (a read-only mapping)."""
        assert self.vectors is not None
        return self.vectors.view[: self.rows]

    def read_vectors(self, rows: np.ndarray) -> np.ndarray:
        """Copies of some committed rows (ascending), read without mapping them."""
        assert self.vectors is not None
        return self.vectors.read_rows(rows)

    def ids_of(self, rows: Sequence[int]) -> dict[int, str]:
        """The image ids of rows (those still holding one)."""
        found: dict[int, str] = {}
        rows = [int(r) for r in rows]
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(
                    f"SELECT row, image_id FROM ids WHERE row IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
            )
        return found

    def rows_of_ids(self, tid: int, ids: Sequence[str]) -> dict[str, int]:
        """The rows of those of `ids` held by tenant number `tid`."""
        found: dict[str, int] = {}
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(
                    f"SELECT image_id, row FROM ids WHERE tenant = ? AND image_id IN ({marks})",  # noqa: S608
                    [tid, *chunk],
                ).fetchall()
            )
        return found

    def count(self, tenant: str | None = None) -> int:
        """How many ids (of one tenant, or all), from the maintained counts."""
        if tenant is None:
            row = self.db.execute("SELECT COALESCE(SUM(count), 0) FROM tenants").fetchone()
        else:
            row = self.db.execute("SELECT count FROM tenants WHERE name = ?", (tenant,)).fetchone()
        return int(row[0]) if row else 0

    def tenant_count(self, tid: int) -> int:
        """How many ids a tenant number holds."""
        row = self.db.execute("SELECT count FROM tenants WHERE id = ?", (tid,)).fetchone()
        return int(row[0]) if row else 0

    def tenant_counts(self) -> dict[int, int]:
        """Rows per tenant number."""
        return dict(self.db.execute("SELECT id, count FROM tenants").fetchall())

    def all_ids(self) -> set[str]:
        """Every image id."""
        return {i for (i,) in self.db.execute("SELECT image_id FROM ids")}

    def rows_after(self, last: int, limit: int) -> tuple[list[int], list[str], list[str]]:
        """(rows, ids, tenant names) of up to `limit` rows past `last`, in row order."""
        batch = self.db.execute(
            "SELECT ids.row, ids.image_id, tenants.name FROM ids "
            "JOIN tenants ON tenants.id = ids.tenant WHERE ids.row > ? "
            "ORDER BY ids.row LIMIT ?",
            (last, limit),
        ).fetchall()
        return [r for r, _, _ in batch], [i for _, i, _ in batch], [t for _, _, t in batch]

    # approximate indexes ---------------------------------------------------------------------
    def ann_entries(self) -> list[AnnEntry]:
        """The approximate index file of each tenant that has one."""
        return [
            AnnEntry(int(t), f, int(r))
            for t, f, r in self.db.execute("SELECT tenant, file, rows FROM ann")
        ]

    def set_ann(self, entry: AnnEntry) -> None:
        """Point a tenant at a new (complete, synced) approximate index file."""
        with self._transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO ann (tenant, file, rows) VALUES (?, ?, ?)",
                (entry.tenant, entry.file, entry.rows),
            )

    def drop_unreferenced_ann(self) -> None:
        """Remove approximate index files no entry points to (left by a crash or a rebuild)."""
        keep = {e.file for e in self.ann_entries()}
        for path in (self.root / ANN_DIR).iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the files."""
        if self.vectors is not None:
            self.vectors.close()
            self.vectors = None
        self.labels.close()
        self.db.close()


class _Txn:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
