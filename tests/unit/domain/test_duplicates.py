"""domain/duplicates.py: links, groups, and the k-NN driven searches over real stores."""

from __future__ import annotations

import numpy as np

from viewfinder.domain.duplicates import (
    DuplicateLimits,
    duplicate_groups,
    duplicates_of,
    exact_copy,
    group_pairs,
    link,
)
from viewfinder.domain.records import ImageRecord, IndexingStatus
from viewfinder.domain.service import ImageService

LIMITS = DuplicateLimits(similarity=0.85, max_hamming=10, similarity_without_hash=0.96)


def record(image_id: str, phash: int | None, ts: float = 0.0, sha: str = "x") -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        tenant="acme",
        status=IndexingStatus.INDEXED,
        upload_timestamp=ts,
        sha256=sha,
        phash=phash,
    )


def test_link_needs_the_hash_to_agree_or_a_higher_cosine_without_one() -> None:
    a, near, far = record("a", 0), record("b", 0b1111), record("c", (1 << 20) - 1)
    assert link(a, near, 0.9, LIMITS) == 4
    assert link(a, far, 0.99, LIMITS) is None  # hashes 20 bits apart: another picture
    assert link(a, near, 0.8, LIMITS) is None  # hashes agree, vectors do not
    unhashed = record("d", None)
    assert link(a, unhashed, 0.9, LIMITS) is None
    assert link(a, unhashed, 0.97, LIMITS) == -1


def test_group_pairs_joins_chains() -> None:
    groups = group_pairs([("a", "b"), ("c", "d"), ("b", "e"), ("a", "e")])
    assert sorted(sorted(g) for g in groups) == [["a", "b", "e"], ["c", "d"]]
    assert group_pairs([]) == []


def _vec(*xs: float) -> np.ndarray:
    v = np.zeros(32, np.float32)
    v[: len(xs)] = xs
    return v / np.linalg.norm(v)


def test_groups_from_the_index_and_the_metadata(service: ImageService) -> None:
    ids = ["orig", "copy", "lookalike", "other", "unhashed"]
    records = [
        record("orig", 0, ts=1),
        record("copy", 0b111, ts=2),
        record("lookalike", (1 << 30) - 1, ts=3),  # same vector, another picture
        record("other", 0, ts=4),
        record("unhashed", None, ts=5),
    ]
    service.metadata.insert_images(records)
    vectors = np.stack([_vec(1, 0), _vec(1, 0.05), _vec(1, 0.01), _vec(0, 1), _vec(1, 0.4)])
    service.vectors.upsert(ids, ["acme"] * len(ids), vectors)
    found = duplicates_of(service.metadata, service.vectors, "acme", records[0], vectors[0], LIMITS)
    assert [(m.record.image_id, m.hamming) for m in found] == [("copy", 3)]
    groups = duplicate_groups(service.metadata, service.vectors, "acme", LIMITS)
    assert [[r.image_id for r in g.records] for g in groups] == [["orig", "copy"]]
    assert 0.99 < groups[0].similarity <= 1.0
    # bounded: from the newest 4 ("orig" left out), the k-NN of "copy" still reaches "orig"
    newest = DuplicateLimits(**{**LIMITS.__dict__, "max_images": 4})
    groups = duplicate_groups(service.metadata, service.vectors, "acme", newest)
    assert [[r.image_id for r in g.records] for g in groups] == [["orig", "copy"]]
    newest = DuplicateLimits(**{**LIMITS.__dict__, "max_images": 3})
    assert duplicate_groups(service.metadata, service.vectors, "acme", newest) == []
    assert duplicate_groups(service.metadata, service.vectors, "globex", LIMITS) == []


def test_exact_copy_prefers_this_upload_then_the_store(service: ImageService) -> None:
    stored = record("stored", None, sha="s1")
    service.metadata.insert_images([stored])
    assert exact_copy(service.metadata, "acme", "s1") == stored
    assert exact_copy(service.metadata, "globex", "s1") is None
    pending = record("pending", None, sha="s2")
    assert exact_copy(service.metadata, "acme", "s2", [pending]) == pending
    assert exact_copy(service.metadata, "acme", "s3", [pending]) is None
