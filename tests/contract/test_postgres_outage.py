"""PostgreSQL going away and coming back: requests fail fast with a 503 that says the
database is unreachable, and the same store recovers once it answers again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.contract.services import PostgresServer, started
from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.ports import MetadataStore
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.errors import Unavailable
from viewfinder.stores.factory import open_metadata

POOL_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of these tests alone: it is stopped and started."""
    yield from started(PostgresServer())


@pytest.fixture
def store(own_postgres: PostgresServer) -> Iterator[MetadataStore]:
    settings = Settings(
        database_pool_size=2,
        database_pool_timeout_s=POOL_TIMEOUT_S,
        database_connect_timeout_s=CONNECT_TIMEOUT_S,
    )
    store = open_metadata(own_postgres.database(), settings)
    store.migrate()
    yield store
    store.close()


def _timed_failure(store: MetadataStore) -> tuple[float, Unavailable]:
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        store.count_images()
    return time.monotonic() - t0, caught.value


def test_requests_fail_fast_while_down_and_recover(
    own_postgres: PostgresServer, store: MetadataStore
) -> None:
    assert store.count_images() == 0
    own_postgres.pause()
    # the first request finds the pooled connection dead and none can be made: it waits the
    # pool timeout at most, then says why
    took, exc = _timed_failure(store)
    assert took < POOL_TIMEOUT_S + CONNECT_TIMEOUT_S + 1.5
    assert "unreachable" in exc.message and exc.status == 503
    # later requests do not wait on the pool any more
    for _ in range(3):
        took, exc = _timed_failure(store)
        assert took < CONNECT_TIMEOUT_S + 0.5
        assert "unreachable" in exc.message
    own_postgres.resume()
    # the same store (no restart) answers again, at the first request
    assert store.count_images() == 0
    assert store.list_keys() == []


def test_busy_is_not_unreachable(own_postgres: PostgresServer) -> None:
    settings = Settings(database_pool_size=1, database_pool_timeout_s=0.5)
    store = open_metadata(own_postgres.database(), settings)
    try:
        store.migrate()
        holder = store._pool.connection()  # type: ignore[attr-defined]  # the only one
        holder.__enter__()
        try:
            _, exc = _timed_failure(store)
            assert "busy" in exc.message
        finally:
            holder.__exit__(None, None, None)
        assert store.count_images() == 0
    finally:
        store.close()


def test_statement_timeout_is_a_setting(own_postgres: PostgresServer) -> None:
    settings = Settings(database_statement_timeout_s=0.2)
    store = open_metadata(own_postgres.database(), settings)
    try:
        store.migrate()
        with pytest.raises(Unavailable, match="too long"):
            store._query("SELECT pg_sleep(2)")  # type: ignore[attr-defined]
        assert store.count_images() == 0
    finally:
        store.close()


def test_http_requests_answer_503_and_recover(own_postgres: PostgresServer, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        model="fake",
        database_url=own_postgres.database(),
        database_pool_size=2,
        database_pool_timeout_s=POOL_TIMEOUT_S,
        database_connect_timeout_s=CONNECT_TIMEOUT_S,
    )
    service = build_service(settings, embedder=FakeEmbedder())
    try:
        service.start()
        auth = {"X-Api-Key": KeyRing(service.metadata).create("acme").secret}
        with TestClient(create_app(settings, service)) as client:
            assert client.get("/v1/images", headers=auth).status_code == 200
            own_postgres.pause()
            try:
                t0 = time.monotonic()
                r = client.get("/v1/images", headers=auth)
                assert time.monotonic() - t0 < POOL_TIMEOUT_S + CONNECT_TIMEOUT_S + 1.5
                assert r.status_code == 503
                assert r.json()["error"]["type"] == "server_error"
                assert "database is unreachable" in r.json()["error"]["message"]
            finally:
                own_postgres.resume()
            assert client.get("/v1/images", headers=auth).status_code == 200
    finally:
        service.close()
