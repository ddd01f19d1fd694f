"""`AsyncClient`: the same calls as `Client`, for asyncio code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
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


class AsyncClient(ClientBase):
    """The same calls as `Client`, for asyncio code."""

    def __init__(
        self,
        base_url: str | None = None,
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
        plan = plan_upload(images, metadata, index)
        body = await self._call("POST", "/v1/images/upload", files=plan.files(), data=plan.form())
        return upload_results(plan, body)

    async def search(
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
        body = search_body(query, max_results, threshold, search_mode, image_weight, text_weight)
        if filter is not None:  # extension: only images that pass (README, Filters)
            body["filter"] = dict(filter)
        found = await self._call("POST", "/v1/images/search", json=body)
        return [build(SearchResult, r) for r in found["results"]]

    async def search_similar(
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
        found = await self._call("POST", request.path, **request.kwargs())
        return [build(SearchResult, r) for r in found["results"]]

    async def duplicates(self) -> list[DuplicateGroup]:
        """See `Client.duplicates`."""
        found = await self._call("GET", "/v1/duplicates")
        return [build(DuplicateGroup, g) for g in found["results"]]

    async def duplicates_of(self, image_id: str) -> list[Duplicate]:
        """See `Client.duplicates_of`."""
        found = await self._call("GET", f"/v1/images/{image_id}/duplicates")
        return [build(Duplicate, d) for d in found["results"]]

    async def list_images(
        self,
        limit: int = 100,
        offset: int = 0,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> list[Image]:
        """See `Client.list_images`."""
        page = await self._call("GET", "/v1/images", params=list_params(limit, offset, filter))
        return [build(Image, r) for r in page["results"]]

    async def iter_images(
        self,
        page_size: int = 1000,
        filter: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> AsyncIterator[Image]:
        """See `Client.iter_images`."""
        offset = 0
        while True:
            page = await self.list_images(page_size, offset, filter)
            for image in page:
                yield image
            if len(page) < page_size:
                return
            offset += page_size

    async def get_image(self, image_id: str) -> Image:
        """See `Client.get_image`."""
        return build(Image, await self._call("GET", f"/v1/images/{image_id}"))

    async def delete_image(self, image_id: str) -> DeleteResult:
        """See `Client.delete_image`."""
        return build(DeleteResult, await self._call("DELETE", f"/v1/images/{image_id}"))

    async def status(self) -> Status:
        """See `Client.status`."""
        return build(Status, await self._call("GET", "/v1/status"))

    async def thumbnail(self, image_id: str, size: int = 256) -> bytes:
        """See `Client.thumbnail`."""
        response = await self._request(
            "GET", f"/v1/images/{image_id}/thumbnail", params={"size": size}
        )
        if response.status_code >= 400:
            raise error_from(response)
        return response.content

    async def download(self, image: Image | UploadResult | SearchResult | str) -> bytes:
        """See `Client.download`."""
        try:
            response = await self._http.get(url_of(image), headers={"Accept": "*/*"})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response.content

    async def wait_until_indexed(
        self, image_ids: Iterable[str], timeout_s: float = 60.0, poll_s: float = 0.25
    ) -> list[Image]:
        """See `Client.wait_until_indexed`."""
        images = {i: await self.get_image(i) for i in image_ids}
        deadline = time.monotonic() + timeout_s
        while still_queued(list(images.values())):
            if time.monotonic() >= deadline:
                raise indexing_timeout(list(images.values()), timeout_s)
            await asyncio.sleep(poll_s)
            for image_id, im in images.items():
                if im.indexing_status == QUEUED:
                    images[image_id] = await self.get_image(image_id)
        return list(images.values())
