"""`ImageService.reconcile` while other processes index: a vector is dropped only when its
image row is gone, never because a worker committed between two reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import STORES, png_bytes
from viewfinder.domain.ports import MetadataStore
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import ImageService, SearchRequest


class CompletesBetweenReads:
    """A metadata store on which a worker completes jobs right after the indexed ids are read
    (what another process indexing during `reconcile` looks like); the rest is delegated."""

    def __init__(self, inner: MetadataStore, meanwhile: Callable[[], None]) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], None] | None = meanwhile

    def image_ids_with_status(self, status: IndexingStatus) -> set[str]:
        ids = self.inner.image_ids_with_status(status)
        if status == IndexingStatus.INDEXED and self.meanwhile is not None:
            self.meanwhile()
            self.meanwhile = None
        return ids

    def image_ids_page(self, status: IndexingStatus, after: str, limit: int) -> list[str]:
        # the same race when reconciling a page at a time (domain/reconcile.py)
        ids: list[str] = self.inner.image_ids_page(status, after, limit)  # type: ignore[attr-defined]
        if status == IndexingStatus.INDEXED and self.meanwhile is not None:
            self.meanwhile()
            self.meanwhile = None
        return ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("stores", STORES, indirect=True)
def test_a_vector_committed_between_the_reads_survives(service: ImageService) -> None:
    (record,) = service.upload("t", [UploadItem(data=png_bytes((200, 10, 10)))])
    image_id = record.image_id
    # a worker elsewhere has claimed and embedded the image, and written its vector ...
    (job,) = service.metadata.claim_jobs(10, lease_s=60, now=record.upload_timestamp + 1)
    service.vectors.upsert([image_id], ["t"], service.embedder.embed_texts(["red"]))
    # ... and a vector of an image deleted in a crash is left over
    service.vectors.upsert(["ghost"], ["t"], service.embedder.embed_texts(["blue"]))
    inner = service.metadata
    # ... and marks it indexed just after reconcile read the indexed ids
    racing = CompletesBetweenReads(inner, lambda: inner.complete_jobs([job.image_id]))
    service.metadata = racing  # type: ignore[assignment]
    try:
        service.reconcile()
    finally:
        service.metadata = inner
    assert service.get("t", image_id).status == IndexingStatus.INDEXED
    assert service.vectors.ids() == {image_id}  # its vector kept, the ghost's dropped
    assert [h.record.image_id for h in service.search("t", SearchRequest("red"))] == [image_id]
