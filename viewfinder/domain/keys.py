"""API keys: made random, stored only as a hash, looked up by hash."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from ..errors import AuthenticationError, ValidationError
from .ports import MetadataStore
from .records import ApiKey

KEY_PREFIX = "vf_"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def hash_key(key: str) -> str:
    """Keys are 256-bit random, so a plain SHA-256 is a safe one-way hash."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: the secret is shown once, never stored."""

    secret: str
    key: ApiKey


class KeyRing:
    """Creates and checks API keys against the metadata store."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def create(self, tenant: str, rate_limits: dict[str, str] | None = None) -> IssuedKey:
        """Make a key for a tenant (keys of one tenant share its images)."""
        if not _TENANT.match(tenant):
            raise ValidationError(
                f"invalid tenant name {tenant!r}: use 1-64 letters, digits, '.', '_' or '-'",
                param="tenant",
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(6)
        key = self._store.create_key(key_id, hash_key(secret), tenant, rate_limits or {})
        return IssuedKey(secret=secret, key=key)

    def authenticate(self, secret: str | None) -> ApiKey:
        """Return the key a secret belongs to, or raise AuthenticationError."""
        if not secret:
            raise AuthenticationError(
                "missing API key: send it as `X-Api-Key: <key>` or `Authorization: Bearer <key>` "
                "(create one with `viewfinder keys create TENANT`)"
            )
        key = self._store.find_key(hash_key(secret.strip()))
        if key is None:
            raise AuthenticationError("invalid API key")
        return key
