"""The VectorIndex contract, run against the exact index, Milvus Lite and a Milvus server.

The Milvus backends must give the exact index's results on the same data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.contract.services import need_module
from viewfinder.domain.ports import StoredModel, VectorIndex
from viewfinder.embedders.base import l2_normalize
from viewfinder.errors import ConfigurationError
from viewfinder.stores.factory import open_vectors, promote_vectors

from .conftest import VECTOR_BACKENDS


def vecs(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)))


def test_search_matches_brute_force(vector_index: VectorIndex) -> None:
    index = vector_index
    assert index.stored_model() is None
    index.open("m", 8)
    assert index.stored_model() == StoredModel("m", 8, "")
    assert (index.model_id, index.dim) == ("m", 8)
    data = vecs(100)
    ids = [f"i{n}" for n in range(100)]
    index.upsert(ids, ["t"] * 100, data)
    q = vecs(1, seed=9)[0]
    got = index.search("t", q, 5)
    expected = np.argsort(-(data @ q))[:5]
    assert [i for i, _ in got] == [ids[n] for n in expected]
    assert [s for _, s in got] == pytest.approx([float(data[n] @ q) for n in expected], abs=1e-5)
    assert index.search("other", q, 5) == []
    assert len(index.search("t", q, 1000)) == 100


def test_tenants_are_isolated(vector_index: VectorIndex) -> None:
    index = vector_index
    index.open("m", 8)
    data = vecs(30)
    tenants = ['we"ird\\ten ant ü', "plain", "plain2"]
    index.upsert([f"i{n}" for n in range(30)], [tenants[n % 3] for n in range(30)], data)
    for k, tenant in enumerate(tenants):
        got = index.search(tenant, data[k], 30)
        assert {i for i, _ in got} == {f"i{n}" for n in range(k, 30, 3)}
        assert got[0][0] == f"i{k}"
    assert index.search('plain" || tenant != "x', data[0], 30) == []  # no injection
    assert [index.count(t) for t in tenants] == [10, 10, 10] and index.count() == 30
    assert index.count('plain" || tenant != "x') == 0 and index.count("nobody") == 0
    index.upsert(["i1"], ["plain2"], data[1:2])  # moving an image to another tenant
    assert "i1" not in {i for i, _ in index.search("plain", data[1], 30)}
    assert index.search("plain2", data[1], 1)[0][0] == "i1"
    assert (index.count("plain"), index.count("plain2")) == (9, 11)


def test_upsert_replaces_and_delete(vector_index: VectorIndex) -> None:
    index = vector_index
    index.open("m", 8)
    data = vecs(40)
    index.upsert([f"i{n}" for n in range(40)], ["t"] * 40, data)
    index.upsert(["i0"], ["t"], data[1:2])  # same id again: still one vector
    assert index.count() == 40
    index.delete(["i1", "i5", "nope"])
    index.delete([])
    assert index.count() == 38
    assert index.ids() == {f"i{n}" for n in range(40)} - {"i1", "i5"}
    got = index.search("t", data[1], 40)
    assert {i for i, _ in got} == {f"i{n}" for n in range(40)} - {"i1", "i5"}
    assert got[0] == ("i0", pytest.approx(1.0, abs=1e-5))


def test_persisted_and_reopened(vector_url: str) -> None:
    index = open_vectors(vector_url)
    index.open("m", 8, "spec-1")
    data = vecs(20)
    index.upsert([f"i{n}" for n in range(20)], ["a"] * 10 + ["b"] * 10, data)
    index.delete(["i3"])
    index.close()
    again = open_vectors(vector_url)
    try:
        assert again.stored_model() == StoredModel("m", 8, "spec-1")
        again.open("m", 8)
        assert again.count() == 19
        assert again.search("b", data[15], 1)[0][0] == "i15"
        assert "i3" not in again.ids()
    finally:
        again.close()


def test_refuses_another_model(vector_url: str) -> None:
    index = open_vectors(vector_url)
    index.open("model-a", 8)
    index.upsert(["x"], ["t"], vecs(1))
    index.close()
    for model, dim in (("model-b", 8), ("model-a", 16)):
        other = open_vectors(vector_url)
        with pytest.raises(ConfigurationError, match="reindex"):
            other.open(model, dim)
        other.close()
    fresh = open_vectors(vector_url)
    fresh.reset("model-b", 16)
    assert fresh.count() == 0
    fresh.upsert(["y"], ["t"], vecs(1, dim=16))
    fresh.close()
    reopened = open_vectors(vector_url)
    reopened.open("model-b", 16)
    assert reopened.ids() == {"y"}
    reopened.close()


def test_rejects_wrong_shapes(vector_index: VectorIndex) -> None:
    vector_index.open("m", 8)
    with pytest.raises(Exception, match="dim"):
        vector_index.upsert(["a"], ["t"], vecs(1, dim=4))
    with pytest.raises(Exception, match="dim"):
        vector_index.upsert(["a", "b"], ["t"], vecs(2))


def test_iter_vectors_round_trip(vector_index: VectorIndex) -> None:
    vector_index.open("m", 8)
    data = vecs(57)
    ids = [f"i{n}" for n in range(57)]
    vector_index.upsert(ids, ["ab"[n % 2] for n in range(57)], data)
    seen: dict[str, tuple[str, np.ndarray]] = {}
    for batch_ids, tenants, vectors in vector_index.iter_vectors(batch_size=10):
        assert vectors.dtype == np.float32 and vectors.shape == (len(batch_ids), 8)
        for i, t, v in zip(batch_ids, tenants, vectors, strict=True):
            seen[i] = (t, v)
    assert set(seen) == set(ids)
    for n, i in enumerate(ids):
        assert seen[i][0] == "ab"[n % 2]
        np.testing.assert_allclose(seen[i][1], data[n], atol=1e-6)


def test_shadow_and_promotion(vector_url: str) -> None:
    active = open_vectors(vector_url)
    active.open("old", 8)
    active.upsert(["a", "b"], ["t", "t"], vecs(2))
    shadow = open_vectors(vector_url, shadow=True)
    assert shadow.stored_model() is None
    shadow.open("new", 16, "new-spec")
    shadow.upsert(["a"], ["t"], vecs(1, dim=16))
    assert active.count() == 2 and shadow.count() == 1  # apart until promotion
    active.close()
    shadow.close()
    promote_vectors(vector_url)
    promoted = open_vectors(vector_url)
    try:
        assert promoted.stored_model() == StoredModel("new", 16, "new-spec")
        promoted.open("new", 16)
        assert promoted.ids() == {"a"}
    finally:
        promoted.close()
    # the next switch starts from an empty shadow, whatever the last one left behind
    again = open_vectors(vector_url, shadow=True)
    try:
        assert again.stored_model() is None
        again.open("newer", 4)
        assert again.count() == 0
    finally:
        again.close()


@pytest.mark.parametrize("backend", [b for b in VECTOR_BACKENDS if b != "exact"])
def test_same_results_as_the_exact_index(
    backend: str, vector_url_factory: Callable[[str], str]
) -> None:
    """On the same data, every backend ranks and scores like the exact index."""
    rng = np.random.default_rng(7)
    n, dim = 600, 32
    data = vecs(n, dim, seed=3)
    ids = [f"img-{k:04}" for k in range(n)]
    tenants = [str(rng.choice(["acme", "globex", "initech"])) for _ in range(n)]
    indexes = [open_vectors(vector_url_factory("exact")), open_vectors(vector_url_factory(backend))]
    try:
        for index in indexes:
            index.open("m", dim)
            for start in range(0, n, 128):
                end = start + 128
                index.upsert(ids[start:end], tenants[start:end], data[start:end])
            index.delete(ids[::17])
        exact, other = indexes
        assert other.count() == exact.count()
        assert other.ids() == exact.ids()
        for q in vecs(25, dim, seed=11):
            for tenant in ("acme", "globex", "initech", "nobody"):
                want = exact.search(tenant, q, 10)
                got = other.search(tenant, q, 10)
                assert [i for i, _ in got] == [i for i, _ in want]
                assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    finally:
        for index in indexes:
            index.close()


def test_milvus_urls() -> None:
    need_module("pymilvus", "milvus")
    from viewfinder.stores.milvus_target import parse_url

    t = parse_url("milvus://u:p%40ss@db.example:19531/photos?db=prod", token=None)
    assert (t.uri, t.collection, t.token, t.db_name, t.lite) == (
        "http://db.example:19531", "photos", "u:p@ss", "prod", False
    )  # fmt: skip
    t = parse_url("milvus+https://cloud.example/photos", token="api-key")
    assert (t.uri, t.token) == ("https://cloud.example:19530", "api-key")
    t = parse_url("milvus-lite:///var/lib/vf/vectors.db?collection=c1")
    assert (t.uri, t.collection, t.lite) == ("/var/lib/vf/vectors.db", "c1", True)
    for bad in ("milvus-lite:///var/lib/vf/vectors", "milvus:///x", "milvus://h/bad-name"):
        with pytest.raises(ConfigurationError):
            parse_url(bad)


@pytest.mark.parametrize("backend", [b for b in VECTOR_BACKENDS if b != "exact"])
def test_milvus_collections_get_hnsw_and_a_tenant_partition_key(
    backend: str, vector_url_factory: Callable[[str], str]
) -> None:
    """By default a new collection is indexed by HNSW and partitioned by tenant; the setting
    picks another index type."""
    from viewfinder.config import Settings

    url = vector_url_factory(backend)
    for setting, want in ((None, "HNSW"), ("FLAT", "FLAT")):
        settings = Settings() if setting is None else Settings(milvus_index_type=setting)
        index = open_vectors(url, settings=settings)
        try:
            index.reset("m", 8) if setting else index.open("m", 8)
            client, name = index._client, index.name  # type: ignore[attr-defined]
            assert client.describe_index(name, "vector")["index_type"] == want
            fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
            assert fields["tenant"].get("is_partition_key") is True
            index.upsert(["a", "b"], ["t", "u"], vecs(2))
            assert [i for i, _ in index.search("t", vecs(2)[0], 5)] == ["a"]
        finally:
            index.close()
