"""`LocalClient`: the calls of `viewfinder.Client` over a data directory in this process.

What `viewfinder index`, `search`, `images` and `mcp` use without `--server`: no server, no
key, one tenant. Results and errors are those of `viewfinder.client` (errors are the library's
own `ViewfinderError`s, of which the remote client's errors are subclasses).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from . import errors
from .client import (
    DeleteResult,
    Duplicate,
    DuplicateGroup,
    Image,
    ImageInput,
    Metadata,
    SearchResult,
    Status,
    Switch,
    UploadResult,
)
from .client._models import exif_of, tags_of
from .client._similar import ExampleImage
from .client._uploads import plan_upload
from .client._waiting import indexing_timeout, still_queued

if TYPE_CHECKING:
    from pathlib import Path

    from .config import Settings
    from .domain.in_place import InPlaceReport
    from .domain.records import ImageRecord, SearchHit
    from .domain.thumbnails import ThumbnailCache


# most unneeded image files one `close` looks at, so that a command exits promptly
_SWEEP_AT_CLOSE = 1000


class LocalClient:
    """The calls of `Client` over a data directory in this process: no server, no key.

    Images are indexed by `wait_until_indexed` / `process_queue` in the calling thread, or
    continuously by background threads when `background=True`. It owns the data directory
    while open: on the directory of a running server it raises ConfigurationError (use
    `Client` against that server instead).
    """

    def __init__(
        self, settings: Settings, tenant: str = "default", *, background: bool = False
    ) -> None:
        from .bootstrap import blob_sweeper, build_service, worker_options
        from .indexing.worker import IndexingWorker, WorkerPool
        from .stores.factory import is_multi_process

        self.settings = settings
        self.tenant = tenant
        self.service = build_service(settings)
        try:
            # On shared stores other processes may hold leases: never release them from here.
            self.service.start(single_process=not is_multi_process(settings))
        except BaseException:
            self.service.close()
            raise
        self._worker = IndexingWorker(self.service, worker_options(settings))
        self._pool: WorkerPool | None = None
        # image bytes no image needs any more go once the grace period has passed: on a
        # thread while in the background, and in one bounded pass at close
        self._sweeper = blob_sweeper(settings, self.service)
        if background:
            self._pool = WorkerPool(self.service, worker_options(settings), settings.workers)
            self._pool.start()
            self._sweeper.start()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop indexing and close the stores."""
        if self._pool is not None:
            self._pool.stop()
        self._worker.close()
        self._sweeper.stop()
        try:
            self._sweeper.sweep_once(limit=_SWEEP_AT_CLOSE)
        except errors.ViewfinderError as exc:  # the marks stay for the next run
            logging.getLogger(__name__).warning("could not remove unneeded images: %s", exc)
        self.service.close()

    def _url(self, sha256: str | None) -> str:
        """A `file://` link to the bytes when a local file holds them (a local blob folder,
        or the user's own file for images indexed in place), else ""."""
        from .stores.in_place_blobs import InPlaceBlobStore

        blobs = self.service.blobs
        if sha256 is None or not isinstance(blobs, InPlaceBlobStore):
            return ""
        path = blobs.local_path(sha256)
        return path.resolve().as_uri() if path is not None else ""

    def _image(self, r: ImageRecord) -> Image:
        return Image(
            image_id=r.image_id,
            image_url=self._url(r.sha256),
            indexing_status=int(r.status),
            upload_timestamp=r.upload_timestamp,
            metadata=r.metadata,
            status=r.status.label,
            width=r.width,
            height=r.height,
            content_type=r.content_type,
            size_bytes=r.size_bytes,
            error=r.error,
            sha256=r.sha256,
            file_name=r.file_name,
            tags=tags_of([t.to_dict() for t in r.tags]),
            exif=exif_of(None if r.exif is None else r.exif.to_dict()),
        )

    def upload(
        self,
        images: Sequence[ImageInput] | ImageInput,
        *,
        metadata: Metadata = None,
        index: bool = True,
    ) -> list[UploadResult]:
        """See `Client.upload` (URLs are fetched under the same guards as the server's)."""
        from .domain.records import UploadItem

        plan = plan_upload(images, metadata, index)
        sources = [UploadItem(data=data, filename=name) for name, data, _ in plan.parts]
        sources += [UploadItem(url=url) for url in plan.urls]
        items = [
            UploadItem(data=i.data, filename=i.filename, url=i.url, index=index, metadata=m)
            for i, m in zip(sources, plan.metadata, strict=True)
        ]
        records = self.service.upload(self.tenant, items)
        return plan.in_callers_order(
            [
                UploadResult(
                    image_id=r.image_id,
                    image_url=self._url(r.sha256),
                    indexing_status=int(r.status),
                    upload_timestamp=r.upload_timestamp,
                    status=r.status.label,
                    error=r.error,
                    duplicate_of=r.duplicate_of,
                )
                for r in records
            ]
        )

    def search(
        self,
        query: str,
        *,
        max_results: int = 10,
        threshold: float | None = None,
        search_mode: str = "vision",
        image_weight: float | None = None,
        text_weight: float | None = None,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> list[SearchResult]:
        """See `Client.search`."""
        from .domain.filters import parse_filter
        from .domain.service import SearchRequest

        if not 1 <= max_results <= 200:
            raise errors.ValidationError("max_results must be 1..200", param="max_results")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise errors.ValidationError("threshold must be 0..1", param="threshold")
        if search_mode not in ("vision", "joined"):
            raise errors.ValidationError(
                "search_mode must be 'vision' or 'joined'", param="search_mode"
            )
        hits = self.service.search(
            self.tenant,
            SearchRequest(
                query,
                max_results,
                threshold,
                search_mode,
                image_weight,
                text_weight,
                filter=None if filter is None else parse_filter(filter),
            ),
        )
        return [self._result(h) for h in hits]

    def _result(self, h: SearchHit) -> SearchResult:
        return SearchResult(
            image_id=h.record.image_id,
            image_url=self._url(h.record.sha256),
            score=round(h.score, 6),
            upload_timestamp=h.record.upload_timestamp,
            image_metadata=h.record.metadata,
            file_name=h.record.file_name,
            tags=tags_of([t.to_dict() for t in h.record.tags]),
            exif=exif_of(None if h.record.exif is None else h.record.exif.to_dict()),
        )

    def search_similar(
        self,
        image_id: str | None = None,
        path: ExampleImage | None = None,
        *,
        query: str | None = None,
        max_results: int = 10,
        threshold: float | None = None,
        text_weight: float | None = None,
        image_weight: float | None = None,
        include_self: bool = False,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> list[SearchResult]:
        """See `Client.search_similar`."""
        from .client._similar import similar_request
        from .domain.filters import parse_filter
        from .domain.service import SearchRequest

        # the same checks as the client's request, then the service directly
        request = similar_request(
            image_id,
            path,
            query=query,
            max_results=max_results,
            threshold=threshold,
            text_weight=text_weight,
            image_weight=image_weight,
            include_self=include_self,
            filter=filter,
        )
        if not 1 <= max_results <= 200:
            raise errors.ValidationError("max_results must be 1..200", param="max_results")
        image = None if request.files is None else request.files["image"][1]
        hits = self.service.search(
            self.tenant,
            SearchRequest(
                query=query or "",
                max_results=max_results,
                threshold=threshold,
                text_weight=text_weight,
                image_weight=image_weight,
                image_id=image_id,
                image=image,
                include_self=include_self,
                filter=None if filter is None else parse_filter(filter),
            ),
        )
        return [self._result(h) for h in hits]

    def duplicates(self) -> list[DuplicateGroup]:
        """See `Client.duplicates`."""
        return [
            DuplicateGroup(g.similarity, [self._image(r) for r in g.records])
            for g in self.service.duplicate_groups(self.tenant)
        ]

    def duplicates_of(self, image_id: str) -> list[Duplicate]:
        """See `Client.duplicates_of`."""
        return [
            Duplicate(**_fields(self._image(m.record)), similarity=m.similarity, hamming=m.hamming)
            for m in self.service.duplicates_of(self.tenant, image_id)
        ]

    def list_images(
        self,
        limit: int = 100,
        offset: int = 0,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> list[Image]:
        """See `Client.list_images`."""
        from .domain.filters import parse_filter

        where = None if filter is None else parse_filter(filter)
        return [self._image(r) for r in self.service.list_images(self.tenant, limit, offset, where)]

    def iter_images(
        self,
        page_size: int = 1000,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> Iterator[Image]:
        """See `Client.iter_images`."""
        offset = 0
        while True:
            page = self.list_images(page_size, offset, filter)
            yield from page
            if len(page) < page_size:
                return
            offset += page_size

    def get_image(self, image_id: str) -> Image:
        """See `Client.get_image`."""
        return self._image(self.service.get(self.tenant, image_id))

    def delete_image(self, image_id: str) -> DeleteResult:
        """See `Client.delete_image`."""
        record = self.service.delete(self.tenant, image_id)
        self._thumbnails().discard_unused(self.service, record)
        return DeleteResult(status="success", message=f"image {image_id} deleted")

    def status(self) -> Status:
        """See `Client.status`."""
        s = self.service.queue_status(self.tenant)
        switch = None if s.switch is None else Switch(**asdict(s.switch))
        return Status(s.model_id, s.stored, s.queued, s.indexed, s.failed, switch)

    def thumbnail(self, image_id: str, size: int = 256) -> bytes:
        """See `Client.thumbnail`."""
        record = self.service.get(self.tenant, image_id)
        return self._thumbnails().get(self.service, record, size)

    def _thumbnails(self) -> ThumbnailCache:
        from .domain.thumbnails import ThumbnailCache

        return ThumbnailCache(self.settings.data_dir / "thumbnails", self.settings.max_pixels)

    def download(self, image: Image | UploadResult | SearchResult | str) -> bytes:
        """The original bytes of an image (given as an object or an id)."""
        image_id = image if isinstance(image, str) else image.image_id
        return self.service.read_bytes(self.service.get(self.tenant, image_id))

    def index_in_place(
        self,
        files: Sequence[Path],
        roots: Sequence[Path],
        progress: Callable[[int], None] | None = None,
    ) -> InPlaceReport:
        """Index `files` where they are, without copying them (see `domain.in_place`): moved,
        changed and deleted files under `roots` are noticed; nothing is written there.
        Queues what is new; `process_queue` (or the background threads) indexes it."""
        from .domain.in_place import InPlaceIndexer

        report = InPlaceIndexer(self.service, self.tenant).sync(files, roots, progress)
        for record in report.deleted:  # the thumbnails of what is gone go too
            self._thumbnails().discard_unused(self.service, record)
        return report

    def process_queue(self, timeout_s: float = 3600.0) -> None:
        """Index everything queued, in this thread."""
        self._worker.drain(timeout_s)

    def wait_until_indexed(
        self, image_ids: Iterable[str], timeout_s: float = 60.0, poll_s: float = 0.1
    ) -> list[Image]:
        """Index (or, with background threads, wait for) the given images; see
        `Client.wait_until_indexed` (raises `IndexingTimeout` when time runs out)."""
        ids = list(image_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._pool is None:
                self._worker.drain(max(0.0, deadline - time.monotonic()))
            images = [self.get_image(i) for i in ids]
            if not still_queued(images):
                return images
            if time.monotonic() >= deadline:
                raise indexing_timeout(images, timeout_s)
            time.sleep(poll_s)


def _fields(image: Image) -> dict[str, Any]:
    """An image's fields as they are (not converted to dicts, as `asdict` would)."""
    return {f.name: getattr(image, f.name) for f in fields(image)}
