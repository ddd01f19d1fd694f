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
│       └── StorageUnwritable   503 server_error  (storage refuses writes; see unwritable_storage)
│           ├── StorageFull                       (a disk or database has no space left)
│           └── StorageReadOnly                   (a read-only file system, database or standby)
├── ConfigurationError          500 server_error  (bad settings, missing model...)
├── FetchError                  400 validation_error  (an image URL could not be fetched)
└── IndexingTimeout             also a TimeoutError (wait_until_indexed ran out of time)
"""

from __future__ import annotations

import errno
import re
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


class StorageUnwritable(Unavailable):
    """Storage the server writes to refuses writes. What the request wrote is rolled back or
    left for the sweeps (uploads commit their rows last), so it can be sent again once an
    operator has fixed it. `unwritable_storage(exc)` recognises the stores' own errors."""

    retry_after_s = 60
    state = "not writable"
    fix = "once an operator has fixed it"

    def __init__(self, detail: str, where: str | None = None) -> None:
        self.detail = detail
        self.where = where  # the file, when known: for the operator, not in the API's message
        super().__init__(
            f"the server's storage is {self.state} ({detail}); send the request again {self.fix}"
        )


class StorageFull(StorageUnwritable):
    """A disk or database has no space left."""

    state = "full"
    fix = "once space is freed"


class StorageReadOnly(StorageUnwritable):
    """A file system mounted (or remounted, after disk errors) read-only, a read-only database
    file, or a PostgreSQL standby."""

    state = "read-only"


def unwritable_storage(exc: BaseException) -> StorageUnwritable | None:
    """A `StorageFull` or `StorageReadOnly` for `exc` when it, or an error it was raised from,
    says so; None otherwise. Knows the errors of the stores Viewfinder writes to, without
    importing their libraries: the operating system's (a local folder, a vector file),
    SQLite's, PostgreSQL's and an S3 service's."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageUnwritable):
            return current
        found = _refused_write(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _file(exc: OSError) -> str | None:
    return None if exc.filename is None else str(exc.filename)


_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SQLITE_FULL, _SQLITE_READONLY = 13, 8
_S3_FULL_CODES = {"XMinioStorageFull", "InsufficientStorage", "StorageFull"}
# Milvus's quota protection (not its rate limits: "quota exceeded[reason=rate type: ...]")
_MILVUS_QUOTA = re.compile(r"(disk|memory) quota (exceeded|exhausted)")


def _refused_write(exc: BaseException) -> StorageUnwritable | None:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return StorageFull(exc.strerror or "no space left on device", _file(exc))
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return StorageReadOnly(exc.strerror or "read-only file system", _file(exc))
    if type(exc).__module__.startswith("sqlite3"):
        code = getattr(exc, "sqlite_errorcode", None)
        if code == _SQLITE_FULL or "database or disk is full" in str(exc):
            return StorageFull("database or disk is full")
        if (code is not None and code & 0xFF == _SQLITE_READONLY) or "readonly database" in str(
            exc
        ):
            return StorageReadOnly(str(exc))
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "53100":  # psycopg's DiskFull
        return StorageFull("the PostgreSQL server's disk is full")
    if sqlstate == "25006":  # ReadOnlySqlTransaction: a standby, or a read-only default
        return StorageReadOnly("the PostgreSQL server accepts no writes: a standby?")
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code in _S3_FULL_CODES:  # botocore's ClientError
        return StorageFull("the object store is full")
    if type(exc).__module__.startswith("pymilvus"):  # "deny to write, reason: disk quota..."
        quota = _MILVUS_QUOTA.search(str(getattr(exc, "message", "") or exc))
        if quota is not None:
            return StorageFull(f"Milvus denies writes: {quota.group(0)}")
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
