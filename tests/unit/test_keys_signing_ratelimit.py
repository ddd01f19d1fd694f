"""API keys, URL signing and rate limiting."""

from __future__ import annotations

import pytest

from viewfinder.api.ratelimit import RateLimiter, RateLimitExceeded, parse_limit
from viewfinder.domain.keys import KeyRing, hash_key
from viewfinder.domain.service import ImageService
from viewfinder.domain.signing import UrlSigner, load_or_create_secret
from viewfinder.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDenied,
    ValidationError,
)


def test_keys_are_stored_hashed(service: ImageService) -> None:
    ring = KeyRing(service.metadata)
    issued = ring.create("acme")
    assert issued.secret.startswith("vf_")
    assert ring.authenticate(issued.secret).tenant == "acme"
    assert service.metadata.find_key(hash_key(issued.secret)) is not None
    assert service.metadata.find_key(issued.secret) is None
    with pytest.raises(AuthenticationError):
        ring.authenticate("vf_other")
    with pytest.raises(AuthenticationError, match="keys create"):
        ring.authenticate(None)
    with pytest.raises(ValidationError):
        ring.create("bad tenant!")


def test_signer(tmp_path) -> None:
    secret = load_or_create_secret(tmp_path / "s")
    assert load_or_create_secret(tmp_path / "s") == secret
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o600
    signer = UrlSigner(secret, ttl_s=60)
    expires, sig = signer.sign("img", now=1000)
    signer.verify("img", expires, sig, now=1000)
    with pytest.raises(PermissionDenied):
        signer.verify("other", expires, sig, now=1000)
    with pytest.raises(PermissionDenied, match="expired"):
        signer.verify("img", expires, sig, now=expires + 1)
    with pytest.raises(PermissionDenied):
        UrlSigner("another", 60).verify("img", expires, sig, now=1000)


def test_parse_limit() -> None:
    assert parse_limit("60/minute").window_s == 60
    assert parse_limit("5/10s").window_s == 10
    assert parse_limit("1/hour").requests == 1
    with pytest.raises(ConfigurationError):
        parse_limit("lots")


def test_rolling_window() -> None:
    now = [0.0]
    limiter = RateLimiter({"search": "2/10s"}, clock=lambda: now[0])
    assert limiter.hit("k", "search", {}).remaining == 1
    assert limiter.hit("k", "search", {}).remaining == 0
    with pytest.raises(RateLimitExceeded) as info:
        limiter.hit("k", "search", {})
    assert info.value.quota.retry_after_s == pytest.approx(10)
    assert limiter.hit("other-key", "search", {}).remaining == 1
    assert limiter.hit("k", "list", {}).limit == 1_000_000  # unlimited endpoint
    now[0] = 10.5
    assert limiter.hit("k", "search", {}).remaining == 1
    assert limiter.hit("k", "list", {"*": "1/day"}).limit == 1
