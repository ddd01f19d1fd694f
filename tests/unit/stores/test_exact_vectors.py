"""The exact vector index: search, tenants, persistence and model checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.base import l2_normalize
from viewfinder.errors import ConfigurationError
from viewfinder.stores.exact_vectors import ExactVectorIndex


def vecs(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)))


def test_search_matches_brute_force(tmp_path: Path) -> None:
    index = ExactVectorIndex(tmp_path / "v.db")
    index.open("m", 8)
    data = vecs(100)
    ids = [f"i{n}" for n in range(100)]
    index.upsert(ids, ["t"] * 100, data)
    q = vecs(1, seed=9)[0]
    got = index.search("t", q, 5)
    expected = np.argsort(-(data @ q))[:5]
    assert [i for i, _ in got] == [ids[n] for n in expected]
    assert got[0][1] == pytest.approx(float(data[expected[0]] @ q), abs=1e-6)
    assert index.search("other", q, 5) == []


def test_upsert_replaces_and_delete_swaps(tmp_path: Path) -> None:
    index = ExactVectorIndex(tmp_path / "v.db")
    index.open("m", 8)
    data = vecs(40)
    index.upsert([f"i{n}" for n in range(40)], ["t"] * 40, data)
    index.upsert(["i0"], ["t"], data[1:2])  # same id again: still one vector
    assert index.count() == 40
    index.delete(["i1", "i5", "nope"])
    assert index.count() == 38
    got = index.search("t", data[1], 40)
    assert {i for i, _ in got} == {f"i{n}" for n in range(40)} - {"i1", "i5"}
    assert got[0] == ("i0", pytest.approx(1.0, abs=1e-5))


def test_persisted_and_reloaded(tmp_path: Path) -> None:
    index = ExactVectorIndex(tmp_path / "v.db")
    index.open("m", 8)
    data = vecs(20)
    index.upsert([f"i{n}" for n in range(20)], ["a"] * 10 + ["b"] * 10, data)
    index.delete(["i3"])
    index.close()
    again = ExactVectorIndex(tmp_path / "v.db")
    again.open("m", 8)
    assert again.count() == 19
    assert again.search("b", data[15], 1)[0][0] == "i15"
    assert "i3" not in again.ids()


def test_refuses_another_model(tmp_path: Path) -> None:
    index = ExactVectorIndex(tmp_path / "v.db")
    index.open("model-a", 8)
    index.close()
    for model, dim in (("model-b", 8), ("model-a", 16)):
        with pytest.raises(ConfigurationError, match="reindex"):
            ExactVectorIndex(tmp_path / "v.db").open(model, dim)
    fresh = ExactVectorIndex(tmp_path / "v.db")
    fresh.reset("model-b", 16)
    fresh.close()
    ExactVectorIndex(tmp_path / "v.db").open("model-b", 16)


def test_rejects_wrong_shapes(tmp_path: Path) -> None:
    index = ExactVectorIndex(tmp_path / "v.db")
    index.open("m", 8)
    with pytest.raises(Exception, match="dim"):
        index.upsert(["a"], ["t"], vecs(1, dim=4))


def test_a_scattered_small_tenant_is_read_not_mapped(tmp_path: Path) -> None:
    """Rows of a small tenant among many interleave with the others': they are read with
    pread (a page-cache folio mapped per row would keep most of the file resident) and score
    exactly as the brute force does; a tenant whose rows form a run is scored in the mapping."""
    index = ExactVectorIndex(tmp_path / "v.db")
    index.open("m", 8)
    data = vecs(400, seed=3)
    owners = [f"t{n % 10}" for n in range(390)] + ["run"] * 10  # t3's rows: 3, 13, 23, ...
    ids = [f"i{n}" for n in range(400)]
    index.upsert(ids, owners, data)
    file = index._file
    read: list[int] = []
    original = file.read_vectors

    def spy(rows: np.ndarray) -> np.ndarray:
        read.append(len(rows))
        return original(rows)

    file.read_vectors = spy  # type: ignore[method-assign]
    q = vecs(1, seed=8)[0]
    mine = [n for n in range(390) if n % 10 == 3]
    want = sorted(mine, key=lambda n: -float(data[n] @ q))[:5]
    got = index.search("t3", q, 5)
    assert [i for i, _ in got] == [ids[n] for n in want]
    assert [s for _, s in got] == pytest.approx([float(data[n] @ q) for n in want], abs=1e-6)
    assert read == [len(mine)]
    read.clear()
    assert [i for i, _ in index.search("run", q, 3)] == [
        ids[n] for n in sorted(range(390, 400), key=lambda n: -float(data[n] @ q))[:3]
    ]
    assert read == []  # a run: the mapping
    got_vectors = index.vectors_of("t3", ["i13", "i3"])
    np.testing.assert_allclose(got_vectors["i13"], data[13], atol=1e-6)
    np.testing.assert_allclose(got_vectors["i3"], data[3], atol=1e-6)
    assert index.vectors_of("t3", ["not-stored"]) == {}  # no row to read
    index.close()
