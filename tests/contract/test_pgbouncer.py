"""Behind PgBouncer in transaction mode (the deployment guide's advice): uploads, indexing
and search work; psycopg's server-side prepared statements would break them ("prepared
statement ... already exists") since one client's statements reach several server
connections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from tests.contract.services import PgBouncer, PostgresServer, started
from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker


@pytest.fixture(scope="module")
def pgbouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    yield from started(PgBouncer(postgres_server))


def test_upload_index_search_through_pgbouncer(
    pgbouncer: PgBouncer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    database = postgres_server.database()
    settings = Settings(
        data_dir=tmp_path / "data",
        model="fake",
        database_url=pgbouncer.url(database),
        database_pool_size=4,
    )
    service = build_service(settings, embedder=FakeEmbedder())
    try:
        service.start(single_process=True)
        auth = {"X-Api-Key": KeyRing(service.metadata).create("acme").secret}
        worker = IndexingWorker(service, worker_options(settings))
        colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
        with TestClient(create_app(settings, service)) as client:
            ids = {}
            # the same statements many times over, as psycopg would prepare them after 5 runs
            for _ in range(4):
                for name, colour in colours.items():
                    r = client.post(
                        "/v1/images/upload",
                        headers=auth,
                        files=[("images", (f"{name}.png", png_bytes(colour), "image/png"))],
                        data={"metadata": json.dumps({"requests": [{"metadata": {"c": name}}]})},
                    )
                    assert r.status_code == 200, r.text
                    ids[name] = r.json()["results"][0]["image_id"]
            worker.drain()
            worker.close()
            for name in colours:
                r = client.get(f"/v1/images/{ids[name]}", headers=auth)
                assert r.status_code == 200 and r.json()["indexing_status"] == 2, r.text
            r = client.post("/v1/images/search", headers=auth, json={"query": "a blue thing"})
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["image_metadata"] == {"c": "blue"}
    finally:
        service.close()
        postgres_server.drop(database)
