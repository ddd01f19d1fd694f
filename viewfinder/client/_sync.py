"""`Client`: the synchronous client over httpx."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from ._base import ClientBase, list_params, search_body, url_of
from ._errors import error_from
from ._models import (
    DeleteResult,
    Duplicate,
    DuplicateGroup,
    Image,
    SearchResult,
    Status,
    UploadResult,
    build,
)
from ._similar import ExampleImage, similar_request
from ._uploads import ImageInput, Metadata, plan_upload, upload_results
from ._waiting import QUEUED, indexing_timeout, still_queued


class Client(ClientBase):
    """Synchronous client; one instance may be shared by threads.

    `base_url` defaults to VIEWFINDER_SERVER, then http://127.0.0.1:8000; `api_key` to
    VIEWFINDER_API_KEY, as on the command line.
    """

    def __init__(
        self,
        base_url: str | None = None,
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
        plan = plan_upload(images, metadata, index)
        body = self._call("POST", "/v1/images/upload", files=plan.files(), data=plan.form())
        return upload_results(plan, body)

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
        """The best matches of a description, best first."""
        body = search_body(query, max_results, threshold, search_mode, image_weight, text_weight)
        if filter is not None:  # extension: only images that pass (README, Filters)
            body["filter"] = dict(filter)
        found = self._call("POST", "/v1/images/search", json=body)
        return [build(SearchResult, r) for r in found["results"]]

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
        """Search by example: one of the tenant's images (`image_id`) or an image file or its
        bytes (`path`, sent and never stored), optionally with a text `query` (weighed by
        `text_weight`/`image_weight`); best first, the example itself left out unless
        `include_self` (extension)."""
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
        found = self._call("POST", request.path, **request.kwargs())
        return [build(SearchResult, r) for r in found["results"]]

    def duplicates(self) -> list[DuplicateGroup]:
        """The tenant's groups of near-duplicate images, largest first (extension)."""
        found = self._call("GET", "/v1/duplicates")
        return [build(DuplicateGroup, g) for g in found["results"]]

    def duplicates_of(self, image_id: str) -> list[Duplicate]:
        """The near-duplicates of one image, closest first (extension)."""
        found = self._call("GET", f"/v1/images/{image_id}/duplicates")
        return [build(Duplicate, d) for d in found["results"]]

    def list_images(
        self,
        limit: int = 100,
        offset: int = 0,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> list[Image]:
        """A page of the tenant's images (those passing `filter`, when given), newest first."""
        page = self._call("GET", "/v1/images", params=list_params(limit, offset, filter))
        return [build(Image, r) for r in page["results"]]

    def iter_images(
        self,
        page_size: int = 1000,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> Iterator[Image]:
        """Every image of the tenant (passing `filter`), newest first, a page at a time."""
        offset = 0
        while True:
            page = self.list_images(page_size, offset, filter)
            yield from page
            if len(page) < page_size:
                return
            offset += page_size

    def get_image(self, image_id: str) -> Image:
        """One image."""
        return build(Image, self._call("GET", f"/v1/images/{image_id}"))

    def delete_image(self, image_id: str) -> DeleteResult:
        """Delete an image from storage, listing and search."""
        return build(DeleteResult, self._call("DELETE", f"/v1/images/{image_id}"))

    def status(self) -> Status:
        """The model in use and the tenant's images per indexing status."""
        return build(Status, self._call("GET", "/v1/status"))

    def thumbnail(self, image_id: str, size: int = 256) -> bytes:
        """A JPEG thumbnail whose longer side is at least `size` (Viewfinder extension)."""
        response = self._request("GET", f"/v1/images/{image_id}/thumbnail", params={"size": size})
        if response.status_code >= 400:
            raise error_from(response)
        return response.content

    def download(self, image: Image | UploadResult | SearchResult | str) -> bytes:
        """The original bytes of an image (by its signed `image_url`)."""
        try:
            response = self._http.get(url_of(image), headers={"Accept": "*/*"})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response.content

    def wait_until_indexed(
        self, image_ids: Iterable[str], timeout_s: float = 60.0, poll_s: float = 0.25
    ) -> list[Image]:
        """Poll until none of the images is queued; return them as last seen (failed ones
        included). Raises `IndexingTimeout` (a `TimeoutError`) naming those still queued
        after `timeout_s`."""
        images = {i: self.get_image(i) for i in image_ids}
        deadline = time.monotonic() + timeout_s
        while still_queued(list(images.values())):
            if time.monotonic() >= deadline:
                raise indexing_timeout(list(images.values()), timeout_s)
            time.sleep(poll_s)
            for image_id, im in images.items():
                if im.indexing_status == QUEUED:
                    images[image_id] = self.get_image(image_id)
        return list(images.values())
