"""Fetch an image URL on a user's behalf without becoming a proxy into our own network.

Server-side request forgery defences, all in one place:

- only http and https, no credentials in the URL;
- the host is resolved once, *every* address is checked, and the socket is opened to one of
  those checked addresses (httpcore gets a network backend that does this), so a DNS answer
  cannot change between the check and the connect; the Host header, TLS SNI and certificate
  check still use the name from the URL;
- no environment proxies (a proxy would resolve the name itself);
- redirects are followed by hand, each hop re-checked (scheme, name, addresses);
- one deadline for the whole fetch (DNS, connects, TLS, every read), a byte cap while streaming.

Cloud metadata endpoints (cloud_metadata.py: link-local addresses and each cloud's own) are
refused even when private addresses are allowed: no intranet image lives there, and it is the
prize of most such attacks.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpcore
import httpx

from viewfinder.errors import FetchError

from .cloud_metadata import is_metadata_name, metadata_endpoint, unwrap

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], Sequence[str]]
"""Turns (host, port) into IP address strings; `system_resolver` unless a test injects one."""

_SCHEMES = ("http", "https")
_REDIRECTS = (301, 302, 303, 307, 308)
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_MAX_SHOWN_URL = 200


@dataclass(frozen=True)
class FetchPolicy:
    """What a URL fetch may reach and how much it may cost."""

    allow_private: bool = False  # loopback, private, link-local... (tests, intranets)
    timeout_s: float = 10.0  # for the whole fetch, redirects included
    max_bytes: int = 25 * 1024 * 1024
    max_redirects: int = 5


@dataclass(frozen=True)
class Fetched:
    """A fetched body, not yet known to be an image."""

    data: bytes
    content_type: str | None
    final_url: str


def blocked_reason(address: str) -> str | None:
    """Why an IP address is not a public internet address ("loopback", ...), or None if it is.

    IPv4 addresses carried inside IPv6 (mapped, compatible, NAT64, 6to4) are judged as the
    IPv4 address.
    """
    ip = unwrap(ipaddress.ip_address(address))
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip in _SHARED_ADDRESS_SPACE:
        return "shared (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UrlFetcher:
    """Fetches http(s) URLs under a `FetchPolicy`; safe to share between threads."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`resolver` and `ssl_context` (to trust a private CA) default to the system's."""
        self._policy = policy
        self._resolver = resolver or system_resolver
        self._ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        # getaddrinfo cannot be given a timeout; running it here lets the deadline win.
        self._dns = ThreadPoolExecutor(max_workers=4, thread_name_prefix="viewfinder-dns")
        self._closed = False

    def fetch(self, url: str, *, deadline: float | None = None) -> Fetched:
        """GET url under the policy, by `deadline` (a `time.monotonic()` instant) if that comes
        before the policy's time limit; raises FetchError saying why it could not."""
        if self._closed:
            raise RuntimeError("UrlFetcher is closed")
        shown = shown_url(url)
        started = time.monotonic()
        limit = started + self._policy.timeout_s
        deadline = limit if deadline is None else min(limit, deadline)
        backend = _GuardedBackend(self._resolve_checked, deadline)
        try:
            # A pool per fetch: the deadline lives in its backend, and fetches never share
            # connections opened under another fetch's checks.
            with httpcore.ConnectionPool(
                ssl_context=self._ssl_context, network_backend=backend
            ) as pool:
                return self._follow(pool, url, deadline)
        except FetchError as exc:
            logger.info("refused or failed to fetch %s: %s", shown, exc.message)
            raise FetchError(f"could not fetch {shown}: {exc.message}", param=exc.param) from None
        except httpcore.TimeoutException:
            message = f"timed out after {deadline - started:.2g} s"
        except httpcore.ConnectError as exc:
            message = f"could not connect: {_detail(exc)}"
        except (httpcore.ProtocolError, httpcore.NetworkError) as exc:
            message = f"bad or broken HTTP response: {_detail(exc)}"
        logger.info("failed to fetch %s: %s", shown, message)
        raise FetchError(f"could not fetch {shown}: {message}")

    def close(self) -> None:
        """Release the resolver threads; the fetcher cannot be used afterwards."""
        self._closed = True
        self._dns.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> UrlFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _follow(self, pool: httpcore.ConnectionPool, url: str, deadline: float) -> Fetched:
        current = _parse(url)
        for _ in range(self._policy.max_redirects + 1):
            with pool.stream(
                "GET",
                httpcore.URL(
                    scheme=current.raw_scheme,
                    host=current.raw_host,
                    port=current.port,
                    target=current.raw_path,
                ),
                headers=[
                    (b"Host", current.netloc),
                    (b"Accept", b"image/*, */*;q=0.5"),
                    (b"Accept-Encoding", b"identity"),
                    (b"User-Agent", b"viewfinder"),
                ],
                extensions={"timeout": _timeouts(deadline)},
            ) as response:
                if response.status in _REDIRECTS:
                    location = _header(response, b"location")
                    if not location:
                        raise FetchError(f"HTTP {response.status} redirect without a Location")
                    current = _redirect_target(current, location)
                    continue
                if not 200 <= response.status < 300:
                    raise FetchError(f"the server answered HTTP {response.status}")
                data = self._read_capped(response, deadline)
                return Fetched(
                    data=data,
                    content_type=_header(response, b"content-type"),
                    final_url=str(current),
                )
        raise FetchError(f"too many redirects (more than {self._policy.max_redirects})")

    def _read_capped(self, response: httpcore.Response, deadline: float) -> bytes:
        limit = self._policy.max_bytes
        declared = _header(response, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_stream():
            size += len(chunk)
            if size > limit:
                raise FetchError(f"the body is larger than {limit} bytes")
            chunks.append(chunk)
            _remaining(deadline, httpcore.ReadTimeout)
        return b"".join(chunks)

    def _resolve_checked(self, host: str, port: int, deadline: float) -> list[str]:
        """Every address of host, each one checked; refuses the lot if any is refused."""
        _check_name(host)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            addresses = self._resolve(host, port, deadline)
        else:
            addresses = [str(literal)]
        for address in addresses:
            self._check_address(host, address)
        return addresses

    def _resolve(self, host: str, port: int, deadline: float) -> list[str]:
        future = self._dns.submit(self._resolver, host, port)
        try:
            addresses = list(future.result(timeout=_remaining(deadline, httpcore.ConnectTimeout)))
        except FutureTimeout:
            future.cancel()
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise FetchError(f"could not resolve {host}: {_detail(exc)}") from None
        if not addresses:
            raise FetchError(f"could not resolve {host}: no addresses")
        return addresses

    def _check_address(self, host: str, address: str) -> None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise FetchError(f"{host} resolved to an invalid address {address!r}") from None
        what = host if host == address else f"{host} resolves to {address}, which"
        endpoint = metadata_endpoint(ip)
        if endpoint is not None:
            raise FetchError(f"{what} is a cloud metadata address ({endpoint.what}); refused")
        reason = blocked_reason(address)
        if reason is not None and not self._policy.allow_private:
            raise FetchError(f"{what} is a {reason} address; refused")


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore network backend that connects only to checked addresses, within a deadline."""

    def __init__(self, resolve: Callable[[str, int, float], list[str]], deadline: float) -> None:
        self._resolve = resolve
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolve(host, port, self._deadline)
        options = list(socket_options or [])
        last_error: httpcore.ConnectError | None = None
        for address in addresses:  # all already checked: any of them is fine to try
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_clamp(timeout, self._deadline, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert last_error is not None
        raise last_error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise FetchError("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """Caps every socket operation at the time left before the fetch's deadline, so a server
    trickling one byte at a time cannot stretch the fetch."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, self._deadline, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=_clamp(timeout, self._deadline, httpcore.ConnectTimeout),
        )
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"not a valid URL ({_detail(exc)})") from None
    except UnicodeError:  # a lone surrogate: no bytes to send, and no URL to show
        raise FetchError("not a valid URL (it is not valid Unicode)") from None
    if parsed.scheme not in _SCHEMES:
        raise FetchError(f"only http and https URLs are fetched, not {parsed.scheme or 'none'!r}")
    if not parsed.host:
        raise FetchError("the URL has no host")
    if parsed.userinfo:
        raise FetchError("URLs with credentials are not fetched")
    _check_name(parsed.host)
    return parsed


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    try:
        target = str(current.join(location))
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"redirected to an invalid URL ({_detail(exc)})") from None
    return _parse(target)


def _check_name(host: str) -> None:
    if is_metadata_name(host):
        raise FetchError(f"{host} is a cloud metadata service; refused")


def _remaining(deadline: float, timeout_error: type[Exception]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_error("the fetch ran out of time")
    return left


def _clamp(timeout: float | None, deadline: float, timeout_error: type[Exception]) -> float:
    left = _remaining(deadline, timeout_error)
    return left if timeout is None else min(timeout, left)


def _timeouts(deadline: float) -> dict[str, float]:
    left = _remaining(deadline, httpcore.PoolTimeout)
    return {"connect": left, "read": left, "write": left, "pool": left}


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def shown_url(url: str) -> str:
    """The URL for messages and logs, without credentials or query (signed URLs keep secrets
    there)."""
    shown = str(url).split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = shown.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        shown = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return shown if len(shown) <= _MAX_SHOWN_URL else shown[:_MAX_SHOWN_URL] + "..."


def _detail(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
