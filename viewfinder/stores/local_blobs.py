"""Image bytes in a local folder, content-addressed (`ab/cd/<sha256>`), written atomically.

Each object is written to a temporary file under `.partial/`, fsynced, then renamed into
place: readers only ever see whole objects, and what a crash mid-write leaves behind sits in
one folder that `sweep_partial` empties, without walking the objects.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import NotFound, Unavailable, ValidationError

_SHA = re.compile(r"^[0-9a-f]{64}$")


class LocalBlobStore:
    """A folder of immutable objects named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial = root / ".partial"
        self._partial.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise ValidationError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # same file system as the objects, so the rename is atomic
        fd, tmp = tempfile.mkstemp(dir=self._partial, prefix=f"{sha256[:16]}-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound("image bytes not found") from exc

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def sweep_partial(self, before: float) -> int:
        removed = 0
        for entry in os.scandir(self._partial):
            try:
                if entry.is_file() and entry.stat().st_mtime < before:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass  # renamed into place or removed meanwhile
        return removed

    def ping(self, timeout_s: float) -> None:
        del timeout_s  # a local folder: it answers or raises at once
        if not os.access(self._partial, os.W_OK | os.X_OK):
            raise Unavailable(f"the image folder {self.root} is missing or not writable")

    def local_path(self, sha256: str) -> Path | None:
        """The file holding these bytes, when stored (for `file://` links in local use)."""
        path = self._path(sha256)
        return path if path.is_file() else None

    def close(self) -> None:
        return None
