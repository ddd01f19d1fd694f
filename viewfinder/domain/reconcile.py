"""Reconciling the vector index with the metadata in bounded batches, for large shared stores.

`ImageService.reconcile` compares every id at once when a store can't page (the embedded
stores, where it runs only after a crash). On stores that can (PostgreSQL and Milvus) it runs
here instead: a page of ids at a time, so a worker starting against 10M images holds a few
thousand ids, not 4-5 GB of them.

Orphans: a page of vector ids is read first, then which of those images still have a row; a
vector is dropped only when its row is gone (rows are written before vectors, so a vector
written after the page was read can't be taken for an orphan). Missing vectors: a page of
indexed ids is read first, then which have a vector (an image is marked indexed only after
its vector is written, so an image marked meanwhile is not taken for a missing one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from .ports import MetadataStore, VectorIndex
from .records import IndexingStatus

log = logging.getLogger(__name__)

PAGE = 5000


@runtime_checkable
class PagedImageIds(Protocol):
    """A metadata store that lists image ids by status a page at a time (keyset order)."""

    def image_ids_page(self, status: IndexingStatus, after: str, limit: int) -> list[str]:
        """Up to `limit` ids of images in `status`, greater than `after`, in order."""
        ...


@runtime_checkable
class PagedVectorIds(Protocol):
    """A vector index that lists its ids a page at a time and says which ids it holds."""

    def iter_ids(self, batch_size: int) -> Iterator[list[str]]:
        """Every id, a batch at a time."""
        ...

    def present_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of these ids that have a vector."""
        ...


def can_page(metadata: MetadataStore, indexes: Sequence[VectorIndex]) -> bool:
    """Whether these stores reconcile in bounded batches."""
    return isinstance(metadata, PagedImageIds) and all(
        isinstance(index, PagedVectorIds) for index in indexes
    )


def drop_orphans(metadata: MetadataStore, index: PagedVectorIds, page: int = PAGE) -> int:
    """Delete the vectors whose image row is gone; how many."""
    dropped = 0
    for ids in index.iter_ids(page):
        orphans = set(ids) - metadata.existing_image_ids(ids)
        if orphans:
            index.delete(sorted(orphans))  # type: ignore[attr-defined]  # a VectorIndex
            dropped += len(orphans)
    if dropped:
        log.info("dropped %d vectors of deleted images", dropped)
    return dropped


def requeue_missing(
    metadata: PagedImageIds,
    index: PagedVectorIds,
    requeue: Callable[[list[str]], int],
    page: int = PAGE,
) -> int:
    """Queue again the indexed images that have no vector; how many."""
    after, queued = "", 0
    while True:
        ids = metadata.image_ids_page(IndexingStatus.INDEXED, after, page)
        if not ids:
            break
        after = ids[-1]
        missing = sorted(set(ids) - index.present_ids(ids))
        if missing:
            queued += requeue(missing)
    if queued:
        log.info("re-queued %d indexed images whose vectors were missing", queued)
    return queued
