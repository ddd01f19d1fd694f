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
│       ├── BlobHoldLost        503 server_error  (an upload outlasted the blob sweep grace)
│       └── StorageFull         503 server_error  (a disk or database has no space left)
├── ConfigurationError          500 server_error  (bad settings, missing model...)
├── FetchError                  400 validation_error  (an image URL could not be fetched)
└── IndexingTimeout             also a TimeoutError (wait_until_indexed ran out of time)
"""

from __future__ import annotations

import errno
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


class StorageFull(Unavailable):
    """A disk or database the server writes to has no space left: what the request wrote
    is rolled back or left for the sweeps (uploads commit their rows last), so it can be sent
    again once space is freed. `storage_full(exc)` recognises the stores' own errors."""

    retry_after_s = 60

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"the server's storage is full ({detail}); send the request again once space is freed"
        )


def storage_full(exc: BaseException) -> StorageFull | None:
    """A `StorageFull` for `exc` when it, or an error it was raised from, says that storage is
    out of space; None otherwise. Knows the errors of the stores Viewfinder writes to: the
    operating system's (ENOSPC, EDQUOT: a local folder, a vector file), SQLite's SQLITE_FULL,
    PostgreSQL's class 53 "insufficient resources" disk_full (53100) and an S3 service's
    "storage full" answers, without importing their libraries."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageFull):
            return current
        detail = _out_of_space(current)
        if detail is not None:
            return StorageFull(detail)
        current = current.__cause__ or current.__context__
    return None


_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SQLITE_FULL = 13
_S3_FULL_CODES = {"XMinioStorageFull", "InsufficientStorage", "StorageFull"}


def _out_of_space(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return exc.strerror or "no space left on device"
    if type(exc).__module__.startswith("sqlite3") and (
        getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
        or "database or disk is full" in str(exc)
    ):
        return "database or disk is full"
    if getattr(exc, "sqlstate", None) == "53100":  # psycopg's DiskFull
        return "the PostgreSQL server's disk is full"
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code in _S3_FULL_CODES:  # botocore's ClientError
        return "the object store is full"
    return None


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
