"""A Viewfinder server process shared by the client tests, a tenant and a key per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.server import Server, cli
from viewfinder import Client

ENV = {
    "VIEWFINDER_MODEL": "fake",
    "VIEWFINDER_POLL_INTERVAL_S": "0.05",
    # Lets the server fetch its own signed image URLs, to test uploads by URL.
    "VIEWFINDER_FETCH_ALLOW_PRIVATE": "true",
}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("client") / "data"
    cli(data_dir, "keys", "create", "init", env=ENV)
    with Server(data_dir, ENV) as running:
        yield running


def make_key(server: Server, tenant: str, *limits: str) -> str:
    """A new API key of `tenant` on the server, with the given rate limits."""
    args = [a for spec in limits for a in ("--rate-limit", spec)]
    return cli(server.data_dir, "keys", "create", tenant, *args, env=ENV).strip()


@pytest.fixture
def vf(server: Server, request: pytest.FixtureRequest) -> Iterator[Client]:
    # A tenant per test keeps tests independent on the shared server.
    tenant = request.node.name.replace("[", "_").replace("]", "")[:60]
    with Client(server.url, make_key(server, tenant)) as client:
        yield client
