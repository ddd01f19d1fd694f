"""A Milvus server restart: the collection comes back released, and the same process's
index reloads it on demand (searches, counts and writes recover without a process restart)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.contract.services import MilvusServer, started
from viewfinder.errors import Unavailable
from viewfinder.stores.factory import open_vectors


@pytest.fixture
def own_milvus(tmp_path: Path) -> Iterator[MilvusServer]:
    """A Milvus server of this test alone: it is restarted."""
    yield from started(MilvusServer(tmp_path))


def test_searches_recover_after_a_milvus_restart(own_milvus: MilvusServer) -> None:
    index = open_vectors(own_milvus.url())
    reader = open_vectors(own_milvus.url(index.name.rsplit("_g", 1)[0]))  # another process
    try:
        index.open("m", 4, "")
        reader.open("m", 4, "")
        vectors = np.eye(4, dtype=np.float32)
        index.upsert(["a", "b", "c"], ["t", "t", "u"], vectors[:3])
        assert [i for i, _ in index.search("t", vectors[0], 5)] == ["a", "b"]

        own_milvus.stop()  # same port, same data folder
        own_milvus.start()

        reader.ping(10)  # a readiness probe loads it too: no search needed first
        assert [i for i, _ in reader.search("t", vectors[1], 1)] == ["b"]
        assert [i for i, _ in index.search("t", vectors[0], 1)] == ["a"]
        index.upsert(["d"], ["t"], vectors[3:4])
        assert index.count("t") == 3 and reader.count() == 4
        assert index.ids() == {"a", "b", "c", "d"}
        index.delete(["a"])
        assert "a" not in {i for i, _ in reader.search("t", vectors[0], 5)}
    finally:
        index.close()
        reader.close()


def test_searches_fail_fast_while_milvus_is_down_then_recover(own_milvus: MilvusServer) -> None:
    index = open_vectors(own_milvus.url())
    try:
        index.open("m", 4, "")
        vectors = np.eye(4, dtype=np.float32)
        index.upsert(["a", "b"], ["t", "t"], vectors[:2])
        own_milvus.stop()
        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            index.search("t", vectors[0], 1)
        assert time.monotonic() - t0 < 5
        own_milvus.start()
        # gRPC may wait out its reconnect backoff first: a few seconds at most, no restart
        deadline = time.monotonic() + 15
        while True:
            try:
                assert [i for i, _ in index.search("t", vectors[0], 1)] == ["a"]
                break
            except Unavailable:
                assert time.monotonic() < deadline, "searches did not recover"
                time.sleep(0.2)
    finally:
        index.close()
