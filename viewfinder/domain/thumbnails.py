"""Thumbnails: JPEG renderings of an image's bytes, cached on disk by content hash and size.

Made once per (content hash, size) with Pillow, EXIF orientation applied; two images with the
same bytes share them. The API serves them (`api.web`), and so do `LocalClient` and the MCP
tools, which is why they live here and not with HTTP.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path

from ..errors import NotFound
from .ingest import decode_rgb
from .records import ImageRecord
from .service import ImageService

log = logging.getLogger(__name__)

# A requested size is rounded up to one of these, so one image has at most this many files.
THUMBNAIL_SIZES = (64, 128, 256, 512, 1024)


class ThumbnailCache:
    """JPEG thumbnails on disk, named by content hash and size, written atomically."""

    def __init__(self, root: Path, max_pixels: int) -> None:
        self.root = root
        self.max_pixels = max_pixels

    @staticmethod
    def bucket(size: int) -> int:
        """The cached size that serves a request for `size` pixels."""
        return next((s for s in THUMBNAIL_SIZES if s >= size), THUMBNAIL_SIZES[-1])

    def _path(self, sha256: str, size: int) -> Path:
        return self.root / sha256[:2] / f"{sha256}-{size}.jpg"

    def get(self, service: ImageService, record: ImageRecord, size: int) -> bytes:
        """The thumbnail of an image, made on first use."""
        if record.sha256 is None:
            raise NotFound(f"image {record.image_id} has no stored bytes ({record.error})")
        size = self.bucket(size)
        path = self._path(record.sha256, size)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        image = decode_rgb(
            service.read_bytes(record),
            self.max_pixels,
            max_side=size,
            budget=service.limits.budget,
        )
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85, optimize=True)
        data = buf.getvalue()
        try:
            self._store(path, data)
        except OSError as exc:  # a full or read-only disk: serve it uncached
            log.warning("thumbnail not cached (%s): %s", path, exc.strerror or exc)
        return data

    @staticmethod
    def _store(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Concurrent first requests may both render; each renames a complete file into place.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def discard(self, sha256: str) -> None:
        """Remove every cached size of one content hash."""
        for size in THUMBNAIL_SIZES:
            self._path(sha256, size).unlink(missing_ok=True)

    def discard_unused(self, service: ImageService, record: ImageRecord) -> None:
        """After a delete: drop the thumbnails unless another image has the same bytes."""
        if record.sha256 and not service.metadata.sha_in_use(record.sha256):
            self.discard(record.sha256)
