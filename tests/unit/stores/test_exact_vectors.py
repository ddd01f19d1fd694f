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
