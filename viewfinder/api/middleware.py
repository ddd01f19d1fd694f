"""ASGI middleware: request ids, the request size cap and the rate-limit headers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .ratelimit import UNLIMITED_QUOTA, Quota

REQUEST_ID = "x-request-id"


class _TooLarge(BaseException):  # noqa: N818 - must pass through handlers that catch Exception
    pass


class EdgeMiddleware:
    """Echo or make X-Request-ID, cap body size, add x-ratelimit-* headers on /v1."""

    def __init__(self, app: ASGIApp, max_request_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

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

        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_request_bytes:
            await self._reject(send_wrapper)
            return
        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except _TooLarge:
            if not started:
                await self._reject(send_wrapper)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "type": "validation_error",
                    "message": f"request body larger than {self.max_request_bytes} bytes; send "
                    "fewer or smaller images per request (VIEWFINDER_MAX_REQUEST_BYTES)",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
