"""The upload's `metadata` form field: bounded, parsed and checked (off the event loop).

A client declares a list of per-image requests and URLs in one JSON string; what it may
declare is bounded before anything is built from it (the field's size, the number of
entries, each image's metadata), so one request cannot hold the server's CPU for long.
Routes call `parse_upload_metadata` in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from starlette.formparsers import MultiPartParser

from ..domain.metadata_rules import MetadataLimits, check_metadata, parse_json
from ..errors import ValidationError
from . import schemas
from .upload_memory import parts_in_memory

MAX_URL_CHARS = 8192
# Bytes of a file part kept in memory before it goes to disk: the first parts of a request
# (a photo's worth each; 16, a typical client's batch) stay in memory, later ones spool
# early, so one request holds at most about 16 MiB + 64 KiB a part in memory however large
# it is; how many requests may do so at once is bounded by upload_memory.py.
PART_IN_MEMORY = 1024 * 1024
PARTS_IN_MEMORY = 16
REQUEST_IN_MEMORY = PART_IN_MEMORY * PARTS_IN_MEMORY  # what one request may hold, at most
SPOOL_FILE_PARTS_FROM = 64 * 1024
MAX_FORM_FIELDS = 32  # text fields of an upload: `metadata`, and a few a client may add


@dataclass(frozen=True)
class UploadRules:
    """What one upload request may declare."""

    max_images: int = 100
    max_field_bytes: int = 1_000_000
    metadata: MetadataLimits = field(default_factory=MetadataLimits)


class _SpoolThreshold:
    """Starlette's `MultiPartParser.spool_max_size`, chosen part by part.

    The parser reads it once for each file part it opens, when it opens it; the parts it
    opened before in the same request are in its `_files_to_close_on_error`. Where that list
    is missing (another Starlette), or the request found the server's upload memory spent
    (`upload_memory.parts_in_memory`), every part spools early.
    """

    def __get__(self, parser: object, owner: type | None = None) -> int:
        opened = getattr(parser, "_files_to_close_on_error", None)
        if opened is None or len(opened) >= PARTS_IN_MEMORY or not parts_in_memory():
            return SPOOL_FILE_PARTS_FROM
        return PART_IN_MEMORY


def spool_file_parts_to_disk() -> None:
    """Hold the first PARTS_IN_MEMORY file parts of a request in memory up to PART_IN_MEMORY
    bytes each, and spool the later ones to disk past SPOOL_FILE_PARTS_FROM bytes.

    Starlette keeps each file part in memory up to 1 MiB, so an upload of many parts under
    that size was held whole in memory (a 96 MB upload: +97 MB). Spooling every part past
    64 KiB fixed that, but then each photo of a typical upload went to disk chunk by chunk
    (a thread hop a chunk) and was read back. In interleaved runs of 480 photos in requests
    of 16, the server's upload CPU an image was 4.5 to 5.6 ms with every part spooled, 4.3 to
    4.6 ms with the first 8 parts in memory and 3.4 to 4.0 ms with 16; the 96 MB upload now
    grows the process by 18 MiB. The threshold is a class attribute of Starlette's parser, so
    this is set for the process, the same for every app.
    """
    MultiPartParser.spool_max_size = _SpoolThreshold()  # type: ignore[assignment]


def form_limits(rules: UploadRules) -> dict[str, int]:
    """FastAPI's limits on parsing an upload form.

    Each file part past SPOOL_FILE_PARTS_FROM bytes holds an open temporary file, so the
    number of parts is bounded while the form is read: one more than the images allowed, so
    that the route still answers a request just over the limit with its own 413; a request
    far over it is refused by the parser (400) before more files are opened.
    """
    return {
        "max_files": rules.max_images + 1,
        "max_fields": MAX_FORM_FIELDS,
        # counted as sent: an urlencoded form (a URL-only upload) percent-encodes a `"` in 3
        "max_part_size": 3 * rules.max_field_bytes,
    }


def parse_upload_metadata(raw: str | None, rules: UploadRules) -> schemas.UploadMetadata:
    """The `metadata` form field as a checked UploadMetadata, or a ValidationError naming
    the field at fault."""
    if raw is None or not raw.strip():
        return schemas.UploadMetadata()
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > rules.max_field_bytes:
        raise ValidationError(
            f"metadata is {size} bytes; at most {rules.max_field_bytes} "
            "(VIEWFINDER_MAX_UPLOAD_METADATA_BYTES)",
            param="metadata",
        )
    data: Any = parse_json(raw, "metadata")
    if isinstance(data, dict):
        for name in ("requests", "image_urls"):
            entries = data.get(name)
            if isinstance(entries, list) and len(entries) > rules.max_images:
                raise ValidationError(
                    f"metadata.{name} has {len(entries)} entries; an upload carries at most "
                    f"{rules.max_images} images (VIEWFINDER_MAX_IMAGES_PER_REQUEST)",
                    param=f"metadata.{name}",
                )
    try:
        parsed = schemas.UploadMetadata.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["metadata", *(str(p) for p in first["loc"])])
        raise ValidationError(f"{where}: {first['msg']}", param=where) from None
    for n, request in enumerate(parsed.requests):
        check_metadata(request.metadata, f"metadata.requests.{n}.metadata", rules.metadata)
    for n, url in enumerate(parsed.image_urls):
        if len(url) > MAX_URL_CHARS:
            raise ValidationError(
                f"metadata.image_urls.{n} is {len(url)} characters long; at most {MAX_URL_CHARS}",
                param=f"metadata.image_urls.{n}",
            )
    return parsed
