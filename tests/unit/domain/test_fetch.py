"""UrlFetcher against a real HTTP server on 127.0.0.1; no traffic goes anywhere else.

Names other than localhost go through an injected resolver, and every refused address is
refused before a connection is attempted.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from viewfinder.domain.cloud_metadata import metadata_endpoint
from viewfinder.domain.fetch import (
    Fetched,
    FetchPolicy,
    Resolver,
    UrlFetcher,
    blocked_reason,
)
from viewfinder.errors import FetchError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PRIVATE = FetchPolicy(allow_private=True, timeout_s=2.0)


@dataclass
class Server:
    port: int
    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def make_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def send(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            if "Content_Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            server.paths.append(self.path)
            server.hosts.append(self.headers.get("Host", ""))
            path, _, query = self.path.partition("?")
            if path == "/img":
                self.send(200, PNG, Content_Type="image/png")
            elif path == "/host":
                self.send(200, self.headers.get("Host", "").encode())
            elif path == "/big":
                self.send(200, b"x" * 10_000)
            elif path == "/big-no-length":
                self.send_response(200)
                self.end_headers()  # HTTP/1.0: the body runs until the connection closes
                for _ in range(10):
                    self.wfile.write(b"x" * 1_000)
            elif path.startswith("/loop/"):
                n = int(path.rsplit("/", 1)[1])
                self.send(302, Location=f"/loop/{n + 1}")
            elif path == "/redirect":
                self.send(302, Location=query)
            elif path == "/moved":
                self.send(301, Location="img")
            elif path == "/no-location":
                self.send(302)
            elif path == "/slow":
                server.release.wait(2.0)
                self.send(200, PNG)
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(100):
                    if server.release.wait(0.05):
                        return
                    self.wfile.write(b"x")
                    self.wfile.flush()
            else:
                self.send(404, b"not here")

    return Handler


@contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    state = Server(port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state


@pytest.fixture
def fetcher() -> Iterator[UrlFetcher]:
    with UrlFetcher(PRIVATE) as f:
        yield f


def resolver_of(table: dict[str, Sequence[str]], calls: list[str] | None = None) -> Resolver:
    def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def refuse_to_resolve(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"{host} should have been refused before any DNS lookup")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::a9fe:a9fe", "link-local"),  # IPv4-compatible form of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 form of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 form of 127.0.0.1
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("100.127.255.254", "shared (carrier-grade NAT)"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("2001:db8::1", "private"),
    ],
)
def test_blocked_addresses(address: str, reason: str) -> None:
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "100.128.0.1",
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
    ],
)
def test_public_addresses(address: str) -> None:
    assert blocked_reason(address) is None


def test_default_policy_refuses_loopback(server: Server) -> None:
    with UrlFetcher(FetchPolicy()) as f:
        with pytest.raises(FetchError, match="loopback address; refused") as err:
            f.fetch(server.url("/img"))
        assert err.value.status == 400
        with pytest.raises(FetchError, match="localhost resolves to .* loopback"):
            f.fetch(f"http://localhost:{server.port}/img")
        with pytest.raises(FetchError, match="loopback"):
            f.fetch(f"http://[::ffff:127.0.0.1]:{server.port}/img")
    assert server.paths == []


def test_allow_private_fetches(server: Server, fetcher: UrlFetcher) -> None:
    got = fetcher.fetch(server.url("/img"))
    assert got == Fetched(data=PNG, content_type="image/png", final_url=server.url("/img"))


def test_tls_checks_the_name_while_connecting_to_the_checked_address() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("images.example").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    resolve = resolver_of({"images.example": ["127.0.0.1"]})
    with serving(server_tls) as tls_server:
        with UrlFetcher(PRIVATE, resolver=resolve, ssl_context=client_tls) as f:
            got = f.fetch(f"https://images.example:{tls_server.port}/host")
            assert got.data == f"images.example:{tls_server.port}".encode()
            # The certificate names images.example, not the address it was reached at.
            with pytest.raises(FetchError, match="could not connect"):
                f.fetch(f"https://127.0.0.1:{tls_server.port}/host")
        system_trust = UrlFetcher(PRIVATE, resolver=resolve)  # does not know the test CA
        with system_trust as f, pytest.raises(FetchError, match="certificate verify failed"):
            f.fetch(f"https://images.example:{tls_server.port}/host")
    assert tls_server.paths == ["/host"]


def test_one_refused_address_refuses_the_host(server: Server) -> None:
    calls: list[str] = []
    resolve = resolver_of({"images.example": ["93.184.216.34", "127.0.0.1"]}, calls)
    with UrlFetcher(FetchPolicy(), resolver=resolve) as f, pytest.raises(FetchError) as err:
        f.fetch(f"http://images.example:{server.port}/img")
    assert "images.example resolves to 127.0.0.1" in err.value.message
    assert calls == ["images.example"]
    assert server.paths == []


def test_connects_to_the_checked_address_with_the_original_host(server: Server) -> None:
    calls: list[str] = []
    resolve = resolver_of({"images.example": ["127.0.0.1"]}, calls)
    with UrlFetcher(PRIVATE, resolver=resolve) as f:
        got = f.fetch(f"http://images.example:{server.port}/host")
    assert got.data == f"images.example:{server.port}".encode()
    assert calls == ["images.example"]  # resolved once, and that answer was used


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/image.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "data:image/png;base64,iVBORw0KGgo=",
        "/relative/path.png",
        "http:///no-host",
        "http://user:secret@127.0.0.1/img",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
    ],
)
def test_refused_urls(url: str) -> None:
    with UrlFetcher(PRIVATE, resolver=refuse_to_resolve) as f, pytest.raises(FetchError) as err:
        f.fetch(url)
    assert "secret" not in err.value.message


METADATA_ADDRESSES = [
    "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, IBM
    "169.254.170.2",  # AWS ECS task metadata
    "169.254.170.23",  # AWS EKS Pod Identity
    "169.254.0.23",  # Tencent Cloud
    "169.254.1.1",  # anything else link-local
    "fd00:ec2::254",  # AWS IPv6
    "fd00:ec2::23",  # AWS EKS Pod Identity, IPv6
    "fd20:ce::254",  # GCP IPv6
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud
    "168.63.129.16",  # Azure WireServer
    "fe80::a9fe:a9fe",  # AWS, IPv6 link-local form
    "fe80::1",
]


def ipv6_forms(ipv4: str) -> list[str]:
    """Every IPv6 spelling of an IPv4 address that the fetcher must see through."""
    a = ipaddress.IPv4Address(ipv4)
    hi, lo = int(a) >> 16, int(a) & 0xFFFF
    return [
        f"::ffff:{a}",  # mapped
        f"::ffff:{hi:x}:{lo:x}",  # mapped, hex
        f"::ffff:0:{hi:x}:{lo:x}",  # translated (SIIT)
        f"::{hi:x}:{lo:x}",  # compatible
        f"64:ff9b::{hi:x}:{lo:x}",  # NAT64, well-known prefix
        f"64:ff9b:1::{hi:x}:{lo:x}",  # NAT64, local-use prefix
        f"2002:{hi:x}:{lo:x}::1",  # 6to4
    ]


METADATA_FORMS = METADATA_ADDRESSES + [
    form for a in METADATA_ADDRESSES if ":" not in a for form in ipv6_forms(a)
]


@pytest.mark.parametrize("address", METADATA_FORMS)
def test_metadata_addresses_refused_even_when_private_allowed(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    refused = "cloud metadata address .*; refused"
    with (
        UrlFetcher(PRIVATE, resolver=refuse_to_resolve) as f,
        pytest.raises(FetchError, match=refused),
    ):
        f.fetch(f"http://{host}/latest/meta-data/")
    # and when a name resolves to it
    rebind = resolver_of({"rebind.example": [address]})
    with UrlFetcher(PRIVATE, resolver=rebind) as f, pytest.raises(FetchError, match=refused):
        f.fetch("http://rebind.example/latest/meta-data/")


@pytest.mark.parametrize(
    "name",
    [
        "metadata.google.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    ],
)
def test_metadata_names_refused_before_resolving(name: str) -> None:
    refused = "cloud metadata service; refused"
    with (
        UrlFetcher(PRIVATE, resolver=refuse_to_resolve) as f,
        pytest.raises(FetchError, match=refused),
    ):
        f.fetch(f"http://{name}/")


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.0.10", "::ffff:10.0.0.1", "fd12::1"])
def test_private_addresses_next_to_metadata_ones_stay_allowed(address: str) -> None:
    # the always-refused list is about metadata, not everything private
    assert metadata_endpoint(address) is None


def test_follows_redirects(server: Server, fetcher: UrlFetcher) -> None:
    got = fetcher.fetch(server.url("/redirect?/moved"))
    assert got.data == PNG
    assert got.final_url == server.url("/img")
    assert server.paths == ["/redirect?/moved", "/moved", "/img"]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://rebind.example/latest/meta-data/",  # resolves to the metadata address
        "ftp://127.0.0.1/image.png",
        "file:///etc/passwd",
        "http://images.example:abc/",  # not a URL at all
    ],
)
def test_each_redirect_hop_is_checked(server: Server, target: str) -> None:
    resolve = resolver_of({"rebind.example": ["169.254.169.254"]})
    with UrlFetcher(PRIVATE, resolver=resolve) as f, pytest.raises(FetchError):
        f.fetch(server.url(f"/redirect?{target}"))
    assert server.paths == [f"/redirect?{target}"]


def test_private_literals_refused_by_default() -> None:
    with UrlFetcher(FetchPolicy(), resolver=resolver_of({})) as f:
        with pytest.raises(FetchError, match="private"):
            f.fetch("http://10.0.0.1/img")
        with pytest.raises(FetchError, match="link-local"):
            f.fetch("http://[fe80::1]/img")


def test_too_many_redirects(server: Server) -> None:
    policy = FetchPolicy(allow_private=True, max_redirects=3)
    with UrlFetcher(policy) as f, pytest.raises(FetchError, match="too many redirects"):
        f.fetch(server.url("/loop/0"))
    assert server.paths == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


def test_redirect_without_location(server: Server, fetcher: UrlFetcher) -> None:
    with pytest.raises(FetchError, match="without a Location"):
        fetcher.fetch(server.url("/no-location"))


def test_not_found(server: Server, fetcher: UrlFetcher) -> None:
    with pytest.raises(FetchError, match="HTTP 404") as err:
        fetcher.fetch(server.url("/missing.png"))
    assert "Traceback" not in err.value.message


@pytest.mark.parametrize("path", ["/big", "/big-no-length"])
def test_byte_cap(server: Server, path: str) -> None:
    with UrlFetcher(FetchPolicy(allow_private=True, max_bytes=5_000)) as f:
        with pytest.raises(FetchError, match="larger than 5000 bytes"):
            f.fetch(server.url(path))
        assert len(f.fetch(server.url("/img")).data) == len(PNG)


def test_timeout(server: Server) -> None:
    with UrlFetcher(FetchPolicy(allow_private=True, timeout_s=0.3)) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out after 0.3 s"):
            f.fetch(server.url("/slow"))
    assert time.monotonic() - started < 1.0


def test_timeout_covers_the_whole_body(server: Server) -> None:
    # Each byte arrives well within any per-read timeout; only a total deadline stops it.
    with UrlFetcher(FetchPolicy(allow_private=True, timeout_s=0.4)) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            f.fetch(server.url("/drip"))
    assert time.monotonic() - started < 1.0


def test_slow_dns_counts_against_the_timeout() -> None:
    def slow(host: str, port: int) -> Sequence[str]:
        time.sleep(0.5)
        return ["127.0.0.1"]

    with UrlFetcher(FetchPolicy(allow_private=True, timeout_s=0.2), resolver=slow) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            f.fetch("http://slow-dns.example/img")
        assert time.monotonic() - started < 0.45


def test_unresolvable_host() -> None:
    fetcher = UrlFetcher(FetchPolicy(), resolver=resolver_of({}))
    with fetcher as f, pytest.raises(FetchError, match="could not resolve nowhere.example"):
        f.fetch("http://nowhere.example/img")


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with UrlFetcher(PRIVATE) as f, pytest.raises(FetchError, match="could not connect"):
        f.fetch(f"http://127.0.0.1:{port}/img")


def test_closed_fetcher() -> None:
    f = UrlFetcher(FetchPolicy())
    f.close()
    f.close()
    with pytest.raises(RuntimeError):
        f.fetch("http://127.0.0.1/img")
