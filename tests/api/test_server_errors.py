"""An unexpected error is a 500 with the error envelope on a connection that stays open."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from tests.e2e.server import free_port
from viewfinder.api.app import create_app
from viewfinder.config import Settings
from viewfinder.domain.service import ImageService

pytestmark = pytest.mark.embedded_only


@pytest.fixture
def server(settings: Settings, service: ImageService) -> Iterator[int]:
    """A real uvicorn server over the app, plus a route that fails unexpectedly."""
    app: FastAPI = create_app(settings, service)

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/boom", boom)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(10)


def _exchange(conn: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nX-Api-Key: none\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_a_500_keeps_the_connection_usable(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        status, headers, body = _exchange(conn, "/v1/boom")
        assert status == 500
        assert json.loads(body) == {
            "error": {
                "type": "server_error",
                "message": "internal server error; the server log has details",
            }
        }
        assert headers.get("connection", "").lower() != "close"
        assert "x-request-id" in headers
        # the same connection answers the next request
        status, _, body = _exchange(conn, "/v1/images")
        assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
        status, _, _ = _exchange(conn, "/v1/boom")
        assert status == 500
