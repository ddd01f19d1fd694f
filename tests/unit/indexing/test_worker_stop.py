"""A stopping worker finishes the batches embedding and gives back the ones still decoding."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from tests.conftest import png_bytes
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker, WorkerOptions, WorkerPool


class GatedEmbedder(FakeEmbedder):
    """Embeds only when let through, counting the batches that came to embed."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.entered = 0
        self.go = threading.Event()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self._lock:
            self.entered += 1
        assert self.go.wait(10)
        return super().embed_images(images)


def _upload(service: ImageService, n: int) -> list[str]:
    items = [UploadItem(data=png_bytes((i * 20, 7, 0))) for i in range(n)]
    return [r.image_id for r in service.upload("t", items)]


def test_stop_finishes_the_batches_embedding_and_gives_back_no_more(
    service: ImageService,
) -> None:
    gate = GatedEmbedder()
    service.embedder = gate
    ids = _upload(service, 6)
    seen: list[int] = []
    worker = IndexingWorker(
        service,
        WorkerOptions(batch_size=2, lease_s=600, poll_interval_s=0.01),
        on_batch=seen.append,
    )
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    deadline = time.monotonic() + 10
    while gate.entered < 2:  # both batches in flight are embedding
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker.stop()
    gate.go.set()
    thread.join(10)
    assert not thread.is_alive()
    statuses = [service.get("t", i).status for i in ids]
    assert statuses == [IndexingStatus.INDEXED] * 4 + [IndexingStatus.QUEUED] * 2
    assert gate.images_embedded == 4 and seen == [2, 2]
    assert worker.last_batch_at is not None
    again = service.metadata.claim_jobs(10, 60, time.time())
    assert sorted(j.image_id for j in again) == sorted(ids[4:])
    worker.close()


def test_stop_gives_back_the_batches_still_decoding(service: ImageService) -> None:
    ids = _upload(service, 6)
    first = {service.get("t", i).sha256 for i in ids[:2]}  # claims come oldest first
    reading = threading.Event()
    let_read = threading.Event()
    blobs_get = service.blobs.get

    def get(sha256: str) -> bytes:
        if sha256 not in first:
            reading.set()
            assert let_read.wait(10)
        return blobs_get(sha256)

    service.blobs.get = get  # type: ignore[method-assign]
    seen: list[int] = []
    worker = IndexingWorker(
        service,
        WorkerOptions(batch_size=2, lease_s=600, poll_interval_s=0.01),
        on_batch=seen.append,
    )
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    deadline = time.monotonic() + 10
    while not (seen and reading.is_set()):  # batch 1 is in, batch 2 is reading its bytes
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker.stop()
    let_read.set()
    thread.join(10)
    assert not thread.is_alive()
    statuses = [service.get("t", i).status for i in ids]
    assert statuses == [IndexingStatus.INDEXED] * 2 + [IndexingStatus.QUEUED] * 4
    assert seen == [2]
    # what it held unembedded is claimable now, not in 600 s
    again = service.metadata.claim_jobs(10, 60, time.time())
    assert sorted(j.image_id for j in again) == sorted(ids[2:])
    worker.close()


def test_pool_reports_threads_and_last_batch(service: ImageService) -> None:
    pool = WorkerPool(service, WorkerOptions(batch_size=4, poll_interval_s=0.01), 2)
    counted: list[int] = []
    pool.observe(counted.append)
    assert pool.alive() == 0 and pool.last_batch_at is None
    pool.start()
    try:
        assert pool.alive() == 2
        _upload(service, 3)
        deadline = time.monotonic() + 10
        while sum(counted) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pool.last_batch_at is not None and pool.last_batch_at <= time.time()
    finally:
        pool.stop()
    assert pool.alive() == 0
