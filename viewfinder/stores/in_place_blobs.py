"""A blob store that also serves images indexed in place, from the user's own files.

Bytes the inner store holds come from it. Bytes it lacks are looked up among the files indexed
in place (`MetadataStore.in_place_files_with_sha`) and read from there, checked against their
hash: a file edited since it was indexed is not served as the image it was. Those files are
only ever read: `put` and `delete` reach the inner store alone, so deleting (or sweeping) an
image indexed in place never deletes the user's file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..domain.ports import BlobStore, InPlaceFile
from ..errors import NotFound

log = logging.getLogger(__name__)


class InPlaceBlobStore:
    """`inner`, plus read-only access to the files indexed in place that `files_with` finds."""

    def __init__(self, inner: BlobStore, files_with: Callable[[str], list[InPlaceFile]]) -> None:
        self.inner = inner
        self._files_with = files_with

    def put(self, sha256: str, data: bytes) -> None:
        """Store a copy in the inner store (uploads; never in the user's folders)."""
        self.inner.put(sha256, data)

    def get(self, sha256: str) -> bytes:
        """The bytes, from the inner store or else from a file indexed in place."""
        try:
            return self.inner.get(sha256)
        except NotFound:
            pass
        files = self._files_with(sha256)
        for f in files:
            try:
                data = Path(f.path).read_bytes()
            except OSError as exc:
                log.info("cannot read %s: %s", f.path, exc)
                continue
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
        if files:
            raise NotFound(
                f"{files[0].path} was moved, changed or deleted since it was indexed; "
                "run `viewfinder index --in-place` on its folder again"
            )
        raise NotFound("image bytes not found")

    def exists(self, sha256: str) -> bool:
        """Whether the inner store holds a copy. Files indexed in place do not count: a
        caller deciding whether to store bytes must not rely on a file the user may delete."""
        return self.inner.exists(sha256)

    def delete(self, sha256: str) -> None:
        """Delete the inner store's copy; files indexed in place are never deleted."""
        self.inner.delete(sha256)

    def local_path(self, sha256: str) -> Path | None:
        """A local file holding these bytes, if any: the inner store's (a local folder) or a
        file indexed in place that is unchanged since (same size and mtime)."""
        own = getattr(self.inner, "local_path", None)
        path = own(sha256) if callable(own) else None
        if path is not None:
            return Path(path)
        for f in self._files_with(sha256):
            try:
                stat = Path(f.path).stat()
            except OSError:
                continue
            if stat.st_size == f.size_bytes and stat.st_mtime == f.mtime:
                return Path(f.path)
        return None

    def ping(self, timeout_s: float) -> None:
        """Whether the inner store answers (files in place are checked as they are read)."""
        self.inner.ping(timeout_s)

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Any other part of the blob store protocol (sweeping interrupted writes...) is the
        # inner store's business.
        if name == "inner":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
