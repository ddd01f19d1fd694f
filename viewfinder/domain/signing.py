"""Signed, expiring image URLs: HMAC-SHA256 over the image id and the expiry."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from ..errors import PermissionDenied


def load_or_create_secret(path: Path) -> str:
    """Read the server secret, making it once (mode 0600) when absent."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(secret)
    tmp.chmod(0o600)
    tmp.replace(path)
    return secret


class UrlSigner:
    """Makes and checks the `sig`/`expires` query of an image URL."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret.encode()
        self._ttl_s = ttl_s

    def _mac(self, image_id: str, expires: int) -> str:
        msg = f"{image_id}:{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def sign(self, image_id: str, now: float | None = None) -> tuple[int, str]:
        """Return (expires, signature) for an image id."""
        # Round the expiry up to a minute so repeated listings give stable, cacheable URLs.
        expires = int(((now or time.time()) + self._ttl_s) // 60 * 60 + 60)
        return expires, self._mac(image_id, expires)

    def verify(self, image_id: str, expires: int, signature: str, now: float | None = None) -> None:
        """Raise PermissionDenied for a tampered or expired URL."""
        # Compared as bytes: compare_digest refuses str holding non-ASCII (a TypeError, a 500).
        given = signature.encode("utf-8", "replace")
        if not hmac.compare_digest(self._mac(image_id, expires).encode(), given):
            raise PermissionDenied(
                "invalid image URL signature; get a fresh image_url from the API"
            )
        if expires < (now or time.time()):
            raise PermissionDenied("image URL expired; get a fresh image_url from the API")
