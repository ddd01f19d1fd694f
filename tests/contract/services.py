"""Real backing services for the contract and multi-process tests, each started and stopped here.

- PostgreSQL: a throwaway cluster (initdb in a temporary folder, a free port), run as the
  `postgres` OS user when the tests run as root.
- S3: moto's server mode in a subprocess.
- Milvus: the Milvus Lite gRPC server in a subprocess, standing in for a Milvus cluster.
- PgBouncer: Debian's `pgbouncer` in transaction mode in front of the PostgreSQL server.

Each `start()` raises `Unavailable` with the reason when its package or binary is missing, so
fixtures can skip cleanly. With `VIEWFINDER_TEST_REQUIRE_SERVICES=1` (set by `.ci/run`) a missing
service fails the tests that need it instead: CI must not pass by skipping them.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

REQUIRE_SERVICES_VAR = "VIEWFINDER_TEST_REQUIRE_SERVICES"


class Unavailable(Exception):
    """A service can't run here; the message says why (and how to fix it)."""


def services_required() -> bool:
    """Whether a missing service must fail the tests (CI) rather than skip them (a laptop)."""
    return os.environ.get(REQUIRE_SERVICES_VAR, "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of a service, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_VAR} is set)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited early:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"service did not listen on {port}:\n{log.read_text(errors='replace')}")


def _need(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Unavailable(f"{module} is not installed (pip install 'viewfinder[{extra}]')")


def need_module(module: str, extra: str) -> None:
    """For a test or fixture: skip (or fail, see `unavailable`) when a package is missing."""
    try:
        _need(module, extra)
    except Unavailable as exc:
        reason = str(exc)
    else:
        return
    unavailable(reason)  # outside the except block: the report shows the reason alone


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class PostgresServer:
    """A private PostgreSQL cluster on a free port; `database()` makes a fresh database."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder: Path | None = None
        self._as: list[str] = []
        self._bin: Path | None = None
        self._options = ""

    @staticmethod
    def find_bin() -> Path | None:
        """The folder of initdb/pg_ctl: Debian's /usr/lib/postgresql/N/bin, else PATH."""
        found = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/initdb"),
            key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        )
        if found:
            return Path(found[-1]).parent
        initdb = shutil.which("initdb")
        return Path(initdb).parent if initdb else None

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        _need("psycopg", "postgres")
        _need("psycopg_pool", "postgres")
        self._bin = self.find_bin()
        if self._bin is None:
            raise Unavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
        # Not pytest's tmp_path: the postgres user must be able to reach the folder.
        self.folder = Path(tempfile.mkdtemp(prefix="viewfinder-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise Unavailable("running as root and there is no `postgres` user") from exc
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        data = self.folder / "data"
        self._run(
            str(self._bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self._options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self._bin / "pg_ctl"), "-D", str(data), "-o", self._options,
            "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pause(self) -> None:
        """Stop the server, keeping its data (an outage); `resume` starts it again."""
        assert self.folder is not None and self._bin is not None
        self._run(
            str(self._bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"
        )  # fmt: skip

    def resume(self) -> None:
        """Start the server again after `pause`, on the same port."""
        assert self.folder is not None and self._bin is not None
        self._run(
            str(self._bin / "pg_ctl"), "-D", str(self.folder / "data"), "-o", self._options,
            "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        if self.folder is None or self._bin is None:
            return
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(
                str(self._bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                "-w", "stop",
            )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


class S3Server:
    """moto's S3-compatible server on a free port; `bucket()` makes a fresh bucket."""

    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"moto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None  # a boto3 S3 client, once made

    def start(self) -> S3Server:
        _need("boto3", "s3")
        if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
            raise Unavailable("moto's server is not installed (pip install 'moto[server]')")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_port(self.port, self.proc, self.log, 60)
        return self

    def client(self):  # type: ignore[no-untyped-def]
        """A boto3 client of this server, made once (making one takes a good 0.1 s)."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
            )
        return self._client

    def bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self) -> dict[str, str]:
        """The Viewfinder settings that reach this server."""
        return {
            "s3_endpoint_url": self.endpoint,
            "s3_region": self.region,
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
        }

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        _stop(self.proc)


class MilvusServer:
    """The Milvus Lite gRPC server in a subprocess: a stand-in for a Milvus cluster.

    One request at a time (`--max-workers 1`): Milvus Lite is not safe for concurrent writes
    to one collection, which a real cluster is.
    """

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.log = folder / f"milvus-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MilvusServer:
        _need("pymilvus", "milvus")
        _need("milvus_lite", "milvus-lite")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "milvus_lite", "server",
                    "--data-dir", str(self.folder / f"milvus-{self.port}"),
                    "--host", "127.0.0.1", "--port", str(self.port), "--max-workers", "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_port(self.port, self.proc, self.log, 60)
        return self

    def url(self, collection: str | None = None) -> str:
        name = collection or f"t_{uuid.uuid4().hex[:12]}"
        return f"milvus://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        _stop(self.proc)


class PgBouncer:
    """Debian's `pgbouncer` in transaction mode in front of a `PostgresServer`, on a free port:
    what the deployment guide recommends, and what breaks server-side prepared statements."""

    def __init__(self, postgres: PostgresServer) -> None:
        self.postgres = postgres
        self.port = free_port()
        self.folder: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        binary = shutil.which("pgbouncer") or next(
            (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
        )
        if binary is None:
            raise Unavailable("pgbouncer not found (apt-get install pgbouncer)")
        self.folder = Path(tempfile.mkdtemp(prefix="viewfinder-pgbouncer-"))
        run_as: list[str] = []
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.postgres.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.folder}\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            "pool_mode = transaction\n"
            # few server connections for many clients: statements of one client land on
            # several server connections, as under load
            "default_pool_size = 2\nmax_client_conn = 200\n"
        )
        for name in ("users.txt", "pgbouncer.ini"):
            os.chmod(self.folder / name, 0o644)
        log = self.folder / "pgbouncer.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*run_as, binary, str(self.folder / "pgbouncer.ini")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_port(self.port, self.proc, log, 30)
        return self

    def url(self, database_url: str) -> str:
        """The URL of a database of `postgres`, through this PgBouncer."""
        return database_url.replace(f":{self.postgres.port}/", f":{self.port}/")

    def stop(self) -> None:
        _stop(self.proc)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class FlakyProxy:
    """An HTTP proxy in front of a server (e.g. moto's S3) that fails the next requests on
    demand: `fail(n)` answers the next n requests 503 SlowDown (as S3 does when throttling);
    `cut(n)` forwards the next n GETs but sends only half their body and hangs up."""

    def __init__(self, target_port: int) -> None:
        import http.server
        import threading

        proxy = self
        self.target_port = target_port
        self.failures = 0
        self.cuts = 0
        self.seen = 0  # requests received
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _relay(self) -> None:
                import http.client

                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.seen += 1
                    fail = proxy.failures > 0
                    proxy.failures -= int(fail)
                    cut = not fail and self.command == "GET" and proxy.cuts > 0
                    proxy.cuts -= int(cut)
                if fail:
                    error = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("content-type", "application/xml")
                    self.send_header("content-length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                if cut:
                    self.send_header("connection", "close")
                self.end_headers()
                if cut:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, n: int) -> None:
        with self._lock:
            self.failures = n

    def cut(self, n: int) -> None:
        with self._lock:
            self.cuts = n

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


S = TypeVar("S", PostgresServer, S3Server, MilvusServer, PgBouncer)


def started(service: S) -> Iterator[S]:
    """For a fixture: start the service, skip (or fail, see `unavailable`) when it can't run
    here, stop it afterwards."""
    reason = None
    try:
        service.start()
    except Unavailable as exc:
        reason = str(exc)
    if reason is not None:  # outside the except block: the report shows the reason alone
        service.stop()
        unavailable(reason)
    try:
        yield service
    finally:
        service.stop()
