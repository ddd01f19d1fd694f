"""Python client of a Viewfinder server (or of any server of the Reka Vision image API).

    from viewfinder import Client

    with Client("http://127.0.0.1:8000", api_key="vf_...") as vf:  # or Client(): see below
        vf.upload(["cat.jpg", Path("dog.png"), b"<jpeg bytes>", "https://example.com/x.jpg"])
        for hit in vf.search("a cat on a sofa", max_results=5):
            print(f"{hit.score:.2f} {hit.image_id}")

`Client()` without arguments reads VIEWFINDER_SERVER and VIEWFINDER_API_KEY, as the command
line does (default URL http://127.0.0.1:8000). `AsyncClient` has the same methods, awaited;
`viewfinder.local_client.LocalClient` has them too, over a data directory in this process
instead of a server. Pass `http_client` (an
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
    ├── ViewfinderConnectionError   the server could not be reached
    └── IndexingTimeout             wait_until_indexed ran out of time (also a TimeoutError);
                                    `pending` and `failed` name the images
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import IndexingTimeout

if TYPE_CHECKING:
    from ._async import AsyncClient
    from ._base import DEFAULT_URL
    from ._errors import (
        AuthenticationAPIError,
        NotFoundAPIError,
        PermissionAPIError,
        RateLimitAPIError,
        ServerAPIError,
        ValidationAPIError,
        ViewfinderAPIError,
        ViewfinderConnectionError,
    )
    from ._models import (
        DeleteResult,
        Duplicate,
        DuplicateGroup,
        Exif,
        Gps,
        Image,
        SearchResult,
        Status,
        Switch,
        Tag,
        UploadResult,
    )
    from ._sync import Client
    from ._uploads import ImageInput, Metadata

# The module each public name comes from, imported on first use (PEP 562): `LocalClient`
# shares the result types but never speaks HTTP, so a local `viewfinder search` must not pay
# for importing httpx (a tenth of a second) through the clients and their errors.
_SOURCES = {
    "AsyncClient": "_async",
    "DEFAULT_URL": "_base",
    "AuthenticationAPIError": "_errors",
    "NotFoundAPIError": "_errors",
    "PermissionAPIError": "_errors",
    "RateLimitAPIError": "_errors",
    "ServerAPIError": "_errors",
    "ValidationAPIError": "_errors",
    "ViewfinderAPIError": "_errors",
    "ViewfinderConnectionError": "_errors",
    "DeleteResult": "_models",
    "Duplicate": "_models",
    "DuplicateGroup": "_models",
    "Exif": "_models",
    "Gps": "_models",
    "Image": "_models",
    "SearchResult": "_models",
    "Status": "_models",
    "Switch": "_models",
    "Tag": "_models",
    "UploadResult": "_models",
    "Client": "_sync",
    "ImageInput": "_uploads",
    "Metadata": "_uploads",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{source}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AuthenticationAPIError",
    "Client",
    "DeleteResult",
    "Duplicate",
    "DuplicateGroup",
    "Exif",
    "Gps",
    "Image",
    "ImageInput",
    "IndexingTimeout",
    "Metadata",
    "NotFoundAPIError",
    "PermissionAPIError",
    "RateLimitAPIError",
    "SearchResult",
    "ServerAPIError",
    "Status",
    "Switch",
    "Tag",
    "UploadResult",
    "ValidationAPIError",
    "ViewfinderAPIError",
    "ViewfinderConnectionError",
]
