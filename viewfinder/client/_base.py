"""What the sync and async clients share: configuration, headers, retries, request bodies."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from typing import Any

import httpx

from .. import __version__
from ._errors import ViewfinderConnectionError, error_from, retry_after_header
from ._models import Image, SearchResult, UploadResult

DEFAULT_URL = "http://127.0.0.1:8000"
# The same variables as the command line's --server and --api-key.
SERVER_ENV, API_KEY_ENV = "VIEWFINDER_SERVER", "VIEWFINDER_API_KEY"


def search_body(
    query: str,
    max_results: int,
    threshold: float | None,
    search_mode: str,
    image_weight: float | None,
    text_weight: float | None,
) -> dict[str, Any]:
    """The JSON body of a search request (defaults left out)."""
    body: dict[str, Any] = {"query": query, "max_results": max_results, "threshold": threshold}
    if search_mode != "vision":
        body["search_mode"] = search_mode
    if image_weight is not None:
        body["image_weight"] = image_weight
    if text_weight is not None:
        body["text_weight"] = text_weight
    return body


def list_params(
    limit: int,
    offset: int,
    filter: Mapping[str, Any] | None,  # noqa: A002
) -> dict[str, Any]:
    """The query parameters of a list request; a filter travels JSON-encoded."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if filter is not None:
        params["filter"] = json.dumps(dict(filter))
    return params


def url_of(image: Image | UploadResult | SearchResult | str) -> str:
    """The signed URL of an image given as a result or as the URL itself."""
    return image if isinstance(image, str) else image.image_url


class ClientBase:
    """Configuration and the parts of a call that do not depend on sync or async I/O."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float,
        max_retries: int,
        max_retry_wait_s: float,
    ) -> None:
        # Read when the client is made, not at import: arguments win, then the environment.
        url = base_url or os.environ.get(SERVER_ENV) or DEFAULT_URL
        self.base_url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
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
        advised = retry_after_header(response)
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
            raise error_from(response)
        return response.json()
