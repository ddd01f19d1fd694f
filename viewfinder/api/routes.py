"""HTTP routes: parse the wire format, call the ImageService, shape the reply. Nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..domain.filters import parse_filter, parse_filter_json
from ..domain.metadata_rules import servable_metadata
from ..domain.records import ImageRecord, SearchHit, UploadItem
from ..domain.service import SearchRequest
from ..errors import PayloadTooLarge, ValidationError
from . import schemas
from .deps import KeyFirstRoute, caller, context, image_url, key_first
from .upload_form import parse_upload_metadata
from .web import discard_thumbnails

router = APIRouter(tags=["images"], route_class=KeyFirstRoute)
MAX_OFFSET = 2**31 - 1  # far past any listing, and within every store's integer range
files_router = APIRouter(tags=["files"])
FILTER_PARAM_DOC = (
    'Extension: a JSON-encoded filter, e.g. {"metadata.album": "trip"}; fields, operators '
    "and limits: README, section Filters."
)


def _image_object(request: Request, r: ImageRecord) -> schemas.ImageObject:
    return schemas.ImageObject(
        image_id=r.image_id,
        image_url=image_url(request, r.image_id),
        indexing_status=int(r.status),
        status=r.status.label,
        upload_timestamp=r.upload_timestamp,
        metadata=servable_metadata(r.metadata),  # a row stored before the rules never 500s
        width=r.width,
        height=r.height,
        content_type=r.content_type,
        size_bytes=r.size_bytes,
        error=r.error,
        sha256=r.sha256,
        file_name=r.file_name,
        **_tags_and_exif(r),
    )


def _tags_and_exif(r: ImageRecord) -> dict[str, Any]:
    """The `tags` and `exif` extension fields of an image (None: left out of the reply)."""
    return {
        "tags": [schemas.Tag(**t.to_dict()) for t in r.tags] or None,
        "exif": None if r.exif is None else schemas.Exif.model_validate(r.exif.to_dict()),
    }


@router.post(
    "/images/upload", response_model=schemas.UploadResponse, response_model_exclude_none=True
)
@key_first("upload")
async def upload_images(
    request: Request,
    images: Annotated[list[UploadFile] | None, File(description="Image files.")] = None,
    metadata: Annotated[
        str | None, Form(description="JSON string with `requests` and `image_urls`.")
    ] = None,
) -> schemas.UploadResponse:
    """Upload images (file parts and/or URLs); indexing happens in the background."""
    key = caller(request, "upload")
    ctx = context(request)
    # Parsing and checking a large field is CPU work: off the event loop.
    parsed = await run_in_threadpool(parse_upload_metadata, metadata, ctx.uploads)
    files = images or []
    count = len(files) + len(parsed.image_urls)
    if count == 0:
        raise ValidationError(
            "no images: send one or more file parts named `images`, or URLs in "
            "`metadata.image_urls`",
            param="images",
        )
    if count > ctx.max_images_per_request:
        raise PayloadTooLarge(
            f"{count} images in one request; at most {ctx.max_images_per_request} "
            "(VIEWFINDER_MAX_IMAGES_PER_REQUEST)",
            param="images",
        )
    items: list[UploadItem] = []
    for n in range(count):
        req = parsed.requests[n] if n < len(parsed.requests) else schemas.UploadRequestItem()
        common: dict[str, Any] = {
            "index": req.indexing_config.index,
            "metadata": req.metadata,
            "dedupe": req.indexing_config.dedupe,
        }
        if n < len(files):
            # the spooled file itself: the service reads one image's bytes at a time
            upload = files[n]
            items.append(UploadItem(file=upload.file, filename=upload.filename, **common))
        else:
            items.append(UploadItem(url=parsed.image_urls[n - len(files)], **common))
    # URLs are fetched on the fetch pool's threads and awaited here, holding no thread of the
    # pool that serves the other requests, however slow they are.
    fetched = await ctx.service.fetch_urls_async(items)
    records = await run_in_threadpool(ctx.service.upload, key.tenant, items, fetched)
    return schemas.UploadResponse(
        results=[
            schemas.UploadResult(
                image_id=r.image_id,
                image_url=image_url(request, r.image_id),
                indexing_status=int(r.status),
                status=r.status.label,
                upload_timestamp=r.upload_timestamp,
                error=r.error,
                duplicate_of=r.duplicate_of,
            )
            for r in records
        ]
    )


@router.get("/images", response_model=schemas.ImageList, response_model_exclude_none=True)
def list_images(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    filter: Annotated[str | None, Query(description=FILTER_PARAM_DOC)] = None,  # noqa: A002
) -> schemas.ImageList:
    """The caller's images, newest first."""
    key = caller(request, "list")
    where = None if filter is None else parse_filter_json(filter)
    records = context(request).service.list_images(key.tenant, limit, offset, where)
    return schemas.ImageList(results=[_image_object(request, r) for r in records])


@router.get(
    "/images/{image_id}", response_model=schemas.ImageObject, response_model_exclude_none=True
)
def get_image(request: Request, image_id: str) -> schemas.ImageObject:
    """One image."""
    key = caller(request, "get")
    return _image_object(request, context(request).service.get(key.tenant, image_id))


@router.delete("/images/{image_id}", response_model=schemas.DeleteResponse)
def delete_image(request: Request, image_id: str) -> schemas.DeleteResponse:
    """Delete an image from storage, listing and search."""
    key = caller(request, "delete")
    record = context(request).service.delete(key.tenant, image_id)
    discard_thumbnails(request, record)
    return schemas.DeleteResponse(status="success", message=f"image {image_id} deleted")


@router.post(
    "/images/search", response_model=schemas.SearchResponse, response_model_exclude_none=True
)
@key_first("search")
def search_images(request: Request, body: schemas.SearchBody) -> schemas.SearchResponse:
    """Find the caller's indexed images that match a description, one of their images
    (`image_id`), or both."""
    key = caller(request, "search")
    hits = context(request).service.search(
        key.tenant,
        SearchRequest(
            query=body.query or "",
            max_results=body.max_results,
            threshold=body.threshold,
            search_mode=body.search_mode,
            image_weight=body.image_weight,
            text_weight=body.text_weight,
            image_id=body.image_id,
            include_self=body.include_self,
            filter=None if body.filter is None else parse_filter(body.filter),
        ),
    )
    return _search_response(request, hits)


Weight = Annotated[float | None, Form(ge=0.0, le=1e6, allow_inf_nan=False)]


@router.post(
    "/images/search/image",
    response_model=schemas.SearchResponse,
    response_model_exclude_none=True,
)
@key_first("search")
async def search_by_image(
    request: Request,
    image: Annotated[UploadFile, File(description="The example image (not stored).")],
    query: Annotated[str | None, Form(min_length=1, max_length=2000)] = None,
    max_results: Annotated[int, Form(ge=1, le=200)] = 10,
    threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    text_weight: Weight = None,
    image_weight: Weight = None,
    filter: Annotated[str | None, Form(description=FILTER_PARAM_DOC)] = None,  # noqa: A002
) -> schemas.SearchResponse:
    """Extension: find the caller's indexed images like an image sent with the request (and
    a text, when `query` is given)."""
    key = caller(request, "search")
    service = context(request).service
    limit = service.limits.max_file_bytes + 1  # one byte over: inspect_image says too large
    data = await run_in_threadpool(image.file.read, limit)
    search = SearchRequest(
        query=query or "",
        max_results=max_results,
        threshold=threshold,
        text_weight=text_weight,
        image_weight=image_weight,
        image=data,
        filter=None if filter is None else parse_filter_json(filter),
    )
    hits = await run_in_threadpool(service.search, key.tenant, search)
    return _search_response(request, hits)


def _search_response(request: Request, hits: list[SearchHit]) -> schemas.SearchResponse:
    return schemas.SearchResponse(
        results=[
            schemas.SearchResult(
                image_id=h.record.image_id,
                image_url=image_url(request, h.record.image_id),
                image_metadata=servable_metadata(h.record.metadata),
                upload_timestamp=h.record.upload_timestamp,
                score=round(h.score, 6),
                file_name=h.record.file_name,
                **_tags_and_exif(h.record),
            )
            for h in hits
        ]
    )


@router.get(
    "/images/{image_id}/duplicates",
    response_model=schemas.DuplicateList,
    response_model_exclude_none=True,
)
def image_duplicates(request: Request, image_id: str) -> schemas.DuplicateList:
    """Extension: the near-duplicates of one image (re-encoded, resized or lightly cropped
    copies), closest first."""
    key = caller(request, "duplicates")
    matches = context(request).service.duplicates_of(key.tenant, image_id)
    return schemas.DuplicateList(
        results=[
            schemas.DuplicateImage(
                **_image_object(request, m.record).model_dump(),
                similarity=round(m.similarity, 6),
                hamming=m.hamming,
            )
            for m in matches
        ]
    )


@router.get("/duplicates", response_model=schemas.DuplicateGroups, response_model_exclude_none=True)
def duplicate_groups(request: Request) -> schemas.DuplicateGroups:
    """Extension: every group of near-duplicate images of the caller, largest first."""
    key = caller(request, "duplicates")
    groups = context(request).service.duplicate_groups(key.tenant)
    return schemas.DuplicateGroups(
        results=[
            schemas.DuplicateGroup(
                similarity=round(g.similarity, 6),
                images=[_image_object(request, r) for r in g.records],
            )
            for g in groups
        ]
    )


@router.get("/status", response_model=schemas.StatusResponse)
def status(request: Request) -> schemas.StatusResponse:
    """Extension: the model in use and the caller's images per indexing status."""
    key = caller(request, "status")
    s = context(request).service.queue_status(key.tenant)
    switch = None
    if s.switch is not None:
        p = s.switch
        switch = schemas.SwitchStatus(
            from_model=p.from_model, to_model=p.to_model, done=p.done, total=p.total
        )
    return schemas.StatusResponse(
        model_id=s.model_id,
        stored=s.stored,
        queued=s.queued,
        indexed=s.indexed,
        failed=s.failed,
        switch=switch,
    )


@files_router.get("/files/{image_id}", response_class=Response)
def image_bytes(request: Request, image_id: str, expires: int, sig: str) -> Response:
    """The original bytes of an image, by signed URL (no key needed, for `<img>` tags)."""
    ctx = context(request)
    ctx.signer.verify(image_id, expires, sig)
    record = ctx.service.find(image_id)
    data = ctx.service.read_bytes(record)
    return Response(
        content=data,
        media_type=record.content_type or "application/octet-stream",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
