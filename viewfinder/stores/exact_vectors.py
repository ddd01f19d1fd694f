"""The embedded vector index: exact search for small tenants, HNSW for big ones.

Vectors live in a memory-mapped directory (vector_file.py) that opens without reading them.
A tenant is searched exactly (a scan of its float32 rows) until it holds `ann_threshold`
vectors; then a background thread builds an HNSW graph of its rows (ann_index.py) and
searches take the graph's candidates, plus the rows added since it was built, and re-score
them exactly. The graph is rebuilt (merged) when enough rows were added or removed since.

Every upsert is committed to disk before it returns, so a crash loses nothing that a worker
reported as indexed. A `vectors.db` SQLite file of the earlier format is migrated on open.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..domain.ports import StoredModel
from ..errors import ConfigurationError, Unavailable, ValidationError
from . import ann_index
from .ann_index import AnnIndex
from .vector_file import ANN_DIR, FREE, AnnEntry, VectorFile
from .vector_migration import is_legacy, legacy_stored_model, migrate_legacy, recover_migration
from .vector_scan import RowScanner, best

log = logging.getLogger(__name__)


def shadow_path(path: Path) -> Path:
    """Where the vectors of a model being switched to are built, beside the active index."""
    return path.with_name(f"{path.stem}.next{path.suffix}")


def _retired_path(path: Path) -> Path:
    return path.with_name(path.name + ".old")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def promote(path: Path) -> None:
    """Replace the active index with the shadow one (both closed); a crash midway is finished
    by the next open."""
    retired = _retired_path(path)
    if path.exists():
        _remove(retired) if retired.exists() else None
        path.rename(retired)
    for suffix in ("-wal", "-shm"):  # of an active index in the SQLite format
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shadow_path(path).rename(path)
    _remove(retired)


def recover_promotion(path: Path) -> None:
    """Finish (or undo) a promotion that a crash interrupted."""
    retired = _retired_path(path)
    if not retired.exists():
        return
    if not path.exists():
        shadow = shadow_path(path)
        shadow.rename(path) if shadow.exists() else retired.rename(path)
    if retired.exists():
        _remove(retired)


class _RowList:
    """A tenant's rows in ascending order, growable (may hold rows freed since)."""

    def __init__(self, rows: np.ndarray) -> None:
        self._data = np.array(rows, dtype=np.int64)
        self.size = len(rows)

    def add(self, rows: np.ndarray) -> None:
        end = self.size + len(rows)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data), 64), np.int64)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = rows
        self.size = end

    @property
    def rows(self) -> np.ndarray:
        return self._data[: self.size]


class ExactVectorIndex:
    """Dot-product search over L2-normalised float32 vectors, exact or HNSW per tenant."""

    def __init__(
        self,
        path: Path,
        *,
        ann_threshold: int = 20000,
        ann_ef: int = 256,
        background: bool = True,
    ) -> None:
        self.path = path
        self.ann_threshold = ann_threshold  # 0: always exact
        self.ann_ef = ann_ef
        self.background = background
        path.parent.mkdir(parents=True, exist_ok=True)
        recover_promotion(path)
        recover_migration(path)
        self._lock = threading.RLock()
        self._file: VectorFile | None = None if is_legacy(path) else VectorFile(path)
        self._model_id: str | None = None
        self._dim: int | None = None
        self._rows: dict[int, _RowList] = {}
        self._scanner = RowScanner()
        self._ann: dict[int, AnnIndex] = {}
        self._stale: dict[int, int] = {}  # rows freed in each tenant's graph since its build
        self._generation = 0  # bumped by reset and close: a build of an older one is dropped
        self._wake = threading.Condition(self._lock)
        self._busy = False
        self._closed = False
        self._builder: threading.Thread | None = None
        self._was_clean = False

    @property
    def model_id(self) -> str | None:
        return self._model_id

    @property
    def dim(self) -> int | None:
        return self._dim

    def stored_model(self) -> StoredModel | None:
        with self._lock:
            if self._file is None:
                return legacy_stored_model(self.path)
            return self._file.stored_model()

    def open(self, model_id: str, dim: int, spec: str = "") -> None:
        with self._lock:
            if self._file is None:
                migrate_legacy(self.path)
                self._file = VectorFile(self.path)
            stored = self._file.stored_model()
            if stored is None or (stored.model_id == model_id and stored.dim == dim):
                if stored is None or (spec and stored.spec != spec):
                    self._file.write_model(model_id, dim, spec)
            else:
                raise ConfigurationError(
                    f"the vector index {self.path} holds vectors of model {stored.model_id} "
                    f"(dim {stored.dim}), not {model_id} (dim {dim}); run `viewfinder reindex` "
                    "to re-embed every image with the new model, or select the old model again"
                )
            self._model_id, self._dim = model_id, dim
            self._was_clean = self._file.take_clean_mark()
            self._file.map_vectors(dim)
            self._load_ann()
        self._schedule()

    def closed_cleanly(self) -> bool:
        return self._was_clean

    def _load_ann(self) -> None:
        assert self._file is not None
        for ann in self._ann.values():
            ann.close()
        self._ann.clear()
        self._rows.clear()
        if self.ann_threshold <= 0:
            return  # scans only: the graphs stay on disk for processes that use them
        for entry in self._file.ann_entries():
            self._ann[entry.tenant] = AnnIndex(
                self.path / ANN_DIR / entry.file, entry.rows, self.ann_ef
            )
        self._file.drop_unreferenced_ann()

    def _opened(self) -> tuple[VectorFile, int]:
        if self._dim is None or self._file is None:
            raise ConfigurationError("vector index used before open()")
        return self._file, self._dim

    # writes ----------------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], tenants: Sequence[str], vectors: np.ndarray) -> None:
        file, dim = self._opened()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), dim) or len(tenants) != len(ids):
            raise ValidationError(f"expected {len(ids)} vectors of dim {dim}, got {vectors.shape}")
        if not ids:
            return
        with self._lock:
            rows, labels, freed = file.append(ids, tenants, vectors)
            for tid in np.unique(labels[labels != FREE]):
                cached = self._rows.get(int(tid))
                if cached is not None:
                    cached.add(rows[labels == tid])
            self._note_freed(freed)
        self._schedule()

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._lock:
            if self._file is None:  # not opened yet: nothing migrated to delete from
                return
            self._note_freed(self._file.delete(ids))
        self._schedule()

    def _note_freed(self, freed: list[tuple[int, int]]) -> None:
        for row, tid in freed:
            ann = self._ann.get(tid)
            if ann is not None and row < ann.rows:
                self._stale[tid] = self._stale.get(tid, 0) + 1

    # search ----------------------------------------------------------------------------------
    def search(self, tenant: str, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        file, dim = self._opened()
        query = np.asarray(query, dtype=np.float32).reshape(dim)
        if k <= 0:
            return []
        with self._lock:
            tid = file.tenant_id(tenant)
            if tid is None:
                return []
            labels = file.label_view()
            ann = self._ann.get(tid)
            if ann is None:
                rows, scores = self._scanner.scan(self._rows_of(tid), tid, labels, file, query, k)
            else:
                extra = max(4 * k, k + 64)
                found = ann.search(query, min(extra, len(ann)))
                found = np.unique(found[(found >= 0) & (found < len(labels))])
                found = found[labels[found] == tid]
                # the graph's candidates are re-scored from rows read, not mapped (the
                # process keeps no page of them); rows added since the build are scanned
                scored = (found, file.read_vectors(found) @ query)
                tail = self._scanner.scan(self._tail(tid, ann.rows), tid, labels, file, query, k)
                rows, scores = best(k, scored, tail)
            names = file.ids_of(rows.tolist())
            return [
                (names[int(r)], float(s))
                for r, s in zip(rows, scores, strict=True)
                if int(r) in names
            ]

    def search_subset(
        self, tenant: str, query: np.ndarray, k: int, ids: Sequence[str]
    ) -> list[tuple[str, float]]:
        file, dim = self._opened()
        query = np.asarray(query, dtype=np.float32).reshape(dim)
        if k <= 0 or not ids:
            return []
        with self._lock:
            tid = file.tenant_id(tenant)
            if tid is None:
                return []
            by_id = file.rows_of_ids(tid, ids)
            rows = np.array(sorted(by_id.values()), dtype=np.int64)
            labels = file.label_view()
            rows, scores = self._scanner.scan(rows, tid, labels, file, query, k)
            names = {row: image_id for image_id, row in by_id.items()}
            return [(names[int(r)], float(s)) for r, s in zip(rows, scores, strict=True)]

    def _rows_of(self, tid: int) -> np.ndarray:
        assert self._file is not None
        cached = self._rows.get(tid)
        if cached is None or cached.size > 2 * self._file.tenant_count(tid) + 1024:
            cached = _RowList(np.flatnonzero(self._file.label_view() == tid))
            self._rows[tid] = cached
        return cached.rows

    def _tail(self, tid: int, start: int) -> np.ndarray:
        rows = self._rows_of(tid)
        return rows[np.searchsorted(rows, start) :]

    def vectors_of(self, tenant: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        file, _ = self._opened()
        with self._lock:
            tid = file.tenant_id(tenant)
            if tid is None or not ids:
                return {}
            rows = file.rows_of_ids(tid, ids)
            ordered = sorted(rows.items(), key=lambda item: item[1])
            read = file.read_vectors(np.array([r for _, r in ordered], dtype=np.int64))
            return {i: read[n] for n, (i, _) in enumerate(ordered)}

    # counts and iteration --------------------------------------------------------------------
    def ids(self) -> set[str]:
        with self._lock:
            return self._file.all_ids() if self._file is not None else set()

    def count(self, tenant: str | None = None) -> int:
        with self._lock:
            return self._file.count(tenant) if self._file is not None else 0

    def iter_vectors(
        self, batch_size: int = 1000
    ) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        file, _ = self._opened()
        last = -1
        while True:
            with self._lock:  # a batch at a time, so that writes may go on meanwhile
                rows, ids, tenants = file.rows_after(last, batch_size)
                if not rows:
                    return
                vectors = np.array(file.vector_view()[rows], dtype=np.float32)
            last = rows[-1]
            yield ids, tenants, vectors

    def reset(self, model_id: str, dim: int, spec: str = "") -> None:
        self._stop_builder()
        with self._lock:
            if self._file is None:  # a file of the old format: start afresh in the new one
                _remove(self.path)
                self._file = VectorFile(self.path)
            for ann in self._ann.values():
                ann.close()
            self._ann.clear()
            self._rows.clear()
            self._stale.clear()
            self._file.clear()
            self._file.drop_unreferenced_ann()
            self._file.write_model(model_id, dim, spec)
            self._file.map_vectors(dim)
            self._model_id, self._dim = model_id, dim
            self._closed = False

    def ping(self, timeout_s: float) -> None:
        del timeout_s  # in this process: loaded or not
        with self._lock:
            if self._closed or self._file is None or self._dim is None:
                raise Unavailable(f"the vector index {self.path} is not loaded")

    def close(self) -> None:
        self._stop_builder()
        with self._lock:
            for ann in self._ann.values():
                ann.close()
            self._ann.clear()
            self._scanner.close()
            if self._file is not None:
                if self._dim is not None:
                    self._file.mark_clean()
                self._file.close()
                self._file = None
            self._closed = True

    # approximate indexes ---------------------------------------------------------------------
    def wait_for_builds(self, timeout: float | None = None) -> bool:
        """Block until no graph needs building or merging (True), or the timeout passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._busy and self._next_build() is None:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if self._busy or (self._builder is not None and self._builder.is_alive()):
                    self._wake.wait(left)
                    continue
            self._run_builds()

    def _schedule(self) -> None:
        if self.ann_threshold <= 0:
            return
        if not self.background:
            self._run_builds()
            return
        with self._lock:
            if self._builder is None or not self._builder.is_alive():
                self._builder = threading.Thread(
                    target=self._builder_loop, name="vector-index-builder", daemon=True
                )
                self._builder.start()
            self._wake.notify_all()

    def _stop_builder(self) -> None:
        with self._lock:
            self._generation += 1
            self._closed = True
            self._wake.notify_all()
            builder = self._builder
        if builder is not None and builder is not threading.current_thread():
            builder.join()
        with self._lock:
            self._builder = None

    def _builder_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and self._next_build() is None:
                    self._wake.wait(5.0)
                if self._closed:
                    return
            self._run_builds()

    def _next_build(self) -> tuple[int, AnnIndex | None] | None:
        """A tenant whose graph is missing or out of date, and its current graph."""
        if self.ann_threshold <= 0 or self._file is None or self._dim is None:
            return None
        for tid, count in self._file.tenant_counts().items():
            ann = self._ann.get(tid)
            if ann is None:
                if count >= self.ann_threshold:
                    return tid, None
                continue
            tail = len(self._tail(tid, ann.rows))
            if tail >= max(self.ann_threshold, len(ann) // 50) or (
                self._stale.get(tid, 0) > len(ann) // 5
            ):
                return tid, ann
        return None

    def _run_builds(self) -> None:
        """Build or merge graphs until none is due (in the builder thread, or inline)."""
        while True:
            with self._lock:
                due = self._next_build()
                if due is None or self._busy:
                    return
                self._busy = True
                file, generation = self._file, self._generation
                assert file is not None and self._dim is not None
                tid, old = due
                labels, vectors, end = file.label_view(), file.vector_view(), file.rows
                rows = self._rows_of(tid)
                rows = rows[labels[rows] == tid]
                stale, stale_count = None, 0
                if old is not None:
                    rows = rows[rows >= old.rows]
                    stale_count = self._stale.get(tid, 0)
                name = f"t{tid}-{end}-{time.time_ns()}.usearch"
                dim = self._dim
            target = self.path / ANN_DIR / name
            started = time.monotonic()
            try:
                if old is not None:
                    stale = self._stale_rows(old, tid, labels)
                ann_index.build(
                    target,
                    dim,
                    rows,
                    vectors,
                    base=old.path if old else None,
                    stale=stale,
                    stop=lambda g=generation: self._generation != g,  # type: ignore[misc]
                )
            except ann_index.BuildStopped:
                with self._lock:
                    self._busy = False
                    self._wake.notify_all()
                return
            except BaseException:
                with self._lock:
                    self._busy = False
                    self._wake.notify_all()
                target.unlink(missing_ok=True)
                raise
            with self._lock:
                self._busy = False
                self._wake.notify_all()
                if generation != self._generation or self._file is not file:
                    target.unlink(missing_ok=True)
                    return
                file.set_ann(AnnEntry(tid, name, end))
                self._ann[tid] = AnnIndex(target, end, self.ann_ef)
                if old is not None:
                    old.close()
                    old.path.unlink(missing_ok=True)
                    self._stale[tid] = max(0, self._stale.get(tid, 0) - stale_count)
                else:
                    self._stale[tid] = 0
            log.info(
                "vector index: %s graph of tenant #%d with %d rows in %.1f s",
                "merged" if old is not None else "built",
                tid,
                len(rows),
                time.monotonic() - started,
            )

    @staticmethod
    def _stale_rows(old: AnnIndex, tid: int, labels: np.ndarray) -> np.ndarray:
        """Rows in a graph that no longer belong to its tenant."""
        keys = old.keys()
        keys = keys[keys < len(labels)]
        return keys[labels[keys] != tid]
