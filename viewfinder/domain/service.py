"""The ImageService: upload, list, get, delete and search, over the store protocols.

No HTTP and no SQL here: the API layer calls this, and this calls the stores and the embedder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..embedders.base import Embedder
from ..errors import NotFound, ValidationError
from . import reconcile as reconciling
from . import similar
from .duplicates import DuplicateGroup, DuplicateLimits, DuplicateMatch
from .duplicates import duplicate_groups as find_duplicate_groups
from .duplicates import duplicates_of as find_duplicates_of
from .fetch_pool import FetchOutcome, FetchPool
from .filtered_search import DEFAULT_SCAN_LIMIT, FilteredIndex
from .filters import Filter
from .ingest import IngestLimits
from .metadata_rules import check_metadata
from .ports import BlobStore, MetadataStore, VectorIndex
from .records import ImageRecord, IndexingStatus, SearchHit, UploadItem
from .spaces import ReembedLeases, SpaceHooks, SwitchProgress, VectorSpaces
from .uploads import UploadStores, aligned, store_uploads, url_items

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchRequest:
    """A validated search."""

    query: str = ""  # may be empty when an image is the query
    max_results: int = 10
    threshold: float | None = None
    search_mode: str = "vision"
    image_weight: float | None = None
    text_weight: float | None = None
    # search by example (similar.py): one of the tenant's images, or image bytes sent along
    image_id: str | None = None
    image: bytes | None = None
    include_self: bool = False  # the query image among its own results
    filter: Filter | None = None  # only images that pass (filters.py); exact top k


@dataclass(frozen=True)
class QueueStatus:
    """Counts by indexing status, for progress reports."""

    stored: int
    queued: int
    indexed: int
    failed: int
    model_id: str  # the model answering searches
    switch: SwitchProgress | None = None  # a move to another model, while it runs


class ImageService:
    """Everything a tenant can do with images."""

    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        vectors: VectorIndex,
        embedder: Embedder,
        fetches: FetchPool,
        limits: IngestLimits,
        *,
        model_spec: str = "",
        hooks: SpaceHooks | None = None,
        clock: Callable[[], float] = time.time,
        on_close: Callable[[], None] | None = None,
        duplicates: DuplicateLimits | None = None,
        filter_scan_limit: int = DEFAULT_SCAN_LIMIT,
        room_for_uploads: Callable[[], None] | None = None,
    ) -> None:
        """`room_for_uploads` raises (StorageFull) when there is no room to store uploads."""
        self.metadata = metadata
        self._room_for_uploads = room_for_uploads
        self.duplicate_limits = duplicates or DuplicateLimits()
        self.filter_scan_limit = filter_scan_limit
        self.blobs = blobs
        # on a shared metadata store, worker processes share the re-embedding of a switch
        leases = metadata if isinstance(metadata, ReembedLeases) else None
        self.spaces = VectorSpaces(vectors, embedder, model_spec, hooks, leases)
        self.fetches = fetches
        self.limits = limits
        self._clock = clock
        self._on_close = on_close  # e.g. let the data directory go
        self.queue_changed = threading.Event()

    @property
    def embedder(self) -> Embedder:
        """The configured model: it embeds every new image."""
        return self.spaces.embedder

    @embedder.setter
    def embedder(self, embedder: Embedder) -> None:
        self.spaces.embedder = embedder

    @property
    def vectors(self) -> VectorIndex:
        """The active vector index (the one searches read)."""
        return self.spaces.active

    # life cycle
    def start(self, *, single_process: bool = True, repair: bool = True) -> None:
        """Migrate, load the vector index and repair what a crash may have left behind.

        `repair=False` leaves the repair to others: an API-only process on shared stores reads
        no id (the workers, which write the vectors, reconcile when they start), so it starts
        in the same time and memory whatever the number of images.
        """
        self.metadata.migrate()
        self.spaces.open()
        if single_process:
            released = self.metadata.release_leases()
            if released:
                log.info("re-queued %d images claimed before the last stop", released)
        # comparing every id takes seconds at a million images: only a crash needs it
        if repair and not all(index.closed_cleanly() for index in self.spaces.indexes()):
            self.reconcile()

    def reconcile(self) -> None:
        """Make the vector index agree with the metadata after a crash."""
        indexes = self.spaces.indexes()
        if reconciling.can_page(self.metadata, indexes):  # large shared stores: bounded memory
            for index in indexes:
                reconciling.drop_orphans(self.metadata, index)  # type: ignore[arg-type]
            if self.spaces.switch is None:  # else the switch re-embeds what the new index lacks
                requeued = reconciling.requeue_missing(
                    self.metadata,  # type: ignore[arg-type]
                    self.vectors,  # type: ignore[arg-type]
                    lambda ids: self.metadata.requeue(ids, self._clock()),
                )
                if requeued:
                    self.queue_changed.set()
            return
        # Vectors first, then metadata: other processes may be indexing meanwhile, and a
        # vector written after this read must not be taken for the vector of a deleted image.
        seen = [(index, index.ids()) for index in self.spaces.indexes()]
        indexed = self.metadata.image_ids_with_status(IndexingStatus.INDEXED)
        queued = self.metadata.image_ids_with_status(IndexingStatus.QUEUED)
        suspects = set().union(*(ids - indexed - queued for _, ids in seen))
        # A worker may have marked an image indexed between the two reads above, so being in
        # neither proves nothing: a vector is an orphan only if its image row is gone, and
        # that is asked of the rows in one read, after the vectors were read.
        if suspects:
            suspects -= self.metadata.existing_image_ids(sorted(suspects))
        for index, ids in seen:
            orphans = ids & suspects
            if orphans:
                log.info("dropping %d vectors of deleted images", len(orphans))
                index.delete(sorted(orphans))
        if self.spaces.switch is not None:
            return  # the switch re-embeds whatever the new index lacks
        missing = indexed - seen[0][1]
        if missing:  # look again: another process may have indexed them since the first read
            missing -= self.vectors.ids()
        if missing:
            log.info("re-queuing %d indexed images whose vectors are missing", len(missing))
            self.metadata.requeue(sorted(missing), self._clock())
            self.queue_changed.set()

    def close(self) -> None:
        """Release the stores."""
        self.fetches.close()
        self.spaces.close()
        for store in (self.blobs, self.metadata):
            store.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    # upload
    def upload(
        self,
        tenant: str,
        items: Sequence[UploadItem],
        fetched: Sequence[FetchOutcome | None] | None = None,
    ) -> list[ImageRecord]:
        """Store each item durably and queue it; a bad item fails alone (status 3).

        `fetched` holds what `fetch_urls_async` gave for these items, when the caller
        fetched their URLs already; else they are fetched here (concurrently, blocking).
        """
        if not items:
            raise ValidationError(
                "no images: send file parts named `images` and/or `image_urls` in `metadata`",
                param="images",
            )
        for n, item in enumerate(items):  # every caller, not only HTTP: the same rules
            check_metadata(item.metadata, f"metadata.requests.{n}.metadata", self.limits.metadata)
        if self._room_for_uploads is not None:
            self._room_for_uploads()
        if fetched is None:
            fetched = self.fetch_urls(items)
        stores = UploadStores(self.metadata, self.blobs, self.limits, self._clock)
        records = store_uploads(stores, tenant, items, fetched)
        if any(r.status == IndexingStatus.QUEUED for r in records):
            self.queue_changed.set()
        return records

    def fetch_urls(self, items: Sequence[UploadItem]) -> list[FetchOutcome | None]:
        """Fetch the URLs of the URL items, concurrently (blocking); None for other items."""
        wanted = url_items(items)
        outcomes = self.fetches.fetch_all([url for _, url in wanted])
        return aligned(len(items), wanted, outcomes)

    async def fetch_urls_async(self, items: Sequence[UploadItem]) -> list[FetchOutcome | None]:
        """`fetch_urls` for the event loop: the fetches run on the fetch pool's own threads,
        so slow URLs hold no thread that serves other requests."""
        wanted = url_items(items)
        outcomes = await self.fetches.fetch_all_async([url for _, url in wanted])
        return aligned(len(items), wanted, outcomes)

    # read
    def get(self, tenant: str, image_id: str) -> ImageRecord:
        """One image of the tenant, or NotFound."""
        record = self.metadata.get_image(tenant, image_id)
        if record is None:
            raise NotFound(f"image {image_id} not found", param="image_id")
        return record

    def list_images(
        self, tenant: str, limit: int = 100, offset: int = 0, where: Filter | None = None
    ) -> list[ImageRecord]:
        """The tenant's images (those passing `where`, when given), newest first."""
        return self.metadata.list_images(tenant, limit, offset, where)

    def find(self, image_id: str) -> ImageRecord:
        """An image by id alone, for signed URLs (whose signature already proves access)."""
        record = self.metadata.find_image(image_id)
        if record is None:
            raise NotFound(f"image {image_id} not found", param="image_id")
        return record

    def read_bytes(self, record: ImageRecord) -> bytes:
        """The original bytes of an image."""
        if record.sha256 is None:
            raise NotFound(f"image {record.image_id} has no stored bytes ({record.error})")
        return self.blobs.get(record.sha256)

    def delete(self, tenant: str, image_id: str) -> ImageRecord:
        """Remove an image from metadata and the index.

        Its bytes stay: other images (of any tenant, or an upload in flight) may share them.
        The blob sweeper removes them once nothing has needed them for the grace period.
        """
        record = self.metadata.delete_image(tenant, image_id, now=self._clock())
        if record is None:
            raise NotFound(f"image {image_id} not found", param="image_id")
        with self.spaces.lock:
            for index in self.spaces.indexes():
                index.delete([image_id])
        return record

    # search
    def search(self, tenant: str, request: SearchRequest) -> list[SearchHit]:
        """Rank the tenant's indexed images against a text query, an image, or both."""
        query = request.query.strip()
        similar.check_query_parts(query, request.image_id, request.image is not None)
        embedder, index = self.spaces.query_space()
        if request.filter is not None:  # every kind of search below ranks only passing images
            index = FilteredIndex(
                index, self.metadata, request.filter, self.filter_scan_limit
            ).as_index()
        if request.image_id is not None or request.image is not None:
            return self._similar_search(tenant, embedder, index, query, request)
        qvec = embedder.embed_texts([query])[0]
        if request.search_mode == "joined":
            return self._joined_search(tenant, embedder, index, qvec, request)
        found = index.search(tenant, qvec, request.max_results)
        if not found:
            return []
        scores = embedder.calibrate(np.array([s for _, s in found], dtype=np.float32), qvec)
        return self._hits(tenant, [i for i, _ in found], scores, request.threshold)

    def _joined_search(
        self,
        tenant: str,
        embedder: Embedder,
        index: VectorIndex,
        qvec: np.ndarray,
        request: SearchRequest,
    ) -> list[SearchHit]:
        # Rank a wide vision shortlist, then blend in the query's similarity to each
        # candidate's caption/metadata text, embedded by the same text tower.
        image_w = 1.0 if request.image_weight is None else request.image_weight
        text_w = 1.0 if request.text_weight is None else request.text_weight
        total = image_w + text_w
        if image_w < 0 or text_w < 0 or total <= 0:
            raise ValidationError(
                "image_weight and text_weight must be >= 0 and not both 0", param="image_weight"
            )
        found = index.search(tenant, qvec, max(request.max_results * 5, 100))
        if not found:
            return []
        ids = [i for i, _ in found]
        records = self.metadata.get_images(tenant, ids)
        vision = embedder.calibrate(np.array([s for _, s in found], dtype=np.float32), qvec)
        texts = [_metadata_text(records[i].metadata) if i in records else "" for i in ids]
        text_scores = np.zeros(len(ids), dtype=np.float32)
        with_text = [n for n, t in enumerate(texts) if t]
        if with_text:
            tvecs = embedder.embed_texts([texts[n] for n in with_text])
            text_scores[with_text] = np.clip(tvecs @ qvec, 0.0, 1.0)
        blended = (image_w * vision + text_w * text_scores) / total
        order = np.argsort(-blended, kind="stable")[: request.max_results]
        return self._hits(
            tenant, [ids[n] for n in order], blended[order], request.threshold, records
        )

    def _similar_search(
        self,
        tenant: str,
        embedder: Embedder,
        index: VectorIndex,
        query: str,
        request: SearchRequest,
    ) -> list[SearchHit]:
        if request.search_mode != "vision":
            raise ValidationError(
                'search by image is a vision search: leave out search_mode or send "vision"',
                param="search_mode",
            )
        image = self._image_query(tenant, embedder, index, request)
        if query:
            text_w, image_w = similar.weights(request.text_weight, request.image_weight)
            ranked = similar.rank_by_text_and_image(
                embedder,
                index,
                tenant,
                embedder.embed_texts([query])[0],
                image,
                request.max_results,
                text_w,
                image_w,
                include_self=request.include_self,
            )
        else:
            ranked = similar.rank_by_image(
                embedder,
                index,
                tenant,
                image,
                request.max_results,
                include_self=request.include_self,
            )
        return self._hits(tenant, ranked.ids, ranked.scores, request.threshold)

    def _image_query(
        self, tenant: str, embedder: Embedder, index: VectorIndex, request: SearchRequest
    ) -> similar.ImageQuery:
        if request.image is not None:
            vector = similar.embed_image_bytes(embedder, request.image, self.limits)
            return similar.ImageQuery(vector=vector)
        assert request.image_id is not None
        return similar.stored_image_query(
            self.metadata, self.blobs, index, embedder, self.limits, tenant, request.image_id
        )

    # near-duplicates
    def duplicates_of(self, tenant: str, image_id: str) -> list[DuplicateMatch]:
        """The near-duplicates of one of the tenant's images, closest first."""
        embedder, index = self.spaces.query_space()
        record = self.get(tenant, image_id)
        vector = index.vectors_of(tenant, [image_id]).get(image_id)
        if vector is None:
            return []  # not indexed (yet): it has no neighbours to compare
        return find_duplicates_of(
            self.metadata, index, tenant, record, vector, self.duplicate_limits
        )

    def duplicate_groups(self, tenant: str) -> list[DuplicateGroup]:
        """The tenant's groups of near-duplicate images, largest first."""
        _, index = self.spaces.query_space()
        return find_duplicate_groups(self.metadata, index, tenant, self.duplicate_limits)

    def _hits(
        self,
        tenant: str,
        ids: Sequence[str],
        scores: np.ndarray,
        threshold: float | None,
        records: dict[str, ImageRecord] | None = None,
    ) -> list[SearchHit]:
        records = records if records is not None else self.metadata.get_images(tenant, ids)
        hits = []
        for image_id, score in zip(ids, scores, strict=True):
            record = records.get(image_id)
            if record is None or record.status != IndexingStatus.INDEXED:
                continue  # deleted or re-queued since the vector was written
            if threshold is not None and float(score) < threshold:
                continue
            hits.append(SearchHit(record=record, score=float(score)))
        return hits

    def queue_status(self, tenant: str | None = None) -> QueueStatus:
        """Counts of images per indexing status (of one tenant, or of all)."""

        def count(status: IndexingStatus) -> int:
            return self.metadata.count_images(status, tenant)

        indexed = count(IndexingStatus.INDEXED)
        answering = self.spaces.answering_model()  # first: it notices a finished switch
        return QueueStatus(
            stored=count(IndexingStatus.STORED),
            queued=count(IndexingStatus.QUEUED),
            indexed=indexed,
            failed=count(IndexingStatus.FAILED),
            # the model searches come from; during a switch, its target is in `switch`
            model_id=answering,
            # a tenant sees the switch over its own images only, never the server's totals
            switch=self.spaces.progress(indexed, tenant),
        )

    def reindex_all(self) -> int:
        """Drop every vector and queue every stored, indexed or failed image again."""
        self.vectors.reset(self.embedder.model_id, self.embedder.dim, self.spaces.spec)
        ids: set[str] = set()
        for status in (IndexingStatus.INDEXED, IndexingStatus.QUEUED):
            ids |= self.metadata.image_ids_with_status(status)
        count = self.metadata.requeue(sorted(ids), self._clock())
        self.queue_changed.set()
        return count


def _metadata_text(metadata: dict[str, object]) -> str:
    """The text joined search compares a query with: the caption, else all string values."""
    caption = metadata.get("caption")
    if isinstance(caption, str) and caption.strip():
        return caption.strip()
    return " ".join(v for v in metadata.values() if isinstance(v, str)).strip()[:1000]
