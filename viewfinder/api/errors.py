"""The one place where exceptions become HTTP error bodies."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ViewfinderError, unwritable_storage
from .allow import allowed_methods
from .ratelimit import RateLimitExceeded

log = logging.getLogger(__name__)

_TYPES = {
    400: "validation_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "validation_error",
    413: "validation_error",
    415: "validation_error",
    422: "validation_error",
    429: "rate_limit_error",
}


def error_response(
    status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The contract's error body."""
    error: dict[str, Any] = {"type": _TYPES.get(status, "server_error"), "message": message}
    if param:
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def unwritable_storage_response(exc: BaseException, where: str) -> JSONResponse | None:
    """The 503 for an error that says storage refuses writes, full or read-only
    (`errors.unwritable_storage`), logged in one line rather than a traceback a request; None
    for any other error."""
    refused = unwritable_storage(exc)
    if refused is None:
        return None
    log.error("%s failed: %s", where, refused.message)
    return error_response(
        refused.status, refused.message, headers={"Retry-After": str(refused.retry_after_s)}
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "form", "header"):
        loc = loc[1:]  # where the field was sent, not its name
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON", None
    return (f"{param}: {msg}" if param else msg), param


def _method_not_allowed(request: Request) -> Response:
    """OPTIONS answers with the path's methods; another method not among them gets 405."""
    allow = ", ".join(allowed_methods(request))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    return error_response(
        405,
        f"{request.method} is not allowed on {request.url.path}; allowed: {allow}",
        headers={"Allow": allow},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers that turn every error into the contract's body."""

    @app.exception_handler(ViewfinderError)
    async def _viewfinder(request: Request, exc: ViewfinderError) -> JSONResponse:
        if exc.status >= 500:
            full = unwritable_storage_response(exc, f"{request.method} {request.url.path}")
            if full is not None:
                return full
            log.error("request failed: %s", exc.message)
        headers = exc.quota.headers() if isinstance(exc, RateLimitExceeded) else None
        return error_response(exc.status, exc.message, exc.param, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return _method_not_allowed(request)
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        full = unwritable_storage_response(exc, f"{request.method} {request.url.path}")
        if full is not None:
            return full
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; the server log has details")
