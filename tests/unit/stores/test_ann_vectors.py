"""The embedded index past its switch-over size: HNSW graphs answer like the exact scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.base import l2_normalize
from viewfinder.stores.exact_vectors import ExactVectorIndex


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around a few dozen centres, like image embeddings (so neighbours are close)."""
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.standard_normal((40, dim)))
    return l2_normalize(centres[rng.integers(0, 40, n)] + 0.08 * rng.standard_normal((n, dim)))


def recall(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> float:
    return len({i for i, _ in got} & {i for i, _ in want}) / max(1, len(want))


@pytest.mark.parametrize("background", [False, True])
def test_graph_answers_the_exact_top_k(tmp_path: Path, background: bool) -> None:
    n, dim = 3000, 48
    data = clustered(n, dim, seed=1)
    ids = [f"img-{k}" for k in range(n)]
    tenants = ["big" if k % 5 else "small" for k in range(n)]  # 2400 and 600 vectors
    approx = ExactVectorIndex(tmp_path / "a", ann_threshold=1000, background=background)
    exact = ExactVectorIndex(tmp_path / "e", ann_threshold=0)
    for index in (approx, exact):
        index.open("m", dim)
        for start in range(0, n, 250):
            index.upsert(
                ids[start : start + 250], tenants[start : start + 250], data[start : start + 250]
            )
        index.delete(ids[::11])
        index.upsert(ids[1:40:3], tenants[1:40:3], data[2:41:3])  # replaced vectors
    assert approx.wait_for_builds(60)
    assert set(approx._ann) == {approx._file.tenant_id("big")}  # the small tenant is scanned
    assert exact._ann == {}
    assert approx.count("big") == exact.count("big") and approx.ids() == exact.ids()
    queries = clustered(60, dim, seed=2)
    total = 0.0
    for q in queries:
        for tenant in ("big", "small"):
            got, want = approx.search(tenant, q, 10), exact.search(tenant, q, 10)
            total += recall(got, want)
            assert {i for i, _ in got} <= exact.ids()  # never a deleted or foreign vector
            scores = dict(want)
            for image_id, score in got:  # re-scored exactly: the same score as the scan
                if image_id in scores:
                    assert score == pytest.approx(scores[image_id], abs=1e-5)
    assert total / (2 * len(queries)) >= 0.98
    # a replaced vector is found under its new value only: img-1 now holds img-2's vector
    got = approx.search("big", data[2], 2)
    assert {i for i, _ in got} == {"img-1", "img-2"}
    assert [s for _, s in got] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert "img-1" not in {i for i, _ in approx.search("big", data[1], 3)}
    approx.close()
    exact.close()


def test_graph_reopens_mapped_and_merges_new_rows(tmp_path: Path) -> None:
    dim = 32
    data = clustered(2600, dim, seed=3)
    ids = [f"i{k}" for k in range(2600)]
    index = ExactVectorIndex(tmp_path / "v", ann_threshold=1000, background=False)
    index.open("m", dim)
    index.upsert(ids[:1200], ["t"] * 1200, data[:1200])
    assert len(index._ann) == 1
    index.close()
    again = ExactVectorIndex(tmp_path / "v", ann_threshold=1000, background=False)
    again.open("m", dim)
    assert len(again._ann) == 1  # the saved graph, mapped: not rebuilt
    (first,) = again._ann.values()
    again.upsert(ids[1200:1700], ["t"] * 500, data[1200:1700])  # a tail, searched exactly
    assert again._ann[again._file.tenant_id("t")] is first
    assert again.search("t", data[1650], 1)[0][0] == "i1650"
    again.upsert(ids[1700:], ["t"] * 900, data[1700:])  # tail past the threshold: merged
    (merged,) = again._ann.values()
    assert merged is not first and merged.rows == 2600
    assert not first.path.exists()
    assert [p.name for p in (tmp_path / "v" / "ann").iterdir()] == [merged.path.name]
    for k in (5, 1300, 2599):
        assert again.search("t", data[k], 1)[0][0] == f"i{k}"
    again.close()


def test_many_small_tenants_are_scanned_not_graphed(tmp_path: Path) -> None:
    index = ExactVectorIndex(tmp_path / "v", ann_threshold=100, background=False)
    index.open("m", 16)
    data = clustered(2000, 16, seed=4)
    index.upsert([f"i{k}" for k in range(2000)], [f"t{k % 40}" for k in range(2000)], data)
    assert index._ann == {}
    assert index.count("t7") == 50
    got = index.search("t7", data[7], 50)
    assert {i for i, _ in got} == {f"i{k}" for k in range(7, 2000, 40)}
    index.close()


def test_a_graph_loads_beside_the_model_runtime(tmp_path: Path) -> None:
    """A server opens the vector index (usearch) before it loads the model (onnxruntime);
    in that order the second import used to crash the process."""
    import subprocess
    import sys

    code = (
        "from viewfinder.stores.ann_index import _usearch\n"
        "_usearch()\n"
        "import onnxruntime\n"
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr


def test_a_clean_close_is_remembered_until_the_next_open(tmp_path: Path) -> None:
    first = ExactVectorIndex(tmp_path / "v")
    first.open("m", 4)
    assert not first.closed_cleanly()  # new: nothing to vouch for it
    first.close()
    second = ExactVectorIndex(tmp_path / "v")
    second.open("m", 4)
    assert second.closed_cleanly()
    # a process that dies with the index open never marks it: the next one is told
    third = ExactVectorIndex(tmp_path / "v")
    third.open("m", 4)
    assert not third.closed_cleanly()
    second.close()
    third.close()


def test_closing_stops_a_build_midway(tmp_path: Path) -> None:
    from viewfinder.stores import ann_index

    data = clustered(9000, 16, seed=6)
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 1  # after the first batch

    with pytest.raises(ann_index.BuildStopped):
        ann_index.build(tmp_path / "g.usearch", 16, np.arange(9000), data, stop=stop)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    index = ExactVectorIndex(tmp_path / "v", ann_threshold=1000)
    index.open("m", 16)
    index.upsert([f"i{k}" for k in range(9000)], ["t"] * 9000, data)
    index.close()  # returns without waiting for the whole graph
    again = ExactVectorIndex(tmp_path / "v", ann_threshold=1000)
    again.open("m", 16)
    assert again.wait_for_builds(60) and len(again._ann) == 1
    assert again.search("t", data[123], 1)[0][0] == "i123"
    again.close()


def test_graph_candidates_are_read_not_mapped(tmp_path: Path) -> None:
    """The graph's candidates are re-scored from rows read with pread (page cache, not the
    process's resident memory); rows added after the build are still scanned."""
    n, dim = 1500, 32
    data = clustered(n + 50, dim, seed=4)
    index = ExactVectorIndex(tmp_path / "v", ann_threshold=1000, background=False)
    index.open("m", dim)
    index.upsert([f"img-{k}" for k in range(n)], ["t"] * n, data[:n])
    assert index.wait_for_builds(60) and index._ann
    file = index._file
    rows = np.array([0, 7, 8, 9, 1499], dtype=np.int64)
    np.testing.assert_array_equal(file.read_vectors(rows), file.vector_view()[rows])
    read: list[int] = []
    original = file.read_vectors

    def spy(rows: np.ndarray) -> np.ndarray:
        read.append(len(rows))
        return original(rows)

    file.read_vectors = spy  # type: ignore[method-assign]
    index.upsert([f"new-{k}" for k in range(50)], ["t"] * 50, data[n:])  # after the build
    got = index.search("t", data[n + 3], 5)
    assert read and read[0] >= 5  # the graph's candidates went through pread
    assert got[0][0] == "new-3" and got[0][1] == pytest.approx(1.0, abs=1e-5)  # tail scanned
    got = index.search("t", data[42], 1)
    assert got == [("img-42", pytest.approx(1.0, abs=1e-5))]
    index.close()
