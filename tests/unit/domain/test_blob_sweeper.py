"""The blob sweeper over a service's stores: the grace period, shared bytes, dead uploads
(these three on the embedded and the shared stores), slow uploads, interrupted writes, store
failures and the background thread."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import pytest

from tests.conftest import STORES, png_bytes
from viewfinder.domain.blob_sweeper import BlobSweeper, SweepOptions
from viewfinder.domain.ports import MetadataStore
from viewfinder.domain.records import ImageRecord, UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.errors import BlobHoldLost, Unavailable

GRACE = 600.0


def _sweeper(service: ImageService, **options: Any) -> BlobSweeper:
    return BlobSweeper(
        service.metadata, service.blobs, SweepOptions(**{"grace_s": GRACE, **options})
    )


def _upload(service: ImageService, tenant: str, data: bytes) -> ImageRecord:
    (record,) = service.upload(tenant, [UploadItem(data=data)])
    assert record.sha256 is not None
    return record


@pytest.mark.parametrize("stores", STORES, indirect=True)
def test_deleted_bytes_stay_for_the_grace_period_then_go(service: ImageService) -> None:
    record = _upload(service, "t", png_bytes((1, 2, 3)))
    service.delete("t", record.image_id)
    sweeper = _sweeper(service)
    deleted_at = time.time()
    assert sweeper.sweep_once(now=deleted_at + GRACE - 5).removed == 0
    assert service.blobs.exists(record.sha256)  # type: ignore[arg-type]
    assert sweeper.sweep_once(now=deleted_at + GRACE + 5).removed == 1
    assert not service.blobs.exists(record.sha256)  # type: ignore[arg-type]
    assert sweeper.sweep_once(now=deleted_at + 10 * GRACE).removed == 0  # nothing left to do


@pytest.mark.parametrize("stores", STORES, indirect=True)
def test_bytes_another_image_refers_to_are_never_swept(service: ImageService) -> None:
    data = png_bytes((4, 5, 6))
    mine, theirs = _upload(service, "t", data), _upload(service, "other", data)
    assert mine.sha256 == theirs.sha256
    service.delete("t", mine.image_id)
    sweeper = _sweeper(service)
    report = sweeper.sweep_once(now=time.time() + 10 * GRACE)
    assert (report.removed, report.kept) == (0, 1)
    assert service.read_bytes(theirs) == data
    service.delete("other", theirs.image_id)  # the last image with these bytes
    assert sweeper.sweep_once(now=time.time() + 10 * GRACE).removed == 1
    assert not service.blobs.exists(mine.sha256)  # type: ignore[arg-type]


class FailsToCommit:
    """A metadata store whose image inserts fail (the database went away, or the process died
    between storing the bytes and committing the rows)."""

    def __init__(self, inner: MetadataStore) -> None:
        self.inner = inner

    def insert_images(self, records: Sequence[ImageRecord], *, held: bool = False) -> None:
        raise Unavailable("the database is unavailable; retry shortly")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("stores", STORES, indirect=True)
def test_bytes_of_an_upload_that_died_before_committing_are_swept(service: ImageService) -> None:
    data = png_bytes((7, 8, 9))
    inner = service.metadata
    service.metadata = FailsToCommit(inner)  # type: ignore[assignment]
    try:
        with pytest.raises(Unavailable):
            service.upload("t", [UploadItem(data=data)])
    finally:
        service.metadata = inner
    assert inner.count_images() == 0
    (sha,) = inner.blob_sweep_candidates(cutoff=time.time(), limit=10)
    assert service.blobs.exists(sha)  # stored, but no row refers to it
    sweeper = _sweeper(service)
    assert sweeper.sweep_once(now=time.time() + GRACE - 5).removed == 0  # maybe still uploading
    assert sweeper.sweep_once(now=time.time() + GRACE + 5).removed == 1
    assert not service.blobs.exists(sha)


class SweepsBeforeCommit:
    """A metadata store on which, the first time an upload commits, a sweep with a cutoff past
    its hold runs just before (an upload slower than the grace period)."""

    def __init__(self, inner: MetadataStore, sweeper: BlobSweeper) -> None:
        self.inner = inner
        self.sweeper = sweeper
        self.swept = 0

    def insert_images(self, records: Sequence[ImageRecord], *, held: bool = False) -> None:
        if not self.swept:
            self.swept = self.sweeper.sweep_once(now=time.time() + GRACE + 5).removed
        self.inner.insert_images(records, held=held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_upload_slower_than_the_grace_period_stores_its_bytes_again(
    service: ImageService,
) -> None:
    data = png_bytes((10, 11, 12))
    inner = service.metadata
    slow = SweepsBeforeCommit(inner, _sweeper(service))
    service.metadata = slow  # type: ignore[assignment]
    try:
        record = _upload(service, "t", data)
    finally:
        service.metadata = inner
    assert slow.swept == 1  # the bytes were swept under the upload ...
    assert service.read_bytes(service.get("t", record.image_id)) == data  # ... and stored again
    assert inner.blob_sweep_candidates(cutoff=time.time() + 10 * GRACE, limit=10) == []


class SweptRightAfterHold:
    """A metadata store on which, the first `times` times an upload holds bytes, a sweep with a
    cutoff past the hold runs before the upload stores them (an upload slower than the grace
    period between the two, every time)."""

    def __init__(self, inner: MetadataStore, sweeper: BlobSweeper, times: int) -> None:
        self.inner = inner
        self.sweeper = sweeper
        self.times = times

    def hold_blob(self, image_id: str, sha256: str, now: float) -> None:
        self.inner.hold_blob(image_id, sha256, now)
        if self.times > 0:
            self.times -= 1
            self.sweeper.sweep_once(now=time.time() + GRACE + 5)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_upload_that_never_beats_the_sweeper_leaves_nothing_behind(
    service: ImageService,
) -> None:
    inner = service.metadata
    service.metadata = SweptRightAfterHold(inner, _sweeper(service), times=3)  # type: ignore[assignment]
    try:
        with pytest.raises(BlobHoldLost):  # every attempt lost its hold
            service.upload("t", [UploadItem(data=png_bytes((30, 31, 32)))])
    finally:
        service.metadata = inner
    assert inner.count_images() == 0
    # the last attempt stored the bytes after its hold was swept; giving up held them again,
    # so they go after the grace period instead of staying for ever
    (sha,) = inner.blob_sweep_candidates(cutoff=time.time(), limit=10)
    assert service.blobs.exists(sha)
    assert _sweeper(service).sweep_once(now=time.time() + GRACE - 5).removed == 0
    assert _sweeper(service).sweep_once(now=time.time() + GRACE + 5).removed == 1
    assert not service.blobs.exists(sha)


def test_leftovers_of_interrupted_writes_are_swept(service: ImageService, tmp_path: Any) -> None:
    partial = service.blobs.root / ".partial"  # type: ignore[attr-defined]
    old, fresh = partial / "old-write", partial / "fresh-write"
    old.write_bytes(b"half an image")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 4000, time.time() - 4000))
    os.utime(fresh, (time.time() - 3000, time.time() - 3000))
    # never younger than an hour, even with no grace at all: it may be a write in progress
    report = _sweeper(service, grace_s=0).sweep_once()
    assert report.partial == 1
    assert not old.exists() and fresh.exists()
    _upload(service, "t", png_bytes((13, 14, 15)))  # writes still go through .partial
    assert sorted(p.name for p in partial.iterdir()) == ["fresh-write"]


class BrokenDelete:
    """A blob store whose deletes fail (the storage service is down)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def delete(self, sha256: str) -> None:
        raise Unavailable("image storage is unavailable; retry shortly")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_storage_outage_ends_the_pass_and_the_marks_wait(service: ImageService) -> None:
    record = _upload(service, "t", png_bytes((16, 17, 18)))
    service.delete("t", record.image_id)
    later = time.time() + GRACE + 5
    broken = BlobSweeper(service.metadata, BrokenDelete(service.blobs), SweepOptions(GRACE))
    with pytest.raises(Unavailable):
        broken.sweep_once(now=later)
    assert service.blobs.exists(record.sha256)  # type: ignore[arg-type]
    assert _sweeper(service).sweep_once(now=later).removed == 1  # the next pass removes them


def test_the_thread_sweeps_every_interval_until_stopped(service: ImageService) -> None:
    record = _upload(service, "t", png_bytes((19, 20, 21)))
    sweeper = _sweeper(service, grace_s=0.0, interval_s=0.02)
    sweeper.start()
    try:
        service.delete("t", record.image_id)
        deadline = time.monotonic() + 10
        while service.blobs.exists(record.sha256) and time.monotonic() < deadline:  # type: ignore[arg-type]
            time.sleep(0.01)
        assert not service.blobs.exists(record.sha256)  # type: ignore[arg-type]
    finally:
        sweeper.stop()
    kept = _upload(service, "t", png_bytes((22, 23, 24)))
    service.delete("t", kept.image_id)
    time.sleep(0.1)
    assert service.blobs.exists(kept.sha256)  # type: ignore[arg-type]  # stopped: no more passes
