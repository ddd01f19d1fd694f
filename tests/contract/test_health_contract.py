"""What readiness and graceful shutdown ask of every backend: `ping`, `release_jobs`,
`oldest_queued_at`."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.domain.ports import BlobStore, MetadataStore, VectorIndex
from viewfinder.domain.records import IndexingStatus
from viewfinder.errors import Unavailable

from .test_metadata_contract import rec


def test_metadata_ping(metadata_store: MetadataStore) -> None:
    metadata_store.ping(2.0)  # answers, raises nothing


def test_release_jobs_gives_back_only_our_own_lease(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a"), rec("b"), rec("c")])
    claimed = store.claim_jobs(2, lease_s=60, now=100)
    assert [j.image_id for j in claimed] == ["a", "b"]
    # "b"'s lease ran out and another worker took it (a later lease): it is not ours any more
    assert [j.image_id for j in store.claim_jobs(3, lease_s=60, now=170)] == ["a", "b", "c"]
    assert store.release_jobs(["a", "b"], lease_until=160) == 0
    assert store.claim_jobs(3, lease_s=60, now=171) == []
    # the lease we hold is given back: claimable at once, no attempt counted
    assert store.release_jobs(["a", "b"], lease_until=230) == 2
    again = store.claim_jobs(3, lease_s=60, now=172)
    assert [(j.image_id, j.attempts) for j in again] == [("a", 0), ("b", 0)]
    assert store.release_jobs([], lease_until=232) == 0


def test_oldest_queued_at(metadata_store: MetadataStore) -> None:
    store = metadata_store
    assert store.oldest_queued_at() is None
    store.insert_images([rec("a", ts=10.0)])
    store.insert_images([rec("b", ts=20.0), rec("s", status=IndexingStatus.STORED, ts=5.0)])
    first = store.oldest_queued_at()
    assert first is not None
    store.complete_jobs(["a"])
    later = store.oldest_queued_at()
    assert later is not None and later >= first
    store.complete_jobs(["b"])
    assert store.oldest_queued_at() is None


def test_blob_ping(blob_store: BlobStore) -> None:
    blob_store.ping(2.0)


def test_vector_ping_needs_an_open_index(vector_index: VectorIndex) -> None:
    fresh = vector_index
    with pytest.raises(Unavailable):
        fresh.ping(2.0)  # not opened: searches can't be answered yet
    fresh.open("m", 4)
    fresh.upsert(["x"], ["t"], np.eye(4, dtype=np.float32)[:1])
    fresh.ping(2.0)
