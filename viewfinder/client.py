"""Python client of a Viewfinder server (or of any server of the Reka Vision image API).

    from viewfinder import Client

    with Client("http://127.0.0.1:8000", api_key="vf_...") as vf:
        vf.upload(["cat.jpg", Path("dog.png"), b"<jpeg bytes>", "https://example.com/x.jpg"])
        for hit in vf.search("a cat on a sofa", max_results=5):
            print(f"{hit.score:.2f} {hit.image_id}")

`AsyncClient` has the same methods, awaited; `viewfinder.local_client.LocalClient` has them
too, over a data directory in this process instead of a server. Pass `http_client` (an
`httpx.Client` such as FastAPI's `TestClient(app)`, or an `httpx.AsyncClient` over
`httpx.ASGITransport(app)`) to talk to an app in the same process.

Errors (every one is a `viewfinder.errors.ViewfinderError`; each API error is also the library
error of the same meaning, so `except errors.NotFound` catches a remote and a local miss):

    ViewfinderError
    ├── ViewfinderAPIError          the server answered with an error body
    │   ├── ValidationAPIError      400, 413, 415, 422  validation_error
    │   ├── AuthenticationAPIError  401                 authentication_error
    │   ├── PermissionAPIError      403                 permission_error
    │   ├── NotFoundAPIError        404                 not_found_error
    │   ├── RateLimitAPIError       429                 rate_limit_error (retries used up)
    │   └── ServerAPIError          5xx                 server_error
    └── ViewfinderConnectionError   the server could not be reached
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, Union

import httpx

from . import __version__, errors

# An image to upload: a path, raw bytes, (file name, bytes), or an http(s) URL string.
ImageInput = Union[str, os.PathLike, bytes, tuple[str, bytes]]  # noqa: UP007 - runtime alias
Metadata = Union[Mapping[str, Any], Sequence[Union[Mapping[str, Any], None]], None]  # noqa: UP007

_LABELS = {0: "stored", 1: "queued", 2: "indexed", 3: "failed"}
DEFAULT_URL = "http://127.0.0.1:8000"


# results
@dataclass(frozen=True)
class Image:
    """An image object (`GET /v1/images/{image_id}`)."""

    image_id: str
    image_url: str
    indexing_status: int
    upload_timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    size_bytes: int = 0
    error: str | None = None
    sha256: str | None = None

    @property
    def indexed(self) -> bool:
        """Searchable now."""
        return self.indexing_status == 2


@dataclass(frozen=True)
class UploadResult:
    """One item of an upload's `results`, in the order the images were given."""

    image_id: str
    image_url: str
    indexing_status: int
    upload_timestamp: float
    status: str = ""
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Refused (undecodable, unreachable URL...); `error` says why."""
        return self.indexing_status == 3


@dataclass(frozen=True)
class SearchResult:
    """One search hit, best first; `score` is a calibrated confidence in [0, 1]."""

    image_id: str
    image_url: str
    score: float
    upload_timestamp: float
    image_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteResult:
    status: str
    message: str


@dataclass(frozen=True)
class Status:
    """The model in use and the tenant's images per indexing status (`GET /v1/status`)."""

    model_id: str
    stored: int
    queued: int
    indexed: int
    failed: int


_T = TypeVar("_T")
_R = TypeVar("_R")


def _build(cls: type[_T], data: Mapping[str, Any]) -> _T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in data.items() if k in known}
    if "status" in known and "indexing_status" in values and not values.get("status"):
        values["status"] = _LABELS.get(int(values["indexing_status"]), "unknown")
    return cls(**values)


# errors
class ViewfinderAPIError(errors.ViewfinderError):
    """The server answered with an error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        # Not super(): the next class in line may be one with another signature (RateLimited).
        errors.ViewfinderError.__init__(self, message, param=param)
        self.status = status
        self.type = type
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.type} ({self.status}): {self.message}"


class ValidationAPIError(ViewfinderAPIError, errors.ValidationError):
    pass


class AuthenticationAPIError(ViewfinderAPIError, errors.AuthenticationError):
    pass


class PermissionAPIError(ViewfinderAPIError, errors.PermissionDenied):
    pass


class NotFoundAPIError(ViewfinderAPIError, errors.NotFound):
    pass


class RateLimitAPIError(ViewfinderAPIError, errors.RateLimited):
    """Over the rate limit after the allowed retries; `retry_after` is the server's advice."""

    retry_after: float = 0.0


class ServerAPIError(ViewfinderAPIError, errors.ServerError):
    pass


class ViewfinderConnectionError(errors.ViewfinderError):
    """The server could not be reached (or did not answer in time)."""


_ERRORS: dict[str, type[ViewfinderAPIError]] = {
    "validation_error": ValidationAPIError,
    "authentication_error": AuthenticationAPIError,
    "permission_error": PermissionAPIError,
    "not_found_error": NotFoundAPIError,
    "rate_limit_error": RateLimitAPIError,
    "server_error": ServerAPIError,
}
_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def _error_from(response: httpx.Response) -> ViewfinderAPIError:
    status = response.status_code
    try:
        detail = response.json().get("error")
    except (ValueError, AttributeError):
        detail = None  # not our error body: a proxy's page, say
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        kind = str(detail.get("type") or "")
        message, param = detail["message"], detail.get("param")
    else:
        kind, message, param = "", f"HTTP {status}: {response.text[:200]}", None
    if kind not in _ERRORS:
        kind = _BY_STATUS.get(status, "server_error" if status >= 500 else "validation_error")
    exc = _ERRORS[kind](
        message,
        status=status,
        type=kind,
        param=param,
        request_id=response.headers.get("x-request-id"),
    )
    if isinstance(exc, RateLimitAPIError):
        exc.retry_after = _retry_after_header(response) or 0.0
    return exc


def _retry_after_header(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None  # an HTTP date or nothing: fall back to our own backoff


# uploads
@dataclass
class _UploadPlan:
    """An upload in the API's order: file parts first, then URLs."""

    parts: list[tuple[str, bytes, str]]
    urls: list[str]
    metadata: list[dict[str, Any]]
    index: bool
    order: list[int]  # the caller's index of each image, in the API's order

    def files(self) -> list[tuple[str, tuple[str, bytes, str]]] | None:
        return [("images", part) for part in self.parts] or None

    def form(self) -> dict[str, str]:
        requests = [
            {"indexing_config": {"index": self.index}, "metadata": m} for m in self.metadata
        ]
        return {"metadata": json.dumps({"requests": requests, "image_urls": self.urls})}

    def in_callers_order(self, results: Sequence[_R]) -> list[_R]:
        out: dict[int, _R] = dict(zip(self.order, results, strict=True))
        return [out[n] for n in range(len(out))]


def _is_url(item: object) -> bool:
    return isinstance(item, str) and item.lower().startswith(("http://", "https://"))


def _file_part(item: ImageInput, n: int) -> tuple[str, bytes, str]:
    if isinstance(item, bytes):
        return (f"image-{n}", item, "application/octet-stream")
    if isinstance(item, tuple):
        name, data = item
        return (name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
    path = Path(item)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise errors.ValidationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return (path.name, data, mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def _per_image(metadata: Metadata, count: int) -> list[dict[str, Any]]:
    if metadata is None:
        return [{} for _ in range(count)]
    if isinstance(metadata, Mapping):
        return [dict(metadata) for _ in range(count)]
    items = list(metadata)
    if len(items) != count:
        raise errors.ValidationError(
            f"{len(items)} metadata objects for {count} images; give one per image or one for all",
            param="metadata",
        )
    return [dict(m or {}) for m in items]


def _plan_upload(
    images: Sequence[ImageInput] | ImageInput, metadata: Metadata, index: bool
) -> _UploadPlan:
    if isinstance(images, (str, bytes, os.PathLike)) or (
        isinstance(images, tuple)
        and len(images) == 2
        and isinstance(images[0], str)
        and isinstance(images[1], bytes)
    ):
        images = [images]  # type: ignore[list-item]  # one image given bare
    items: list[ImageInput] = list(images)  # type: ignore[arg-type]
    if not items:
        raise errors.ValidationError("no images to upload", param="images")
    meta = _per_image(metadata, len(items))
    file_idx = [n for n, item in enumerate(items) if not _is_url(item)]
    url_idx = [n for n, item in enumerate(items) if _is_url(item)]
    order = file_idx + url_idx
    return _UploadPlan(
        parts=[_file_part(items[n], n) for n in file_idx],
        urls=[str(items[n]) for n in url_idx],
        metadata=[meta[n] for n in order],
        index=index,
        order=order,
    )


def _upload_results(plan: _UploadPlan, body: Any) -> list[UploadResult]:
    return plan.in_callers_order([_build(UploadResult, r) for r in body["results"]])


def _search_body(
    query: str,
    max_results: int,
    threshold: float | None,
    search_mode: str,
    image_weight: float | None,
    text_weight: float | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "max_results": max_results, "threshold": threshold}
    if search_mode != "vision":
        body["search_mode"] = search_mode
    if image_weight is not None:
        body["image_weight"] = image_weight
    if text_weight is not None:
        body["text_weight"] = text_weight
    return body


def _url_of(image: Image | UploadResult | SearchResult | str) -> str:
    return image if isinstance(image, str) else image.image_url


class _Base:
    """Configuration and the parts of a call that do not depend on sync or async I/O."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        max_retries: int,
        max_retry_wait_s: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"viewfinder-python/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        return headers

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to give the response back as it is."""
        if response.status_code != 429 or attempt >= self.max_retries:
            return None
        advised = _retry_after_header(response)
        wait = advised if advised else 0.5 * 2**attempt * (1 + random.random() / 4)
        # Waiting longer than the bound would hide a long outage; say so instead.
        return wait if wait <= self.max_retry_wait_s else None

    def _unreachable(self, exc: httpx.TransportError) -> ViewfinderConnectionError:
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else str(exc) or "failed"
        return ViewfinderConnectionError(
            f"cannot reach Viewfinder at {self.base_url} ({what}); is the server running "
            "(`viewfinder serve`) and the URL right?"
        )

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()


class Client(_Base):
    """Synchronous client; one instance may be shared by threads."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait_s=max_retry_wait_s,
        )
        self._own = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not one passed in as `http_client`)."""
        if self._own:
            self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, self._url(path), headers=self._headers(), **kwargs
                )
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return response
            time.sleep(wait)
            attempt += 1

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(self._request(method, path, **kwargs))

    def upload(
        self,
        images: Sequence[ImageInput] | ImageInput,
        *,
        metadata: Metadata = None,
        index: bool = True,
    ) -> list[UploadResult]:
        """Upload paths, bytes, (name, bytes) pairs and http(s) URLs; results in that order.

        `metadata` is one object for every image or a list with one per image.
        """
        plan = _plan_upload(images, metadata, index)
        body = self._call("POST", "/v1/images/upload", files=plan.files(), data=plan.form())
        return _upload_results(plan, body)

    def search(
        self,
        query: str,
        *,
        max_results: int = 10,
        threshold: float | None = None,
        search_mode: str = "vision",
        image_weight: float | None = None,
        text_weight: float | None = None,
    ) -> list[SearchResult]:
        """The best matches of a description, best first."""
        body = _search_body(query, max_results, threshold, search_mode, image_weight, text_weight)
        found = self._call("POST", "/v1/images/search", json=body)
        return [_build(SearchResult, r) for r in found["results"]]

    def list_images(self, limit: int = 100, offset: int = 0) -> list[Image]:
        """A page of the tenant's images, newest first."""
        page = self._call("GET", "/v1/images", params={"limit": limit, "offset": offset})
        return [_build(Image, r) for r in page["results"]]

    def iter_images(self, page_size: int = 1000) -> Iterator[Image]:
        """Every image of the tenant, newest first, a page at a time."""
        offset = 0
        while True:
            page = self.list_images(page_size, offset)
            yield from page
            if len(page) < page_size:
                return
            offset += page_size

    def get_image(self, image_id: str) -> Image:
        """One image."""
        return _build(Image, self._call("GET", f"/v1/images/{image_id}"))

    def delete_image(self, image_id: str) -> DeleteResult:
        """Delete an image from storage, listing and search."""
        return _build(DeleteResult, self._call("DELETE", f"/v1/images/{image_id}"))

    def status(self) -> Status:
        """The model in use and the tenant's images per indexing status."""
        return _build(Status, self._call("GET", "/v1/status"))

    def thumbnail(self, image_id: str, size: int = 256) -> bytes:
        """A JPEG thumbnail whose longer side is at least `size` (Viewfinder extension)."""
        response = self._request("GET", f"/v1/images/{image_id}/thumbnail", params={"size": size})
        if response.status_code >= 400:
            raise _error_from(response)
        return response.content

    def download(self, image: Image | UploadResult | SearchResult | str) -> bytes:
        """The original bytes of an image (by its signed `image_url`)."""
        try:
            response = self._http.get(_url_of(image), headers={"Accept": "*/*"})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.content

    def wait_until_indexed(
        self, image_ids: Iterable[str], timeout_s: float = 60.0, poll_s: float = 0.25
    ) -> list[Image]:
        """Poll until no image is queued, or the time is up; return the images as last seen."""
        images = {i: self.get_image(i) for i in image_ids}
        deadline = time.monotonic() + timeout_s
        while any(im.indexing_status == 1 for im in images.values()):
            if time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
            for image_id, im in images.items():
                if im.indexing_status == 1:
                    images[image_id] = self.get_image(image_id)
        return list(images.values())


class AsyncClient(_Base):
    """The same calls as `Client`, for asyncio code."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait_s=max_retry_wait_s,
        )
        self._own = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (not one passed in as `http_client`)."""
        if self._own:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, self._url(path), headers=self._headers(), **kwargs
                )
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return response
            await asyncio.sleep(wait)
            attempt += 1

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(await self._request(method, path, **kwargs))

    async def upload(
        self,
        images: Sequence[ImageInput] | ImageInput,
        *,
        metadata: Metadata = None,
        index: bool = True,
    ) -> list[UploadResult]:
        """See `Client.upload`."""
        plan = _plan_upload(images, metadata, index)
        body = await self._call("POST", "/v1/images/upload", files=plan.files(), data=plan.form())
        return _upload_results(plan, body)

    async def search(
        self,
        query: str,
        *,
        max_results: int = 10,
        threshold: float | None = None,
        search_mode: str = "vision",
        image_weight: float | None = None,
        text_weight: float | None = None,
    ) -> list[SearchResult]:
        """See `Client.search`."""
        body = _search_body(query, max_results, threshold, search_mode, image_weight, text_weight)
        found = await self._call("POST", "/v1/images/search", json=body)
        return [_build(SearchResult, r) for r in found["results"]]

    async def list_images(self, limit: int = 100, offset: int = 0) -> list[Image]:
        """See `Client.list_images`."""
        page = await self._call("GET", "/v1/images", params={"limit": limit, "offset": offset})
        return [_build(Image, r) for r in page["results"]]

    async def iter_images(self, page_size: int = 1000) -> AsyncIterator[Image]:
        """See `Client.iter_images`."""
        offset = 0
        while True:
            page = await self.list_images(page_size, offset)
            for image in page:
                yield image
            if len(page) < page_size:
                return
            offset += page_size

    async def get_image(self, image_id: str) -> Image:
        """See `Client.get_image`."""
        return _build(Image, await self._call("GET", f"/v1/images/{image_id}"))

    async def delete_image(self, image_id: str) -> DeleteResult:
        """See `Client.delete_image`."""
        return _build(DeleteResult, await self._call("DELETE", f"/v1/images/{image_id}"))

    async def status(self) -> Status:
        """See `Client.status`."""
        return _build(Status, await self._call("GET", "/v1/status"))

    async def thumbnail(self, image_id: str, size: int = 256) -> bytes:
        """See `Client.thumbnail`."""
        response = await self._request(
            "GET", f"/v1/images/{image_id}/thumbnail", params={"size": size}
        )
        if response.status_code >= 400:
            raise _error_from(response)
        return response.content

    async def download(self, image: Image | UploadResult | SearchResult | str) -> bytes:
        """See `Client.download`."""
        try:
            response = await self._http.get(_url_of(image), headers={"Accept": "*/*"})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.content

    async def wait_until_indexed(
        self, image_ids: Iterable[str], timeout_s: float = 60.0, poll_s: float = 0.25
    ) -> list[Image]:
        """See `Client.wait_until_indexed`."""
        images = {i: await self.get_image(i) for i in image_ids}
        deadline = time.monotonic() + timeout_s
        while any(im.indexing_status == 1 for im in images.values()):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll_s)
            for image_id, im in images.items():
                if im.indexing_status == 1:
                    images[image_id] = await self.get_image(image_id)
        return list(images.values())
