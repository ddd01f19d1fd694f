"""The browser page at `/`, its static files, and the thumbnail extension endpoints.

Thumbnails are made once per (content hash, size) with Pillow, EXIF orientation applied,
and cached as JPEG files under `<data_dir>/thumbnails`; two images with the same bytes share
them. They are served two ways: `GET /v1/images/{id}/thumbnail` with the API key like every
`/v1` route, and `GET /files/{id}/thumbnail` with the same signature and expiry as the image's
`image_url`, so that an `<img>` tag can show one without the key.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response

from ..config import Settings
from ..domain.records import ImageRecord
from ..domain.thumbnails import THUMBNAIL_SIZES, ThumbnailCache
from ..errors import NotFound
from .deps import caller, context

_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}

page_router = APIRouter(include_in_schema=False)
thumbnail_router = APIRouter(tags=["images"])
signed_thumbnail_router = APIRouter(tags=["files"])


def thumbnails(request: Request) -> ThumbnailCache:
    """The app's thumbnail cache."""
    cache: ThumbnailCache = request.app.state.thumbnails
    return cache


def discard_thumbnails(request: Request, record: ImageRecord) -> None:
    """Drop a deleted image's thumbnails (a no-op in apps built without this module)."""
    cache: ThumbnailCache | None = getattr(request.app.state, "thumbnails", None)
    if cache is not None:
        cache.discard_unused(context(request).service, record)


def _jpeg(data: bytes, cache_control: str) -> Response:
    return Response(
        content=data,
        media_type="image/jpeg",
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
    )


SizeQuery = Annotated[
    int,
    Query(
        ge=1,
        le=THUMBNAIL_SIZES[-1],
        description="Longest side in pixels, rounded up to one of 64, 128, 256, 512, 1024.",
    ),
]


@thumbnail_router.get(
    "/images/{image_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def thumbnail(request: Request, image_id: str, size: SizeQuery = 256) -> Response:
    """Extension: a JPEG thumbnail of an image (made once, then cached)."""
    key = caller(request, "get")
    service = context(request).service
    record = service.get(key.tenant, image_id)
    return _jpeg(thumbnails(request).get(service, record, size), "private, max-age=86400")


@signed_thumbnail_router.get("/files/{image_id}/thumbnail", response_class=Response)
def signed_thumbnail(
    request: Request, image_id: str, expires: int, sig: str, size: SizeQuery = 256
) -> Response:
    """A thumbnail by the signature of the image's `image_url` (for `<img>` tags)."""
    ctx = context(request)
    ctx.signer.verify(image_id, expires, sig)
    record = ctx.service.find(image_id)
    return _jpeg(thumbnails(request).get(ctx.service, record, size), "private, max-age=3600")


def _asset(name: str) -> bytes:
    return resources.files("viewfinder").joinpath("web", name).read_bytes()


def _page_headers(request: Request) -> dict[str, str]:
    # The page talks to this server only; image URLs may name VIEWFINDER_PUBLIC_URL instead.
    public = context(request).public_url
    img_src = f"'self' data: blob: {public.rstrip('/')}" if public else "'self' data: blob:"
    return {
        "Content-Security-Policy": f"default-src 'self'; img-src {img_src}; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@page_router.get("/", response_class=Response)
def page(request: Request) -> Response:
    """The web page."""
    return Response(_asset("index.html"), media_type="text/html", headers=_page_headers(request))


@page_router.get("/static/{name}", response_class=Response)
def static(request: Request, name: str) -> Response:
    """The page's script and style sheet."""
    if name not in _STATIC:
        raise NotFound(f"no static file {name}")
    return Response(_asset(name), media_type=_STATIC[name], headers=_page_headers(request))


def install_web(app: FastAPI, settings: Settings) -> None:
    """Serve the page and the thumbnail endpoints from `app`."""
    app.state.thumbnails = ThumbnailCache(settings.data_dir / "thumbnails", settings.max_pixels)
    app.include_router(thumbnail_router, prefix="/v1")
    app.include_router(signed_thumbnail_router)
    app.include_router(page_router)
