"""Request-scoped dependencies: the caller's key and tenant, rate limiting, URL building."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..domain.keys import KeyRing
from ..domain.records import ApiKey
from ..domain.service import ImageService
from ..domain.signing import UrlSigner
from .ratelimit import RateLimiter


@dataclass
class AppContext:
    """What the routes need, built once per app."""

    service: ImageService
    keys: KeyRing
    limiter: RateLimiter
    signer: UrlSigner
    public_url: str | None
    max_images_per_request: int


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
    """Authenticate the request and count it against the key's limit for `endpoint`."""
    ctx = context(request)
    key = ctx.keys.authenticate(_secret_from(request))
    request.state.quota = ctx.limiter.hit(key.key_id, endpoint, key.rate_limits)
    return key


def image_url(request: Request, image_id: str) -> str:
    """An absolute, signed, expiring URL of an image's bytes."""
    ctx = context(request)
    expires, sig = ctx.signer.sign(image_id)
    base = (ctx.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/files/{image_id}?expires={expires}&sig={sig}"
