"""Exact scoring of a tenant's rows in the vector file: the scan of the embedded index.

How rows are read depends on how they lie in the file. A run of rows, or one with few holes
(deleted rows, or rows of tenants interleaved with it), is scored in place through the
mapping. Scattered rows (a small tenant among many) are read with pread when they are few:
the kernel maps a whole page-cache folio (up to megabytes) for each row touched through the
mapping, which would leave most of the file resident in this process. A scan of more than one
chunk scores its chunks on every core (numpy lets go of the GIL), since a process that runs a
model keeps numpy's BLAS to one thread (embedders/blas.py).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .vector_file import VectorFile

SCAN_CHUNK = 65536  # rows scored at once
READ_ROWS = 4096  # scattered rows up to this many are read with pread, not mapped (~10 ms)
SPARSE = 8  # rows are scattered when they span this many times their number
# Rows spanning at most twice their number are scored in place, holes and all: a product over
# the span costs less than copying the rows out (fancy indexing) first.
DENSE = 2


class RowScanner:
    """Scores rows of a vector file against a query; its threads start on the first scan of
    more than one chunk and end with `close`."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or os.cpu_count() or 1
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def scan(
        self,
        rows: np.ndarray,
        tid: int,
        labels: np.ndarray,
        file: VectorFile,
        query: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best k of `rows` (ascending) still labelled `tid`, scored exactly, best first.
        The caller keeps the file from changing meanwhile."""
        vectors = file.vector_view()

        def score(start: int) -> tuple[np.ndarray, np.ndarray]:
            chunk = rows[start : start + SCAN_CHUNK]
            chunk = chunk[labels[chunk] == tid]
            if not len(chunk):
                return chunk, np.zeros(0, np.float32)
            first, last = int(chunk[0]), int(chunk[-1])
            span = last - first + 1
            if span == len(chunk):  # a run of rows: score the mapping in place
                scores = vectors[first : last + 1] @ query
            elif span <= DENSE * len(chunk):  # a run with holes
                scores = (vectors[first : last + 1] @ query)[chunk - first]
            elif len(chunk) <= READ_ROWS and span > SPARSE * len(chunk):
                scores = file.read_vectors(chunk) @ query
            else:
                scores = vectors[chunk] @ query
            if len(chunk) > k:
                top = np.argpartition(-scores, k - 1)[:k]
                chunk, scores = chunk[top], scores[top]
            return chunk, scores

        starts = range(0, len(rows), SCAN_CHUNK)
        if len(starts) > 1 and self.threads > 1:
            return best(k, *self._threads().map(score, starts))
        return best(k, *(score(start) for start in starts))

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vf-scan")
            return self._pool

    @property
    def started(self) -> bool:
        """Whether its threads are running."""
        return self._pool is not None

    def close(self) -> None:
        """End its threads (a later scan starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def best(k: int, *parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The best k of some (rows, scores) pairs, best first; ties: the older row first."""
    parts = tuple(p for p in parts if len(p[0]))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    order = np.lexsort((rows, -scores))[:k]
    return rows[order], scores[order]
