"""Two API processes on one PostgreSQL share one rate limit per key (fixed-window counters in
the database); each process counts alone when sharing is off, as with the embedded stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.contract.services import PostgresServer
from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.embedders.fake import FakeEmbedder


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.database()
    yield url
    postgres_server.drop(url)


def _two_apps(
    stack: ExitStack, database: str, tmp_path: Path, shared: bool
) -> tuple[list[TestClient], dict[str, str]]:
    clients = []
    for n in range(2):
        settings = Settings(
            data_dir=tmp_path / f"api{n}",
            model="fake",
            database_url=database,
            database_pool_size=2,
            rate_limits={"*": "3/day"},  # a day: no window ends during the test
            shared_rate_limits=shared,
        )
        service = build_service(settings, embedder=FakeEmbedder())
        stack.callback(service.close)
        service.start(single_process=False)
        clients.append(stack.enter_context(TestClient(create_app(settings, service))))
    secret = KeyRing(service.metadata).create("acme").secret
    return clients, {"X-Api-Key": secret}


def test_two_api_processes_share_one_limit(database: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        (a, b), auth = _two_apps(stack, database, tmp_path, shared=True)
        remaining = []
        for client in (a, b, a):
            r = client.get("/v1/images", headers=auth)
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-requests-limit"] == "3"
            remaining.append(r.headers["x-ratelimit-requests-remaining"])
        assert remaining == ["2", "1", "0"]
        for client in (b, a):  # the fourth request, whichever process takes it
            r = client.get("/v1/images", headers=auth)
            assert r.status_code == 429
            assert r.json()["error"]["type"] == "rate_limit_error"
            assert r.headers["x-ratelimit-requests-remaining"] == "0"
            assert 0 < int(r.headers["retry-after"]) <= 86400
            assert int(r.headers["x-ratelimit-requests-reset"]) <= 86400


def test_each_process_counts_alone_when_not_shared(database: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        (a, b), auth = _two_apps(stack, database, tmp_path, shared=False)
        for client in (a, a, a, b, b, b):
            assert client.get("/v1/images", headers=auth).status_code == 200
        assert a.get("/v1/images", headers=auth).status_code == 429


def test_a_new_window_starts_after_the_last_ended(database: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        model="fake",
        database_url=database,
        database_pool_size=2,
        rate_limits={"*": "2/1s"},
    )
    service = build_service(settings, embedder=FakeEmbedder())
    try:
        service.start(single_process=False)
        auth = {"X-Api-Key": KeyRing(service.metadata).create("acme").secret}
        with TestClient(create_app(settings, service)) as client:
            assert client.get("/v1/images", headers=auth).status_code == 200
            assert client.get("/v1/images", headers=auth).status_code == 200
            over = client.get("/v1/images", headers=auth)
            assert over.status_code == 429 and over.headers["retry-after"] == "1"
            time.sleep(1.05)
            again = client.get("/v1/images", headers=auth)
            assert again.status_code == 200
            assert again.headers["x-ratelimit-requests-remaining"] == "1"
    finally:
        service.close()
