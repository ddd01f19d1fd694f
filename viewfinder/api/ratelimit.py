"""Per-key, per-endpoint request limits.

Counted in process memory over a rolling window (one process, the embedded stores), or in a
shared metadata store over fixed windows, so that N API processes allow the limit once, not N
times (`SharedWindowCounters`, e.g. PostgreSQL).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError, RateLimited

_UNITS = {
    "s": 1,
    "second": 1,
    "m": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")

# What the headers say when no limit applies: a large, honest "you will not be limited".
UNLIMITED = 1_000_000


@dataclass(frozen=True)
class Limit:
    """N requests per window of `window_s` seconds."""

    requests: int
    window_s: float


@dataclass(frozen=True)
class Quota:
    """The state reported in the x-ratelimit-* headers."""

    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float = 0.0

    def headers(self) -> dict[str, str]:
        """The four rate-limit headers of the contract."""
        return {
            "x-ratelimit-requests-limit": str(self.limit),
            "x-ratelimit-requests-remaining": str(self.remaining),
            "x-ratelimit-requests-reset": str(int(round(self.reset_s))),
            "retry-after": str(int(-(-self.retry_after_s // 1))),
        }


UNLIMITED_QUOTA = Quota(limit=UNLIMITED, remaining=UNLIMITED, reset_s=0)


def parse_limit(spec: str) -> Limit:
    """Parse '60/minute', '10/s', '5/10s', '1000/hour'."""
    match = _SPEC.match(spec.lower())
    if not match or match.group(3) not in _UNITS:
        raise ConfigurationError(
            f"bad rate limit {spec!r}: write N/UNIT with UNIT one of second, minute, hour, day "
            "(e.g. 60/minute or 5/10s)"
        )
    count, multiple, unit = match.groups()
    return Limit(int(count), float(int(multiple or 1) * _UNITS[unit]))


def parse_limits(specs: Mapping[str, str]) -> dict[str, Limit]:
    """Parse an endpoint -> spec mapping ('*' is the default for any endpoint)."""
    return {endpoint: parse_limit(spec) for endpoint, spec in specs.items()}


@runtime_checkable
class SharedWindowCounters(Protocol):
    """Request counters every process sees: fixed windows, counted atomically."""

    def count_request(self, key_id: str, endpoint: str, window_s: float) -> tuple[int, float]:
        """Count one request in the current window of `window_s` seconds (the store's clock);
        (requests counted in it so far, this one included; seconds until it ends)."""
        ...


class RateLimiter:
    """A sliding log of request times per (key, endpoint), or shared fixed-window counters."""

    def __init__(
        self,
        defaults: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedWindowCounters | None = None,
    ) -> None:
        self._defaults = parse_limits(defaults)
        self._clock = clock
        self._shared = shared
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, str], deque[float]] = {}

    def _limit_for(self, endpoint: str, overrides: Mapping[str, str]) -> Limit | None:
        for table in (parse_limits(overrides) if overrides else {}, self._defaults):
            if endpoint in table:
                return table[endpoint]
            if "*" in table:
                return table["*"]
        return None

    def hit(self, key_id: str, endpoint: str, overrides: Mapping[str, str]) -> Quota:
        """Count one request; raise RateLimited when over the limit."""
        limit = self._limit_for(endpoint, overrides)
        if limit is None:
            return UNLIMITED_QUOTA
        if self._shared is not None:
            count, reset = self._shared.count_request(key_id, endpoint, limit.window_s)
            if count > limit.requests:
                raise RateLimitExceeded(Quota(limit.requests, 0, reset, reset))
            return Quota(limit.requests, limit.requests - count, reset)
        now = self._clock()
        with self._lock:
            log = self._logs.setdefault((key_id, endpoint), deque())
            while log and log[0] <= now - limit.window_s:
                log.popleft()
            if len(log) >= limit.requests:
                wait = log[0] + limit.window_s - now
                raise RateLimitExceeded(Quota(limit.requests, 0, wait, wait))
            log.append(now)
            reset = log[0] + limit.window_s - now
            return Quota(limit.requests, limit.requests - len(log), reset)


def rate_limiter(defaults: Mapping[str, str], store: object, shared: bool) -> RateLimiter:
    """The limiter of an API process: counters in `store` when it can share them (and
    `shared`), else in this process's memory."""
    counters = store if shared and isinstance(store, SharedWindowCounters) else None
    return RateLimiter(defaults, shared=counters)


class RateLimitExceeded(RateLimited):
    """RateLimited carrying the quota for the response headers."""

    def __init__(self, quota: Quota) -> None:
        super().__init__(
            f"rate limit exceeded: {quota.limit} requests per window; retry after "
            f"{int(-(-quota.retry_after_s // 1))} s",
            retry_after=quota.retry_after_s,
        )
        self.quota = quota
