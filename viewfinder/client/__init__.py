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

from ..errors import IndexingTimeout
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
