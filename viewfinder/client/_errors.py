"""The errors of the remote client: an API error is also the library error of the same meaning."""

from __future__ import annotations

import httpx

from .. import errors


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


def error_from(response: httpx.Response) -> ViewfinderAPIError:
    """The exception of an error response (its body when it is ours, else its status)."""
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
        exc.retry_after = retry_after_header(response) or 0.0
    return exc


def retry_after_header(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, if given as a number."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None  # an HTTP date or nothing: fall back to our own backoff
