"""Indexing files in place: the index refers to the user's files where they are.

Each file is known by path, size, mtime and content hash (`InPlaceFile`); its bytes are never
copied into the blob store (`stores.in_place_blobs` reads them from the file). A run over some
files and the folders they were found in compares them with what is known:

- unchanged: same path, size and mtime; not even read;
- changed: same path, another size or mtime; read; other content: its image is replaced;
- moved: a new path whose content is that of a known file now missing; the record follows
  the file (same image, no duplicate);
- new: validated, recorded and queued for indexing;
- deleted: a known file under the folders given that is gone and did not move; its image
  is deleted (the file was gone already; nothing ever deletes a user's file).

Files are only read, never written. Content already stored for the tenant (copied, or in place
at another path) is not indexed twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ViewfinderError
from .file_names import clean_file_name
from .ingest import inspect_image
from .ports import InPlaceFile
from .records import ImageRecord, IndexingStatus
from .service import ImageService

log = logging.getLogger(__name__)

BATCH = 32  # files recorded per commit


@dataclass
class InPlaceReport:
    """What a run found and did; paths are absolute, as recorded."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (from, to)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    duplicates: int = 0  # content already stored at another path or as a copy
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    queued: dict[str, str] = field(default_factory=dict)  # image id -> path, to be indexed
    deleted: list[ImageRecord] = field(default_factory=list)  # images of changed/removed files


def _under(path: str, roots: Sequence[Path]) -> bool:
    p = Path(path)
    return any(p == root or root in p.parents for root in roots)


class InPlaceIndexer:
    """Brings one tenant's in-place records in line with the files on disk."""

    def __init__(
        self, service: ImageService, tenant: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.service = service
        self.tenant = tenant
        self._clock = clock

    def sync(
        self,
        files: Sequence[Path],
        roots: Sequence[Path],
        progress: Callable[[int], None] | None = None,
    ) -> InPlaceReport:
        """Record `files` (absolute paths) in place; known files under `roots` (the folders
        and files the user named) that are gone are removed. `progress(n)` is called after
        each batch of `n` files is committed (e.g. to index what was queued)."""
        meta = self.service.metadata
        meta.purge_in_place_files()
        self._report = report = InPlaceReport()
        self._known = {f.path: f for f in meta.in_place_files(self.tenant)}
        self._stored = self._stored_content()
        walked = {str(p) for p in files}
        # Known files missing from disk: each may reappear at a new path (a move).
        self._missing: dict[str, list[InPlaceFile]] = {}
        for f in self._known.values():
            if f.path not in walked and not os.path.lexists(f.path):
                self._missing.setdefault(f.sha256, []).append(f)
        self._records: list[ImageRecord] = []
        self._files: list[InPlaceFile] = []
        done = 0
        for path in files:
            self._visit(path)
            done += 1
            if done % BATCH == 0:
                self._flush()
                if progress is not None:
                    progress(BATCH)
        self._flush()
        if progress is not None and done % BATCH:
            progress(done % BATCH)
        for left in self._missing.values():
            for f in left:
                if _under(f.path, roots):
                    self._delete(f)
                    report.removed.append(f.path)
        return report

    def _stored_content(self) -> dict[str, int]:
        """How many usable images of the tenant hold each content hash."""
        counts: dict[str, int] = {}
        offset, page = 0, 1000
        while True:
            rows = self.service.metadata.list_images(self.tenant, page, offset)
            for r in rows:
                if r.sha256 and r.status != IndexingStatus.FAILED:
                    counts[r.sha256] = counts.get(r.sha256, 0) + 1
            if len(rows) < page:
                return counts
            offset += page

    def _visit(self, path: Path) -> None:
        report, p = self._report, str(path)
        try:
            stat = path.stat()
        except OSError as exc:
            report.failures.append((p, f"cannot read: {exc.strerror or exc}"))
            return
        old = self._known.get(p)
        if old is not None and (old.size_bytes, old.mtime) == (stat.st_size, stat.st_mtime):
            report.unchanged += 1
            return
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.failures.append((p, f"cannot read: {exc.strerror or exc}"))
            return
        sha = hashlib.sha256(data).hexdigest()
        seen = InPlaceFile("", self.tenant, p, sha, stat.st_size, stat.st_mtime)  # id: below
        if old is not None:
            if old.sha256 == sha:  # touched, not changed: remember the new mtime
                self._files.append(_with_id(seen, old.image_id))
                report.unchanged += 1
                return
            self._delete(old)
            report.changed.append(p)
        moved_from = self._missing.get(sha)
        if moved_from:
            was = moved_from.pop()
            self._files.append(_with_id(seen, was.image_id))
            report.moved.append((was.path, p))
            return
        if self._stored.get(sha):
            if old is None:  # (a changed file now like another stands for it, as it is)
                report.duplicates += 1
            return
        self._add(path, data, seen, changed=old is not None)

    def _add(self, path: Path, data: bytes, seen: InPlaceFile, *, changed: bool) -> None:
        try:
            info = inspect_image(data, self.service.limits)
        except ViewfinderError as exc:
            self._report.failures.append((seen.path, exc.message))
            return
        record = ImageRecord(
            image_id=str(uuid.uuid4()),
            tenant=self.tenant,
            status=IndexingStatus.QUEUED,
            upload_timestamp=self._clock(),
            sha256=info.sha256,
            content_type=info.content_type,
            size_bytes=info.size_bytes,
            width=info.width,
            height=info.height,
            file_name=clean_file_name(path.name),
            exif=info.exif,
        )
        self._records.append(record)
        self._files.append(_with_id(seen, record.image_id))
        self._stored[info.sha256] = self._stored.get(info.sha256, 0) + 1
        self._report.queued[record.image_id] = seen.path
        if not changed:
            self._report.new.append(seen.path)

    def _delete(self, f: InPlaceFile) -> None:
        try:
            self._report.deleted.append(self.service.delete(self.tenant, f.image_id))
        except ViewfinderError as exc:  # deleted meanwhile (another client): nothing to do
            log.info("in-place image %s: %s", f.image_id, exc.message)
        left = self._stored.get(f.sha256, 0) - 1
        self._stored[f.sha256] = max(0, left)

    def _flush(self) -> None:
        # Files first: an image row never exists without the record of where its bytes are.
        if self._files:
            self.service.metadata.add_in_place_files(self._files)
        if self._records:
            self.service.metadata.insert_images(self._records)
            self.service.queue_changed.set()
        self._files, self._records = [], []


def _with_id(f: InPlaceFile, image_id: str) -> InPlaceFile:
    return replace(f, image_id=image_id)
