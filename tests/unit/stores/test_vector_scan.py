"""The exact scan of the embedded index (stores/vector_scan.py): every way rows lie in the
file scores the same as brute force."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.base import l2_normalize
from viewfinder.stores import vector_scan
from viewfinder.stores.exact_vectors import ExactVectorIndex
from viewfinder.stores.vector_file import VectorFile
from viewfinder.stores.vector_scan import best


def vecs(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)))


def brute(data: np.ndarray, ids: list[str], keep: list[int], q: np.ndarray, k: int) -> list[str]:
    return [ids[n] for n in sorted(keep, key=lambda n: -float(data[n] @ q))[:k]]


@pytest.mark.parametrize(
    ("mine", "delete", "read"),
    [
        (lambda n: n < 300, False, False),  # a run of rows: scored in place
        (lambda n: n % 3 != 0, True, False),  # a run with holes: in place, then picked
        (lambda n: n % 10 == 0, True, True),  # few, scattered: read with pread
        (lambda n: n % 4 == 0, True, False),  # neither: copied out of the mapping
    ],
    ids=["run", "holes", "scattered", "strided"],
)
def test_rows_as_they_lie_score_as_brute_force(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mine: Callable[[int], bool],
    delete: bool,
    read: bool,
) -> None:
    index = ExactVectorIndex(tmp_path / "v", ann_threshold=0)
    index.open("m", 8)
    data = vecs(600)
    ids = [f"i{n}" for n in range(600)]
    tenants = ["a" if mine(n) else "b" for n in range(600)]
    index.upsert(ids, tenants, data)
    gone = [n for n in range(0, 600, 7) if tenants[n] == "a"] if delete else []
    index.delete([ids[n] for n in gone])
    keep = [n for n in range(600) if tenants[n] == "a" and n not in gone]
    reads: list[int] = []
    real_read = VectorFile.read_vectors

    def counted(self: VectorFile, rows: np.ndarray) -> np.ndarray:
        reads.append(len(rows))
        return real_read(self, rows)

    monkeypatch.setattr(VectorFile, "read_vectors", counted)
    for seed in range(5):
        q = vecs(1, seed=100 + seed)[0]
        assert [i for i, _ in index.search("a", q, 10)] == brute(data, ids, keep, q, 10)
    assert bool(reads) == read
    index.close()


def test_a_scan_of_many_chunks_scores_them_on_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vector_scan, "SCAN_CHUNK", 64)  # 1,000 rows: 16 chunks
    index = ExactVectorIndex(tmp_path / "v", ann_threshold=0)
    index.open("m", 8)
    data = vecs(1000)
    ids = [f"i{n}" for n in range(1000)]
    tenants = ["a" if n % 3 else "b" for n in range(1000)]
    index.upsert(ids, tenants, data)
    assert not index._scanner.started
    for seed in range(5):
        q = vecs(1, seed=100 + seed)[0]
        for tenant in ("a", "b"):
            mine = [n for n in range(1000) if tenants[n] == tenant]
            assert [i for i, _ in index.search(tenant, q, 10)] == brute(data, ids, mine, q, 10)
    assert index._scanner.started  # the chunks went to the scan threads
    index.close()
    assert not index._scanner.started  # and the threads ended with the index


def test_best_merges_parts_best_first_older_rows_first_on_ties() -> None:
    rows, scores = best(
        3,
        (np.array([5, 9]), np.array([0.5, 0.9], np.float32)),
        (np.array([], np.int64), np.array([], np.float32)),
        (np.array([2, 7]), np.array([0.5, 0.1], np.float32)),
    )
    assert rows.tolist() == [9, 2, 5] and scores.tolist() == pytest.approx([0.9, 0.5, 0.5])
    empty_rows, _ = best(3)
    assert empty_rows.size == 0
