"""One exception tree for the whole library; `api/` turns it into HTTP in one place.

ViewfinderError                 500 server_error
├── ValidationError             400 validation_error
│   ├── PayloadTooLarge         413 validation_error
│   └── UnsupportedMediaType    415 validation_error
├── AuthenticationError         401 authentication_error
├── PermissionDenied            403 permission_error
├── NotFound                    404 not_found_error
├── RateLimited                 429 rate_limit_error
├── ServerError                 500 server_error
│   └── Unavailable             503 server_error
│       └── BlobHoldLost        503 server_error  (an upload outlasted the blob sweep grace)
├── ConfigurationError          500 server_error  (bad settings, missing model...)
├── FetchError                  400 validation_error  (an image URL could not be fetched)
└── IndexingTimeout             also a TimeoutError (wait_until_indexed ran out of time)
"""

from __future__ import annotations

from collections.abc import Iterable


class ViewfinderError(Exception):
    """Base of every error the library raises on purpose."""

    status: int = 500
    type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ValidationError(ViewfinderError):
    status = 400
    type = "validation_error"


class PayloadTooLarge(ValidationError):
    status = 413


class UnsupportedMediaType(ValidationError):
    status = 415


class AuthenticationError(ViewfinderError):
    status = 401
    type = "authentication_error"


class PermissionDenied(ViewfinderError):
    status = 403
    type = "permission_error"


class NotFound(ViewfinderError):
    status = 404
    type = "not_found_error"


class RateLimited(ViewfinderError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(ViewfinderError):
    status = 500
    type = "server_error"


class Unavailable(ServerError):
    status = 503


class BlobHoldLost(Unavailable):
    """An upload outlasted the blob sweep grace period: the sweeper took its hold, maybe its
    bytes (see `domain/blob_sweeper.py`).

    Raised by `MetadataStore.insert_images(..., held=True)`, which then inserted nothing; the
    service stores those images again. Escaping that, it is a 503 ("retry shortly").
    """

    def __init__(self, image_ids: Iterable[str]) -> None:
        self.image_ids = frozenset(image_ids)
        super().__init__(
            f"the bytes of {len(self.image_ids)} uploaded images were swept before their rows "
            "were committed; retry shortly"
        )


class ConfigurationError(ViewfinderError):
    """Settings, a model directory or a data directory are unusable; the message names the fix."""


class FetchError(ValidationError):
    """An `image_urls` entry could not be fetched (refused, unreachable, too big, timed out)."""


class IndexingTimeout(ViewfinderError, TimeoutError):
    """`wait_until_indexed` ran out of time: `pending` images were still queued; `failed` maps
    the ids of those that failed to their reasons."""

    def __init__(
        self, message: str, *, pending: list[str], failed: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.pending = pending
        self.failed = dict(failed or {})
