"""Approximate nearest-neighbour search for a big tenant: an HNSW graph over int8 vectors.

Built with usearch (HNSW, 8-bit quantised vectors: a quarter of float32), saved as one
immutable file and memory-mapped (`view`) to search, so opening it reads nothing and several
processes share its pages. Keys are rows of the vector file; callers re-score the candidates
exactly from the float32 rows, which is what keeps recall@10 at 0.98 and above.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError

CONNECTIVITY = 16  # graph degree: recall vs. memory (~128 bytes a vector at 16)
EXPANSION_ADD = 48  # candidates kept while inserting: build time vs. graph quality
_ADD_BATCH = 4096  # rows added between checks for a stop


class BuildStopped(Exception):
    """A build given up because its index is closing or was reset."""


def _usearch() -> Any:
    # onnxruntime must be loaded before usearch: the other way round its import crashes the
    # process (usearch 2.26, onnxruntime 1.2x; both are dependencies of Viewfinder)
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401
    try:
        from usearch.index import Index
    except ImportError as exc:  # a declared dependency: only a broken install lacks it
        raise ConfigurationError(
            "the embedded vector index needs the usearch package: pip install usearch"
        ) from exc
    return Index


class AnnIndex:
    """An HNSW graph of one tenant's rows, read from a memory-mapped file."""

    def __init__(self, path: Path, rows: int, expansion_search: int) -> None:
        self.path = path
        self.rows = rows  # every row below this was considered when the file was built
        self._index = _usearch().restore(str(path), view=True)
        if self._index is None:
            raise ConfigurationError(f"approximate index {path} is unreadable")
        self._index.expansion_search = expansion_search

    def __len__(self) -> int:
        return len(self._index)

    def search(self, query: np.ndarray, n: int) -> np.ndarray:
        """The rows of (about) the n nearest vectors, best first."""
        found = self._index.search(query, n, threads=1)
        return np.asarray(found.keys, dtype=np.int64)

    def keys(self) -> np.ndarray:
        """Every row in the graph."""
        return np.asarray(self._index.keys, dtype=np.int64)

    def close(self) -> None:
        """Drop the mapping."""
        self._index = None


def build(
    path: Path,
    dim: int,
    rows: np.ndarray,
    vectors: np.ndarray,
    *,
    base: Path | None = None,
    stale: np.ndarray | None = None,
    threads: int = 0,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Write an index file of `rows` (whose vectors are `vectors[rows]`).

    With `base`, start from that file's graph: remove the `stale` rows, then add `rows`.
    The file is synced before this returns, so that it may be committed. `stop` is asked
    between batches; when it says so, BuildStopped is raised and no file is written.
    """
    index_type = _usearch()
    if base is not None:
        index = index_type.restore(str(base), view=False)
        if stale is not None and len(stale):
            index.remove(stale.astype(np.uint64))
    else:
        index = index_type(
            ndim=dim,
            metric="cos",
            dtype="i8",
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
        )
    for start in range(0, len(rows), _ADD_BATCH):
        if stop():
            raise BuildStopped
        chunk = rows[start : start + _ADD_BATCH]
        batch = np.ascontiguousarray(vectors[chunk], dtype=np.float32)
        index.add(chunk.astype(np.uint64), batch, threads=threads)
    tmp = path.with_name(path.name + ".tmp")
    index.save(str(tmp))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
