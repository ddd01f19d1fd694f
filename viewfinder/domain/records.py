"""Records that cross module boundaries: images, keys, queue jobs, search hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, BinaryIO


class IndexingStatus(IntEnum):
    """The wire values of `indexing_status`."""

    STORED = 0
    QUEUED = 1
    INDEXED = 2
    FAILED = 3

    @property
    def label(self) -> str:
        """The name carried in the `status` extension field."""
        return self.name.lower()


@dataclass(frozen=True)
class Tag:
    """A concept the model sees in an image, with its confidence in [0, 1]."""

    name: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """The wire and stored form: `{"name", "confidence"}`."""
        return {"name": self.name, "confidence": round(float(self.confidence), 4)}


@dataclass(frozen=True)
class GpsPosition:
    """Where a photo was taken, in decimal degrees (WGS 84; south and west negative)."""

    lat: float
    lon: float


@dataclass(frozen=True)
class Exif:
    """What an image's EXIF block says about how it was taken (domain/exif.py reads it).

    `taken_at` is Unix seconds: the capture time with its EXIF offset, or read as UTC when the
    file gives none (cameras mostly write local time without a zone).
    """

    taken_at: float | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    gps: GpsPosition | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire and stored form, without the keys that are None."""
        out: dict[str, Any] = {
            "taken_at": self.taken_at,
            "make": self.make,
            "model": self.model,
            "orientation": self.orientation,
            "gps": None if self.gps is None else {"lat": self.gps.lat, "lon": self.gps.lon},
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class ImageRecord:
    """One stored image of one tenant."""

    image_id: str
    tenant: str
    status: IndexingStatus
    upload_timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    content_type: str | None = None
    size_bytes: int = 0
    width: int | None = None
    height: int | None = None
    error: str | None = None
    source_url: str | None = None
    file_name: str | None = None  # the upload's own name for it, sanitised
    tags: list[Tag] = field(default_factory=list)  # best first; set when indexed
    exif: Exif | None = None  # None: the file holds none of the fields Exif keeps
    phash: int | None = None  # 64-bit dHash (perceptual_hash.py), signed; None: not computed
    # Upload results only, never stored: an image of the same tenant with identical bytes
    # (equal to `image_id` when `dedupe` returned that image instead of storing a new one).
    duplicate_of: str | None = None


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (only its hash is kept)."""

    key_id: str
    tenant: str
    created_at: float
    rate_limits: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """A claimed indexing job."""

    image_id: str
    tenant: str
    sha256: str
    attempts: int


@dataclass(frozen=True)
class SearchHit:
    """One search result before it is turned into wire form."""

    record: ImageRecord
    score: float


@dataclass(frozen=True)
class UploadItem:
    """One image of an upload: bytes (from a file part) or a URL to fetch."""

    data: bytes | None = None
    filename: str | None = None
    url: str | None = None
    index: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    dedupe: bool = False  # bytes the tenant already has: return that image, store nothing
    # A file part spooled by the server, read only when this item is ingested, so that one
    # request holds one image's bytes in memory at a time, not all of them.
    file: BinaryIO | None = None

    def read(self, max_bytes: int) -> bytes | None:
        """The item's bytes (at most `max_bytes` of a file), or None for a URL item."""
        if self.data is not None or self.file is None:
            return self.data
        self.file.seek(0)
        return self.file.read(max_bytes)


@dataclass(frozen=True)
class UploadOutcome:
    """What happened to one upload item."""

    record: ImageRecord

    @property
    def error(self) -> str | None:
        """The reason a failed item failed."""
        return self.record.error
