"""Storing an upload's items (domain/uploads.py), on the embedded stores."""

from __future__ import annotations

import hashlib

from tests.conftest import png_bytes
from viewfinder.domain.fetch import Fetched
from viewfinder.domain.fetch_pool import FetchOutcome
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.domain.uploads import UploadStores, aligned, ingest_item, store_uploads, url_items
from viewfinder.errors import FetchError


def stores_of(service: ImageService, now: float = 1000.0) -> UploadStores:
    return UploadStores(service.metadata, service.blobs, service.limits, lambda: now)


def test_a_bad_item_fails_alone_and_the_others_commit(service: ImageService) -> None:
    red = png_bytes((255, 0, 0))
    items = [
        UploadItem(data=red, filename="red.png"),
        UploadItem(data=b"not an image", filename="notes.png"),
        UploadItem(data=png_bytes((0, 0, 255)), index=False),
    ]
    records = store_uploads(stores_of(service), "acme", items, [None] * 3)
    assert [r.status for r in records] == [
        IndexingStatus.QUEUED,
        IndexingStatus.FAILED,
        IndexingStatus.STORED,
    ]
    assert "unsupported image type" in (records[1].error or "")
    assert records[0].upload_timestamp == 1000.0 and records[0].file_name == "red.png"
    # committed: the rows are there, the good bytes stored under their hash
    assert service.metadata.get_image("acme", records[0].image_id) is not None
    assert service.metadata.get_image("acme", records[1].image_id) is not None  # failed, kept
    assert service.blobs.get(hashlib.sha256(red).hexdigest()) == red


def test_a_copy_earlier_in_the_same_upload_is_a_duplicate(service: ImageService) -> None:
    red = png_bytes((255, 0, 0))
    items = [UploadItem(data=red), UploadItem(data=red, dedupe=True), UploadItem(data=red)]
    records = store_uploads(stores_of(service), "acme", items, [None] * 3)
    first = records[0].image_id
    assert records[1].image_id == first and records[1].duplicate_of == first  # nothing stored
    assert records[2].image_id != first and records[2].duplicate_of == first  # a new image
    assert len(service.list_images("acme", 10, 0)) == 2


def test_a_url_item_takes_its_fetched_bytes_or_its_fetch_error(service: ImageService) -> None:
    items = [
        UploadItem(data=png_bytes((0, 255, 0))),
        UploadItem(url="https://example.com/a.png"),
        UploadItem(url="https://example.com/b.png"),
    ]
    wanted = url_items(items)
    assert wanted == [(1, "https://example.com/a.png"), (2, "https://example.com/b.png")]
    body = png_bytes((1, 2, 3))
    outcomes: list[FetchOutcome] = [
        Fetched(data=body, content_type="image/png", final_url="https://example.com/a.png"),
        FetchError("host unreachable"),
    ]
    placed = aligned(len(items), wanted, outcomes)
    assert placed == [None, outcomes[0], outcomes[1]]
    stores = stores_of(service)
    got = ingest_item(stores, "acme", items[1], placed[1])
    assert got.status == IndexingStatus.QUEUED and got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.source_url == "https://example.com/a.png" and got.file_name == "a.png"
    failed = ingest_item(stores, "acme", items[2], placed[2])
    assert failed.status == IndexingStatus.FAILED and failed.error == "host unreachable"
    unfetched = ingest_item(stores, "acme", items[2], None)
    assert unfetched.error == "an image URL was not fetched"
