"""Request-scoped dependencies: the caller's key and tenant, rate limiting, URL building."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.responses import Response

from ..domain.keys import KeyRing
from ..domain.records import ApiKey
from ..domain.service import ImageService
from ..domain.signing import UrlSigner
from .ratelimit import RateLimiter
from .upload_form import UploadRules

_F = TypeVar("_F", bound=Callable[..., Any])
_KEY_FIRST = "_viewfinder_key_first"


@dataclass
class AppContext:
    """What the routes need, built once per app."""

    service: ImageService
    keys: KeyRing
    limiter: RateLimiter
    signer: UrlSigner
    public_url: str | None
    max_images_per_request: int
    uploads: UploadRules = field(default_factory=UploadRules)


def context(request: Request) -> AppContext:
    """The app's context."""
    ctx: AppContext = request.app.state.ctx
    return ctx


def _secret_from(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def caller(request: Request, endpoint: str) -> ApiKey:
    """Authenticate the request and count it against the key's limit for `endpoint` (once:
    a request KeyFirstRoute already let in is not counted again)."""
    known: tuple[str, ApiKey] | None = getattr(request.state, "caller", None)
    if known is not None and known[0] == endpoint:
        return known[1]
    ctx = context(request)
    key = ctx.keys.authenticate(_secret_from(request))
    request.state.quota = ctx.limiter.hit(key.key_id, endpoint, key.rate_limits)
    request.state.caller = (endpoint, key)
    return key


def key_first(endpoint: str) -> Callable[[_F], _F]:
    """Mark a route with a body to authenticate and rate-limit (as `endpoint`) from the
    headers before its body is read (see KeyFirstRoute)."""

    def mark(fn: _F) -> _F:
        setattr(fn, _KEY_FIRST, endpoint)
        return fn

    return mark


class KeyFirstRoute(APIRoute):
    """A route that, when marked with `key_first`, checks the key and the rate limit before
    FastAPI reads and parses the body: an anonymous or throttled client's upload is refused
    without being received or spooled."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        endpoint: str | None = getattr(self.endpoint, _KEY_FIRST, None)
        if endpoint is None:
            return handler

        async def checked(request: Request) -> Response:
            await run_in_threadpool(caller, request, endpoint)  # a key lookup may hit the store
            return await handler(request)

        return checked


def image_url(request: Request, image_id: str) -> str:
    """An absolute, signed, expiring URL of an image's bytes."""
    ctx = context(request)
    expires, sig = ctx.signer.sign(image_id)
    base = (ctx.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/files/{image_id}?expires={expires}&sig={sig}"
