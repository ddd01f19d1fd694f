"""The MetadataStore's blob references (holds, sweep marks, `sweep_blob`), on SQLite and
PostgreSQL alike: "bytes are needed" and "bytes may go" are one decision."""

from __future__ import annotations

import threading
import time

import pytest

from viewfinder.domain.blob_sweeper import BlobSweeper, SweepOptions
from viewfinder.domain.ports import MetadataStore
from viewfinder.domain.records import ImageRecord, IndexingStatus
from viewfinder.errors import BlobHoldLost

from .test_metadata_contract import rec

S = "b" * 64  # the bytes `rec(..., sha="b")` refers to


class Remover:
    """A `remove` callback that records what it was asked to remove."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def __call__(self, sha256: str) -> None:
        self.removed.append(sha256)


def test_a_delete_marks_the_bytes_and_they_go_after_the_grace_period(
    metadata_store: MetadataStore,
) -> None:
    store, remove = metadata_store, Remover()
    store.insert_images([rec("a", sha="b")])
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == []  # referenced, never marked
    store.delete_image("t", "a", now=100)
    assert store.blob_sweep_candidates(cutoff=99, limit=10) == []  # marked after the cutoff
    assert store.blob_sweep_candidates(cutoff=100, limit=10) == [S]
    assert store.sweep_blob(S, cutoff=99, remove=remove) is False  # still in its grace period
    assert remove.removed == [] and store.blob_sweep_candidates(100, 10) == [S]
    assert store.sweep_blob(S, cutoff=100, remove=remove) is True
    assert remove.removed == [S]
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == []
    # another sweeper with the same candidate list comes second: nothing left to do
    assert store.sweep_blob(S, cutoff=100, remove=remove) is False
    assert remove.removed == [S]


def test_bytes_an_image_refers_to_are_never_swept(metadata_store: MetadataStore) -> None:
    store, remove = metadata_store, Remover()
    store.insert_images([rec("a", sha="b"), rec("c", sha="b", tenant="other")])
    store.delete_image("t", "a", now=100)
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == [S]
    assert store.sweep_blob(S, cutoff=1e12, remove=remove) is False
    assert remove.removed == []
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == []  # the stale mark went
    store.delete_image("other", "c", now=200)  # the last one: marked again
    assert store.sweep_blob(S, cutoff=200, remove=remove) is True
    assert remove.removed == [S]


def test_a_hold_protects_the_bytes_of_an_upload_until_its_row_commits(
    metadata_store: MetadataStore,
) -> None:
    store, remove = metadata_store, Remover()
    store.hold_blob("x", S, now=50)
    assert store.blob_sweep_candidates(cutoff=49, limit=10) == []
    assert store.sweep_blob(S, cutoff=49, remove=remove) is False  # a live upload needs them
    store.insert_images([rec("x", sha="b")], held=True)  # releases the hold
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == []
    assert store.sweep_blob(S, cutoff=1e12, remove=remove) is False
    assert remove.removed == [] and store.find_image("x") is not None


def test_the_bytes_of_an_upload_that_died_are_swept_after_the_grace_period(
    metadata_store: MetadataStore,
) -> None:
    store, remove = metadata_store, Remover()
    store.hold_blob("dead", S, now=50)  # ... and the upload never committed its row
    assert store.blob_sweep_candidates(cutoff=50, limit=10) == [S]
    assert store.sweep_blob(S, cutoff=50, remove=remove) is True
    assert remove.removed == [S]
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == []


def test_an_upload_slower_than_the_grace_period_learns_its_bytes_may_be_gone(
    metadata_store: MetadataStore,
) -> None:
    store, remove = metadata_store, Remover()
    store.hold_blob("slow", S, now=50)
    store.hold_blob("other", "c" * 64, now=50)
    assert store.sweep_blob(S, cutoff=60, remove=remove) is True  # the slow upload's hold
    with pytest.raises(BlobHoldLost) as lost:
        store.insert_images([rec("slow", sha="b"), rec("other", sha="c")], held=True)
    assert lost.value.image_ids == {"slow"}
    assert store.count_images() == 0  # nothing was inserted, no hold was released
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == ["c" * 64]
    store.hold_blob("slow", S, now=70)  # held again (the service stores the bytes again)
    store.insert_images([rec("slow", sha="b"), rec("other", sha="c")], held=True)
    assert store.count_images() == 2
    assert store.blob_sweep_candidates(cutoff=1e12, limit=10) == []


def test_a_hold_takes_back_a_sweep_mark(metadata_store: MetadataStore) -> None:
    store, remove = metadata_store, Remover()
    store.insert_images([rec("a", sha="b")])
    store.delete_image("t", "a", now=10)
    store.hold_blob("again", S, now=30)  # the same picture uploaded again
    assert store.blob_sweep_candidates(cutoff=20, limit=10) == []
    assert store.sweep_blob(S, cutoff=20, remove=remove) is False
    assert remove.removed == []


def test_a_newer_mark_keeps_the_bytes_an_older_hold_would_let_go(
    metadata_store: MetadataStore,
) -> None:
    store, remove = metadata_store, Remover()
    store.hold_blob("dead", S, now=10)
    store.insert_images([rec("a", sha="b")])
    store.delete_image("t", "a", now=100)
    assert store.blob_sweep_candidates(cutoff=50, limit=10) == [S]  # for the dead hold
    assert store.sweep_blob(S, cutoff=50, remove=remove) is False  # deleted 50 s after cutoff
    assert store.blob_sweep_candidates(cutoff=50, limit=10) == []
    assert store.sweep_blob(S, cutoff=100, remove=remove) is True


def test_a_failing_remove_leaves_the_marks(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a", sha="b")])
    store.delete_image("t", "a", now=10)

    def broken(sha256: str) -> None:
        raise OSError("storage is down")

    with pytest.raises(OSError):
        store.sweep_blob(S, cutoff=10, remove=broken)
    assert store.blob_sweep_candidates(cutoff=10, limit=10) == [S]


def test_candidates_are_limited(metadata_store: MetadataStore) -> None:
    store = metadata_store
    for n in range(5):
        store.hold_blob(f"i{n}", f"{n}" * 64, now=n)
    assert len(store.blob_sweep_candidates(cutoff=10, limit=3)) == 3
    assert sorted(store.blob_sweep_candidates(cutoff=10, limit=10)) == [
        f"{n}" * 64 for n in range(5)
    ]


def test_held_insert_of_failed_items_needs_no_hold(metadata_store: MetadataStore) -> None:
    failed = ImageRecord(
        image_id="f", tenant="t", status=IndexingStatus.FAILED, upload_timestamp=1, error="bad"
    )
    metadata_store.insert_images([failed], held=True)
    assert metadata_store.find_image("f") == failed


def test_existing_image_ids(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec(f"i{n}", ts=n, tenant="ab"[n % 2]) for n in range(1200)])
    store.delete_image("a", "i0")
    asked = [f"i{n}" for n in range(0, 1200, 3)] + ["missing"]
    assert store.existing_image_ids(asked) == {f"i{n}" for n in range(3, 1200, 3)}
    assert store.existing_image_ids([]) == set()


def test_a_hold_waits_for_a_sweep_of_the_same_bytes_to_finish(
    metadata_store: MetadataStore,
) -> None:
    """What the sweeper decided stays true while it removes: an upload that holds the same
    bytes meanwhile gets its hold only after the removal, so its `put` stores them again."""
    store = metadata_store
    store.insert_images([rec("a", sha="b")])
    store.delete_image("t", "a", now=10)
    removing = threading.Event()
    times: dict[str, float] = {}

    def slow_remove(sha256: str) -> None:
        removing.set()
        time.sleep(0.3)
        times["removed"] = time.monotonic()

    sweep = threading.Thread(target=store.sweep_blob, args=(S, 10, slow_remove))
    sweep.start()
    assert removing.wait(10)
    store.hold_blob("new", S, now=20)
    times["held"] = time.monotonic()
    sweep.join(10)
    assert times["held"] >= times["removed"]
    assert store.sweep_blob(S, cutoff=15, remove=Remover()) is False  # the new hold counts


class RecordingBlobs:
    """Blob store calls a sweep makes, recorded."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, sha256: str) -> None:
        self.deleted.append(sha256)

    def sweep_partial(self, before: float) -> int:
        return 0


def test_a_stale_mark_waits_for_a_newer_hold_and_a_pass_still_ends(
    metadata_store: MetadataStore,
) -> None:
    store, blobs = metadata_store, RecordingBlobs()
    sweeper = BlobSweeper(store, blobs, SweepOptions(grace_s=0, batch_size=1))  # type: ignore[arg-type]
    store.insert_images([rec("a", sha="b")])
    store.hold_blob("up", S, now=30)  # an upload of the same bytes, in flight
    store.delete_image("t", "a", now=10)
    store.hold_blob("dead", "c" * 64, now=5)
    report = sweeper.sweep_once(now=20)  # the upload's hold is newer: S is still needed
    assert (report.removed, report.kept) == (1, 1) and blobs.deleted == ["c" * 64]
    assert store.blob_sweep_candidates(cutoff=20, limit=10) == [S]  # the mark waits
    assert sweeper.sweep_once(now=20).kept == 1  # looked at once per pass
    assert sweeper.sweep_once(now=40).removed == 1  # the upload never committed
    assert blobs.deleted == ["c" * 64, S]
