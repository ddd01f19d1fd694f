"""Storing uploaded images: each item checked, its bytes held and stored, its row committed.

The write half of `ImageService.upload`, which fetches URLs and wakes the workers around it.
A bad item fails alone (status 3) and the others go on. The order of writes makes a crash at
any point safe: a hold on the bytes is committed before they are stored, so no sweep takes
them, and the rows that point at them commit last, releasing the holds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..errors import BlobHoldLost, FetchError, ValidationError, ViewfinderError
from .duplicates import exact_copy
from .fetch_pool import FetchOutcome
from .file_names import clean_file_name, file_name_of_url
from .ingest import IngestLimits, inspect_image
from .metadata_rules import servable_text
from .ports import BlobStore, MetadataStore
from .records import ImageRecord, IndexingStatus, UploadItem

log = logging.getLogger(__name__)

# An upload whose holds were swept (it took longer than the grace period) stores again; twice
# more at most, then it answers 503.
COMMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class UploadStores:
    """What storing an upload writes to, and the rules and clock it goes by."""

    metadata: MetadataStore
    blobs: BlobStore
    limits: IngestLimits
    clock: Callable[[], float]


def store_uploads(
    stores: UploadStores,
    tenant: str,
    items: Sequence[UploadItem],
    fetched: Sequence[FetchOutcome | None],
) -> list[ImageRecord]:
    """Store each item (its URL's bytes in `fetched`) and commit the rows; one record each."""
    records: list[ImageRecord] = []
    for item, outcome in zip(items, fetched, strict=True):
        records.append(ingest_item(stores, tenant, item, outcome, earlier=records))
    return _commit(stores, tenant, items, fetched, records)


def _commit(
    stores: UploadStores,
    tenant: str,
    items: Sequence[UploadItem],
    fetched: Sequence[FetchOutcome | None],
    records: list[ImageRecord],
) -> list[ImageRecord]:
    """Commit the rows of ingested items, releasing the holds on their bytes; return them.

    An upload slower than the sweep grace period may find its holds (and maybe its bytes)
    swept: those items are held and stored again, under the same ids, and committed again.
    """
    attempt = 1
    while True:
        try:
            # a deduplicated item names an image that exists already: nothing to insert
            stores.metadata.insert_images(
                [r for r in records if r.duplicate_of != r.image_id], held=True
            )
            return records
        except BlobHoldLost as lost:
            if attempt == COMMIT_ATTEMPTS:
                # What these items stored last goes after the grace period, like a dead
                # upload's bytes: hold it again, for the sweeper to find.
                for r in records:
                    if r.image_id in lost.image_ids and r.sha256:
                        stores.metadata.hold_blob(r.image_id, r.sha256, stores.clock())
                raise
            attempt += 1
            log.warning("%d uploads outlasted their holds; storing again", len(lost.image_ids))
            records = [
                ingest_item(stores, tenant, item, outcome, r.image_id)
                if r.image_id in lost.image_ids
                else r
                for r, item, outcome in zip(records, items, fetched, strict=True)
            ]


def ingest_item(
    stores: UploadStores,
    tenant: str,
    item: UploadItem,
    fetched: FetchOutcome | None,
    image_id: str | None = None,
    earlier: Sequence[ImageRecord] = (),
) -> ImageRecord:
    """Check one item and store its bytes (held); its record, uncommitted (failed: status 3).

    `earlier` are the records of the same upload before it: a copy among them is a duplicate
    too, though not committed yet."""
    now = stores.clock()
    url = None if item.url is None else servable_text(item.url)  # storable, even if bad
    base = ImageRecord(
        image_id=image_id or str(uuid.uuid4()),
        tenant=tenant,
        status=IndexingStatus.FAILED,
        upload_timestamp=now,
        metadata=item.metadata,
        source_url=url,
        file_name=(clean_file_name(item.filename) if url is None else file_name_of_url(url)),
    )
    try:
        data = item.read(stores.limits.max_file_bytes + 1)
        if data is None:
            if not item.url:
                raise ValidationError("an upload item needs bytes or a URL")
            if url != item.url:
                raise ValidationError("image URL is not valid Unicode (a lone surrogate)")
            if fetched is None:
                raise ValidationError("an image URL was not fetched")
            if isinstance(fetched, FetchError):
                raise fetched
            data = fetched.data
        info = inspect_image(data, stores.limits)
        copy = exact_copy(stores.metadata, tenant, info.sha256, earlier)
        if copy is not None and item.dedupe:
            return replace(copy, duplicate_of=copy.image_id)  # stores nothing
        # Hold first: from then until the row commits, no sweep can take these bytes (the
        # hold is committed before `put` looks whether they are stored already).
        stores.metadata.hold_blob(base.image_id, info.sha256, stores.clock())
        stores.blobs.put(info.sha256, data)
    except ViewfinderError as exc:
        log.info("upload item rejected: %s", exc.message)
        return replace(base, error=exc.message)
    status = IndexingStatus.QUEUED if item.index else IndexingStatus.STORED
    return replace(
        base,
        status=status,
        sha256=info.sha256,
        content_type=info.content_type,
        size_bytes=info.size_bytes,
        width=info.width,
        height=info.height,
        exif=info.exif,
        phash=info.phash,
        duplicate_of=None if copy is None else copy.image_id,
    )


def url_items(items: Sequence[UploadItem]) -> list[tuple[int, str]]:
    """(position, URL) of each item whose bytes are still to be fetched."""
    return [(n, i.url) for n, i in enumerate(items) if i.url is not None and i.data is None]


def aligned(
    count: int, wanted: list[tuple[int, str]], outcomes: Sequence[FetchOutcome]
) -> list[FetchOutcome | None]:
    """The fetch outcomes of `wanted` at their items' positions (None for the other items)."""
    placed: list[FetchOutcome | None] = [None] * count
    for (n, _), outcome in zip(wanted, outcomes, strict=True):
        placed[n] = outcome
    return placed
