"""Image rows in PostgreSQL: the columns of `images`, a row as an `ImageRecord` and back, and
what the store's mixins (`postgres_jobs`, `postgres_blob_holds`, `postgres_transfer`) need of
the store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import psycopg

from ..domain.metadata_rules import load_stored_metadata
from ..domain.records import ImageRecord, IndexingStatus
from .perceptual_hash_sql import COLUMN as PHASH_COLUMN
from .tags_exif_sql import COLUMNS as TAGS_EXIF_COLUMNS
from .tags_exif_sql import load_exif, load_tags
from .tags_exif_sql import values as tags_exif_values


class Sql(Protocol):
    """What a mixin needs of the store: a write transaction and a read."""

    def _tx(self) -> AbstractContextManager[psycopg.Cursor[dict[str, Any]]]: ...
    def _query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]: ...


IMAGE_COLUMNS = (
    "image_id, tenant, status, upload_ts, metadata, sha256, content_type, size_bytes, "
    "width, height, error, source_url, file_name, " + TAGS_EXIF_COLUMNS + ", " + PHASH_COLUMN
)
IMAGE_MARKS = ", ".join(["%s"] * (IMAGE_COLUMNS.count(",") + 1))


def record(row: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        image_id=row["image_id"],
        tenant=row["tenant"],
        status=IndexingStatus(row["status"]),
        upload_timestamp=row["upload_ts"],
        metadata=load_stored_metadata(row["metadata"]),  # a bad row never fails a read
        sha256=row["sha256"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        width=row["width"],
        height=row["height"],
        error=row["error"],
        source_url=row["source_url"],
        file_name=row["file_name"],
        tags=load_tags(row["tags"]),
        exif=load_exif(row["exif"]),
        phash=row["phash"],
    )


def values(r: ImageRecord) -> tuple[Any, ...]:
    """An image's values in `IMAGE_COLUMNS` order."""
    return (
        r.image_id,
        r.tenant,
        int(r.status),
        r.upload_timestamp,
        json.dumps(r.metadata),
        r.sha256,
        r.content_type,
        r.size_bytes,
        r.width,
        r.height,
        r.error,
        r.source_url,
        r.file_name,
        *tags_exif_values(r.tags, r.exif),
        r.phash,
    )
