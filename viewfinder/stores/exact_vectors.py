"""An exact in-process vector index: numpy matrices per tenant, persisted in a SQLite file.

Every upsert is committed to disk before it returns, so a crash loses nothing that a worker
reported as indexed; at start the whole file is loaded into memory.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..domain.ports import StoredModel
from ..errors import ConfigurationError, ValidationError


def shadow_path(path: Path) -> Path:
    """Where the vectors of a model being switched to are built, beside the active file."""
    return path.with_name(f"{path.stem}.next{path.suffix}")


def promote(path: Path) -> None:
    """Atomically replace the active index file with the shadow one (both closed)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(shadow_path(path), path)


class _Partition:
    """The vectors of one tenant: a growable matrix and an id <-> row map."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((16, dim), dtype=np.float32)
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}

    def upsert(self, image_id: str, vector: np.ndarray) -> None:
        row = self.rows.get(image_id)
        if row is None:
            row = len(self.ids)
            if row == len(self.matrix):
                grown = np.zeros((2 * len(self.matrix), self.matrix.shape[1]), np.float32)
                grown[:row] = self.matrix
                self.matrix = grown
            self.ids.append(image_id)
            self.rows[image_id] = row
        self.matrix[row] = vector

    def delete(self, image_id: str) -> bool:
        row = self.rows.pop(image_id, None)
        if row is None:
            return False
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.matrix[row] = self.matrix[last]
            self.ids[row] = moved
            self.rows[moved] = row
        self.ids.pop()
        return True

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0:
            return []
        sims = self.matrix[:n] @ query
        k = min(k, n)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.ids[i], float(sims[i])) for i in top]


class ExactVectorIndex:
    """Brute-force dot-product search over L2-normalised float32 vectors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors "
            "(image_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, vector BLOB NOT NULL)"
        )
        self._lock = threading.RLock()
        self._parts: dict[str, _Partition] = {}
        self._tenant_of: dict[str, str] = {}
        self._model_id: str | None = None
        self._dim: int | None = None

    @property
    def model_id(self) -> str | None:
        return self._model_id

    @property
    def dim(self) -> int | None:
        return self._dim

    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def stored_model(self) -> StoredModel | None:
        with self._lock:
            meta = self._meta()
        if "model_id" not in meta:
            return None
        return StoredModel(meta["model_id"], int(meta["dim"]), meta.get("spec", ""))

    def open(self, model_id: str, dim: int, spec: str = "") -> None:
        with self._lock:
            meta = self._meta()
            if not meta:
                self._write_meta(model_id, dim, spec)
            elif meta["model_id"] != model_id or int(meta["dim"]) != dim:
                raise ConfigurationError(
                    f"the vector index {self.path} holds vectors of model {meta['model_id']} "
                    f"(dim {meta['dim']}), not {model_id} (dim {dim}); run `viewfinder reindex` "
                    "to re-embed every image with the new model, or select the old model again"
                )
            elif spec and meta.get("spec") != spec:
                self._write_meta(model_id, dim, spec)
            self._model_id, self._dim = model_id, dim
            self._parts.clear()
            self._tenant_of.clear()
            for image_id, tenant, blob in self._conn.execute(
                "SELECT image_id, tenant, vector FROM vectors"
            ):
                self._put(image_id, tenant, np.frombuffer(blob, dtype=np.float32))

    def _write_meta(self, model_id: str, dim: int, spec: str = "") -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("DELETE FROM meta")
        self._conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("model_id", model_id), ("dim", str(dim)), ("spec", spec)],
        )
        self._conn.execute("COMMIT")

    def _put(self, image_id: str, tenant: str, vector: np.ndarray) -> None:
        assert self._dim is not None
        old = self._tenant_of.get(image_id)
        if old is not None and old != tenant:
            self._parts[old].delete(image_id)
        self._parts.setdefault(tenant, _Partition(self._dim)).upsert(image_id, vector)
        self._tenant_of[image_id] = tenant

    def _check_open(self) -> int:
        if self._dim is None:
            raise ConfigurationError("vector index used before open()")
        return self._dim

    def upsert(self, ids: Sequence[str], tenants: Sequence[str], vectors: np.ndarray) -> None:
        dim = self._check_open()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), dim) or len(tenants) != len(ids):
            raise ValidationError(f"expected {len(ids)} vectors of dim {dim}, got {vectors.shape}")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO vectors (image_id, tenant, vector) VALUES (?, ?, ?)",
                    [(i, t, v.tobytes()) for i, t, v in zip(ids, tenants, vectors, strict=True)],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            for image_id, tenant, vector in zip(ids, tenants, vectors, strict=True):
                self._put(image_id, tenant, vector)

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM vectors WHERE image_id = ?", [(i,) for i in ids])
            self._conn.execute("COMMIT")
            for image_id in ids:
                tenant = self._tenant_of.pop(image_id, None)
                if tenant is not None:
                    self._parts[tenant].delete(image_id)

    def search(self, tenant: str, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        dim = self._check_open()
        query = np.asarray(query, dtype=np.float32).reshape(dim)
        with self._lock:
            part = self._parts.get(tenant)
            return part.search(query, k) if part else []

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._tenant_of)

    def count(self, tenant: str | None = None) -> int:
        with self._lock:
            if tenant is None:
                return len(self._tenant_of)
            part = self._parts.get(tenant)
            return len(part.ids) if part else 0

    def iter_vectors(
        self, batch_size: int = 1000
    ) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        self._check_open()
        with self._lock:  # a copy, so that writes may go on while the caller iterates
            rows = [(i, t, self._parts[t].rows[i]) for i, t in self._tenant_of.items()]
            snapshot = [(i, t, self._parts[t].matrix[row].copy()) for i, t, row in rows]
        for start in range(0, len(snapshot), batch_size):
            chunk = snapshot[start : start + batch_size]
            vectors = np.stack([v for _, _, v in chunk])
            yield [i for i, _, _ in chunk], [t for _, t, _ in chunk], vectors

    def reset(self, model_id: str, dim: int, spec: str = "") -> None:
        with self._lock:
            self._conn.execute("DELETE FROM vectors")
            self._write_meta(model_id, dim, spec)
            self._parts.clear()
            self._tenant_of.clear()
            self._model_id, self._dim = model_id, dim

    def close(self) -> None:
        with self._lock:
            self._conn.close()
