"""The indexing worker: batches, retries, failures and crash repair."""

from __future__ import annotations

import errno
import io
import os
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from tests.conftest import png_bytes
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.domain.similar import embed_image_bytes
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker, WorkerOptions


class FlakyEmbedder(FakeEmbedder):
    """Fails the first `failures` batches."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("model exploded")
        return super().embed_images(images)


def _upload(service: ImageService, n: int) -> list[str]:
    items = [UploadItem(data=png_bytes((n * 10 + i, 0, 0))) for i in range(n)]
    return [r.image_id for r in service.upload("t", items)]


def _status(service: ImageService, image_id: str) -> IndexingStatus:
    return service.get("t", image_id).status


def test_indexes_in_batches(service: ImageService) -> None:
    ids = _upload(service, 5)
    worker = IndexingWorker(service, WorkerOptions(batch_size=2))
    assert worker.run_once() == 2
    worker.drain()
    assert all(_status(service, i) == IndexingStatus.INDEXED for i in ids)
    assert service.vectors.ids() == set(ids)
    assert service.embedder.images_embedded == 5  # type: ignore[attr-defined]
    worker.close()


def test_transient_failures_are_retried(service: ImageService) -> None:
    service.embedder = FlakyEmbedder(failures=1)
    (image_id,) = _upload(service, 1)
    worker = IndexingWorker(service, WorkerOptions(max_attempts=3, retry_delay_s=0))
    worker.run_once()
    assert _status(service, image_id) == IndexingStatus.QUEUED
    worker.drain()
    assert _status(service, image_id) == IndexingStatus.INDEXED
    worker.close()


def test_bounded_retries_then_failed_with_reason(service: ImageService) -> None:
    service.embedder = FlakyEmbedder(failures=10)
    (image_id,) = _upload(service, 1)
    worker = IndexingWorker(service, WorkerOptions(max_attempts=2, retry_delay_s=0))
    for _ in range(5):
        worker.run_once()
    record = service.get("t", image_id)
    assert record.status == IndexingStatus.FAILED
    assert "model exploded" in (record.error or "")
    assert service.embedder.failures == 8  # type: ignore[attr-defined]
    worker.close()


def test_unreadable_stored_bytes_fail_at_once(service: ImageService) -> None:
    (image_id,) = _upload(service, 1)
    sha = service.get("t", image_id).sha256
    path = service.blobs.root / sha[:2] / sha[2:4] / sha  # type: ignore[attr-defined,index]
    path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    worker = IndexingWorker(service, WorkerOptions(max_attempts=3, retry_delay_s=0))
    worker.run_once()
    record = service.get("t", image_id)
    assert record.status == IndexingStatus.FAILED and "decode" in (record.error or "")
    worker.close()


def test_deleted_while_embedding_leaves_no_vector(service: ImageService) -> None:
    class DeletingEmbedder(FakeEmbedder):
        def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
            service.delete("t", victim)
            return super().embed_images(images)

    service.embedder = DeletingEmbedder()
    (victim,) = _upload(service, 1)
    IndexingWorker(service, WorkerOptions()).drain()
    assert service.vectors.ids() == set()


def test_reconcile_repairs_a_crash(service: ImageService) -> None:
    a, b = _upload(service, 2)
    IndexingWorker(service, WorkerOptions()).drain()
    # as if the process died after writing vectors for an image then deleted, and lost b's
    service.vectors.upsert(["ghost"], ["t"], service.embedder.embed_texts(["red"]))
    service.vectors.delete([b])
    service.reconcile()
    assert "ghost" not in service.vectors.ids()
    assert _status(service, b) == IndexingStatus.QUEUED
    IndexingWorker(service, WorkerOptions()).drain()
    assert service.vectors.ids() == {a, b}


class WaitingEmbedder(FakeEmbedder):
    """Its first batch waits until an image of the next batch is being decoded."""

    def __init__(self, next_batch_decoding: threading.Event) -> None:
        super().__init__()
        self.next_batch_decoding = next_batch_decoding
        self.overlapped: list[bool] = []
        self._lock = threading.Lock()
        self._started = False

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self._lock:  # the second batch may begin embedding while the first one waits
            first, self._started = not self._started, True
        if first:
            self.overlapped.append(self.next_batch_decoding.wait(5))
        return super().embed_images(images)


def test_next_batch_decodes_while_this_one_embeds(service: ImageService) -> None:
    ids = _upload(service, 4)
    # claims come oldest first: the third and fourth uploads make the second batch
    second = set(ids[2:])
    decoding = threading.Event()
    blobs_get = service.blobs.get
    record_of = {service.get("t", i).sha256: i for i in ids}

    def get(sha256: str) -> bytes:
        if record_of.get(sha256) in second:
            decoding.set()
        return blobs_get(sha256)

    service.blobs.get = get  # type: ignore[method-assign]
    embedder = WaitingEmbedder(decoding)
    service.embedder = embedder
    worker = IndexingWorker(service, WorkerOptions(batch_size=2))
    worker.drain()
    worker.close()
    assert embedder.overlapped == [True]
    assert all(_status(service, i) == IndexingStatus.INDEXED for i in ids)
    assert embedder.images_embedded == 4


class OverlapEmbedder(FakeEmbedder):
    """Records how many batches embed at once; the first waits a while for a second."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.second = threading.Event()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            first = self.running == 1 and self.images_embedded == 0
            if self.running > 1:
                self.second.set()
        try:
            if first:
                self.second.wait(5)
            return super().embed_images(images)
        finally:
            with self._lock:
                self.running -= 1


def test_two_batches_embed_at_once_and_no_more(service: ImageService) -> None:
    # the model's threads don't idle at the end of one batch: the next embeds beside it
    ids = _upload(service, 10)
    embedder = OverlapEmbedder()
    service.embedder = embedder
    worker = IndexingWorker(service, WorkerOptions(batch_size=2))
    worker.drain()
    worker.close()
    assert embedder.second.is_set() and embedder.peak == 2
    assert all(_status(service, i) == IndexingStatus.INDEXED for i in ids)
    assert embedder.images_embedded == 10


def test_one_batch_in_flight_embeds_alone(service: ImageService) -> None:
    ids = _upload(service, 4)
    embedder = OverlapEmbedder()
    embedder.second.set()  # nobody waits
    service.embedder = embedder
    worker = IndexingWorker(service, WorkerOptions(batch_size=2, in_flight=1))
    worker.drain()
    worker.close()
    assert embedder.peak == 1
    assert all(_status(service, i) == IndexingStatus.INDEXED for i in ids)


def test_a_store_failure_in_one_batch_lets_the_other_finish_then_retries(
    service: ImageService,
) -> None:
    ids = _upload(service, 8)
    complete = service.metadata.complete_jobs
    calls: list[int] = []

    def flaky_complete(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return complete(*args, **kwargs)  # type: ignore[arg-type]

    service.metadata.complete_jobs = flaky_complete  # type: ignore[method-assign]
    # short leases: the failed batch's claims lapse and it is taken again
    worker = IndexingWorker(service, WorkerOptions(batch_size=2, lease_s=0.3, poll_interval_s=0.05))
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not all(_status(service, i) == IndexingStatus.INDEXED for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(10)
        worker.close()
    assert not thread.is_alive()
    assert service.vectors.ids() == set(ids)
    assert len(calls) >= 5  # 4 batches, one of them twice


class NiceRecorder(FakeEmbedder):
    """Records the nice value of the threads that embed."""

    def __init__(self) -> None:
        super().__init__()
        self.nice: set[int] = set()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.nice.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().embed_images(images)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")
def test_batches_embed_on_threads_nicer_than_requests(service: ImageService) -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    _upload(service, 6)
    embedder = NiceRecorder()
    service.embedder = embedder
    worker = IndexingWorker(service, WorkerOptions(batch_size=2, nice=4))
    worker.drain()
    worker.close()
    assert embedder.nice == {min(19, base + 4)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def _disk_fills(service: ImageService, monkeypatch: pytest.MonkeyPatch, times: int) -> None:
    """The vector index's next `times` writes find the disk full."""
    active = service.spaces.active
    upsert = active.upsert
    left = times

    def full_then_free(*args: object, **kwargs: object) -> None:
        nonlocal left
        if left > 0:
            left -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        upsert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(active, "upsert", full_then_free)


def test_a_batch_whose_vectors_cannot_be_stored_is_given_back_at_once(
    service: ImageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _upload(service, 3)
    _disk_fills(service, monkeypatch, times=1)
    worker = IndexingWorker(service, WorkerOptions(batch_size=4, lease_s=300))
    with pytest.raises(OSError):
        worker.run_once()
    # claimable again now, not when the 300 s lease runs out; no attempt counted against them
    assert all(_status(service, i) == IndexingStatus.QUEUED for i in ids)
    assert worker.run_once() == 3
    assert all(_status(service, i) == IndexingStatus.INDEXED for i in ids)
    worker.close()


def test_a_batch_that_cannot_be_given_back_either_is_given_back_before_the_next_claim(
    service: ImageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _upload(service, 3)
    _disk_fills(service, monkeypatch, times=1)
    release = service.metadata.release_jobs

    def database_full_too(*args: object) -> int:
        monkeypatch.setattr(service.metadata, "release_jobs", release)  # freed after this
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(service.metadata, "release_jobs", database_full_too)
    worker = IndexingWorker(service, WorkerOptions(batch_size=4, lease_s=300))
    with pytest.raises(OSError):
        worker.run_once()
    assert worker.run_once() == 3  # released first, then claimed: no wait for the lease
    assert all(_status(service, i) == IndexingStatus.INDEXED for i in ids)
    worker.close()


def test_a_full_disk_pauses_indexing_with_one_line_a_retry(
    service: ImageService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _upload(service, 2)
    _disk_fills(service, monkeypatch, times=3)
    worker = IndexingWorker(service, WorkerOptions(poll_interval_s=0.01, lease_s=300))
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    with caplog.at_level("WARNING", logger="viewfinder.indexing.worker"):
        thread.start()
        deadline = time.monotonic() + 20
        while not all(_status(service, i) == IndexingStatus.INDEXED for i in ids):
            assert time.monotonic() < deadline, "indexing did not resume after the disk freed"
            time.sleep(0.02)
    worker.stop()
    thread.join(10)
    worker.close()
    full = [r for r in caplog.records if "storage is full" in r.getMessage()]
    assert len(full) == 3 and all(r.exc_info is None for r in full)
    assert "No space left on device" in full[0].getMessage()


class SizeRecordingEmbedder(FakeEmbedder):
    """A model that needs 64 px on an image's shorter side, and notes the sizes it gets."""

    min_image_side = 64

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.sizes += [image.size for image in images]
        return super().embed_images(images)


def _jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def test_images_reach_the_model_no_larger_than_it_needs(service: ImageService) -> None:
    service.embedder = embedder = SizeRecordingEmbedder()
    photo = _jpeg((640, 480))
    (image_id,) = [r.image_id for r in service.upload("t", [UploadItem(data=photo)])]
    worker = IndexingWorker(service, WorkerOptions())
    worker.drain()
    worker.close()
    ((width, height),) = embedder.sizes
    assert width == 86 and height in (64, 65)  # not 640 x 480
    # a search with the same picture decodes it alike, so it finds the same vector
    stored = service.vectors.vectors_of("t", [image_id])[image_id]
    again = embed_image_bytes(embedder, photo, service.limits)
    assert embedder.sizes[-1] == (width, height)
    assert np.allclose(stored, again)


def test_a_model_that_does_not_say_gets_images_up_to_the_cap(service: ImageService) -> None:
    service.embedder = embedder = SizeRecordingEmbedder()
    embedder.min_image_side = None  # type: ignore[assignment]
    service.upload("t", [UploadItem(data=_jpeg((640, 480)))])
    worker = IndexingWorker(service, WorkerOptions())
    worker.drain()
    worker.close()
    assert embedder.sizes == [(640, 480)]
