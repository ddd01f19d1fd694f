"""ASGI middleware: request ids, the request size caps, the rate-limit headers, and the
last resort for unexpected errors."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response, unwritable_storage_response
from .ratelimit import UNLIMITED_QUOTA, Quota

log = logging.getLogger(__name__)
_FORMS = (b"multipart/form-data", b"application/x-www-form-urlencoded")

REQUEST_ID = "x-request-id"


class _TooLarge(BaseException):  # noqa: N818 - must pass through handlers that catch Exception
    pass


class EdgeMiddleware:
    """Echo or make X-Request-ID, cap body size, add x-ratelimit-* headers on /v1, answer an
    unexpected error with the 500 envelope.

    Only uploads (forms) may be as large as `max_request_bytes`: their file parts are spooled
    to disk and their text fields bounded by the form parser. Any other body (a search's
    JSON, read whole into memory) is capped at `max_json_body_bytes`.
    """

    def __init__(
        self, app: ASGIApp, max_request_bytes: int, max_json_body_bytes: int | None = None
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_json_body_bytes = max_json_body_bytes or max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:200] or uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        path: str = scope.get("path", "")
        is_api = path.startswith("/v1/") or path.startswith("/images")
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                out = list(message.get("headers", []))
                out.append((b"x-request-id", request_id.encode("latin-1")))
                if is_api:
                    quota: Quota = state.get("quota", UNLIMITED_QUOTA)
                    present = {k.lower() for k, _ in out}
                    for name, value in quota.headers().items():
                        if name.encode() not in present:
                            out.append((name.encode(), value.encode()))
                message["headers"] = out
            await send(message)

        content_type = headers.get(b"content-type", b"").lower()
        multipart = content_type.startswith(_FORMS)
        limit = self.max_request_bytes if multipart else self.max_json_body_bytes
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await self._reject(send_wrapper, multipart)
            return
        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except _TooLarge:
            if not started:
                await self._reject(send_wrapper, multipart)
        except Exception as exc:
            # Answered here rather than by Starlette's ServerErrorMiddleware, which re-raises
            # after its reply, so that the server closed the client's keep-alive connection.
            if started:
                raise  # the reply is half sent: only closing the connection can end it
            response = unwritable_storage_response(exc, f"{scope.get('method')} {path}")
            if response is None:
                log.exception("unhandled error on %s %s", scope.get("method"), path)
                response = error_response(500, "internal server error; the server log has details")
            await response(scope, receive_wrapper, send_wrapper)

    async def _reject(self, send: Send, multipart: bool) -> None:
        if multipart:
            message = (
                f"request body larger than {self.max_request_bytes} bytes; send fewer or "
                "smaller images per request (VIEWFINDER_MAX_REQUEST_BYTES)"
            )
        else:
            message = (
                f"request body larger than {self.max_json_body_bytes} bytes; only uploads "
                "(forms) may be larger (VIEWFINDER_MAX_JSON_BODY_BYTES)"
            )
        body = json.dumps({"error": {"type": "validation_error", "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
