"""A `vectors.db` of the SQLite format is moved into the memory-mapped format on first open."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from viewfinder.domain.ports import StoredModel
from viewfinder.embedders.base import l2_normalize
from viewfinder.stores import vector_migration
from viewfinder.stores.exact_vectors import ExactVectorIndex, shadow_path
from viewfinder.stores.vector_file import is_vector_dir


def legacy_file(path: Path, n: int, dim: int = 8) -> tuple[list[str], list[str], np.ndarray]:
    """Write an index file exactly as the SQLite-format index did."""
    data = l2_normalize(np.random.default_rng(0).standard_normal((n, dim))).astype(np.float32)
    ids, tenants = [f"i{k}" for k in range(n)], [f"t{k % 3}" for k in range(n)]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute(
        "CREATE TABLE vectors "
        "(image_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, vector BLOB NOT NULL)"
    )
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("model_id", "m"), ("dim", str(dim)), ("spec", "s1")]
    )
    conn.executemany(
        "INSERT INTO vectors VALUES (?, ?, ?)",
        [(i, t, v.tobytes()) for i, t, v in zip(ids, tenants, data, strict=True)],
    )
    conn.commit()
    conn.close()
    return ids, tenants, data


def test_migrates_on_first_open_with_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vectors.db"
    ids, tenants, data = legacy_file(path, 250)
    monkeypatch.setattr(vector_migration, "_BATCH", 100)
    index = ExactVectorIndex(path)
    assert index.stored_model() == StoredModel("m", 8, "s1")  # read without migrating
    assert not is_vector_dir(path)
    with caplog.at_level(logging.INFO, logger="viewfinder.stores.vector_migration"):
        index.open("m", 8)
    progress = [r.getMessage() for r in caplog.records if "/250 vectors" in r.getMessage()]
    assert progress == [f"migrating the vector index: {n}/250 vectors" for n in (100, 200, 250)]
    assert is_vector_dir(path)
    assert not list(tmp_path.glob("vectors.db?*"))  # the old file and its WAL are gone
    assert index.count() == 250 and index.count("t1") == 83
    seen = {
        i: (t, v) for b, ts, vs in index.iter_vectors(64) for i, t, v in zip(b, ts, vs, strict=True)
    }
    assert set(seen) == set(ids)
    for k in (0, 77, 249):
        assert seen[ids[k]][0] == tenants[k]
        np.testing.assert_array_equal(seen[ids[k]][1], data[k])
    assert index.search("t2", data[5], 1)[0][0] == "i5"
    index.close()


def test_a_crash_midway_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "vectors.db"
    legacy_file(path, 30)
    partial = tmp_path / "vectors.db.migrating"  # a build the crash cut short
    partial.mkdir()
    (partial / "index.sqlite").write_bytes(b"")
    index = ExactVectorIndex(path)
    assert not partial.exists()
    index.open("m", 8)
    assert index.count() == 30
    index.close()
    # a complete build whose rename the crash cut short is finished, not redone
    done = tmp_path / "done"
    path.rename(done)
    done.rename(tmp_path / "vectors.db.migrating")
    again = ExactVectorIndex(path)
    again.open("m", 8)
    assert again.count() == 30
    again.close()


def test_promotion_cut_short_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "vectors.db"
    active = ExactVectorIndex(path)
    active.open("old", 8)
    active.close()
    shadow = ExactVectorIndex(shadow_path(path))
    shadow.open("new", 4)
    shadow.upsert(["a"], ["t"], np.ones((1, 4), np.float32) / 2)
    shadow.close()
    path.rename(path.with_name("vectors.db.old"))  # promote() killed after its first rename
    index = ExactVectorIndex(path)
    assert index.stored_model() == StoredModel("new", 4, "")
    assert not path.with_name("vectors.db.old").exists() and not shadow_path(path).exists()
    index.close()
