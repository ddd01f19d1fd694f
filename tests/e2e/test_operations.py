"""Operations with real processes and services: graceful stops, probes through an outage.

- A SIGTERM'd `viewfinder worker` finishes the two batches it is embedding, claims no more
  (what it did not embed is claimable at once) and exits 0; its `--health-port` answers
  /healthz, /readyz (queue lag, last batch) and /metrics meanwhile.
- A SIGTERM'd `viewfinder serve` stops accepting, answers the request in flight, exits 0.
- /readyz answers 503 naming the database while PostgreSQL is down, and 200 once it is back,
  without a restart.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from tests.contract.services import MilvusServer, PostgresServer, free_port, started
from tests.e2e.server import Server, cli
from tests.slow_http import slow_server
from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service, warm_up
from viewfinder.config import Settings
from viewfinder.domain.records import UploadItem
from viewfinder.embedders.fake import FakeEmbedder

pytestmark = pytest.mark.e2e

BATCH = 4
SECONDS_PER_IMAGE = 0.5  # a batch embeds in 2 s: long enough to stop a worker mid-batch


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return list(conn.execute(sql))


def _wait(what: str, predicate: Any, timeout_s: float = 60.0, every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def test_sigterm_worker_finishes_its_batches_and_claims_no_more(
    tmp_path: Path, postgres_server: PostgresServer, milvus_server: MilvusServer
) -> None:
    database = postgres_server.database()
    settings = Settings(
        data_dir=tmp_path / "admin",
        model="fake",
        database_url=database,
        blob_url=f"file://{tmp_path / 'blobs'}",
        vector_url=milvus_server.url(),
        database_pool_size=2,
    )
    service = build_service(settings, embedder=FakeEmbedder())
    try:
        service.start(single_process=False)
        items = [UploadItem(data=png_bytes((n * 12, 40, 90))) for n in range(5 * BATCH)]
        ids = {r.image_id for r in service.upload("acme", items)}
    finally:
        service.close()
    port = free_port()
    env = {
        **os.environ,
        "VIEWFINDER_DATABASE_URL": database,
        "VIEWFINDER_BLOB_URL": settings.blob_url or "",
        "VIEWFINDER_VECTOR_URL": settings.vector_url or "",
        "VIEWFINDER_MODEL": f"fake:{SECONDS_PER_IMAGE}",
        "VIEWFINDER_BATCH_SIZE": str(BATCH),
        "VIEWFINDER_LEASE_S": "300",
        "VIEWFINDER_POLL_INTERVAL_S": "0.05",
        "VIEWFINDER_METRICS": "true",
        "VIEWFINDER_HOST": "127.0.0.1",
    }
    log = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "viewfinder.cli", "worker", "--health-port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--data-dir", str(tmp_path / "worker")], stdout=out, stderr=out, env=env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        alive = _wait("/healthz", lambda: _get(f"{base}/healthz"), 120)
        assert alive.json() == {"status": "ok"}
        first = _wait(
            "/readyz", lambda: (r := _get(f"{base}/readyz")) and r.status_code == 200 and r
        )
        assert first.json()["checks"]["indexing"]["ok"]
        assert first.json()["queue_lag_s"] > 0
        # batches 1 and 2 embed together; once 1 is done, batch 3 embeds beside 2 (8 leased)
        done = _wait(
            "a first batch",
            lambda: (r := _get(f"{base}/readyz")) and r.json()["last_batch_at"] and r.json(),
        )
        assert done["last_batch_age_s"] >= 0
        _wait(
            "two batches leased",
            lambda: (
                _rows(
                    database,
                    f"SELECT count(*) FROM jobs WHERE lease_until > {time.time()}",
                )[0][0]
                == 2 * BATCH
            ),
        )
        metrics = httpx.get(f"{base}/metrics").text
        indexed_total = re.search(r"^viewfinder_images_indexed_total (\S+)$", metrics, re.M)
        calls = re.search(
            r'^viewfinder_inference_duration_seconds_count\{kind="images"\} (\S+)$', metrics, re.M
        )
        assert indexed_total and calls, metrics
        # batch 1 for sure; batch 2 too if it ended meanwhile
        counted = float(indexed_total.group(1))
        assert counted in (BATCH, 2 * BATCH) and counted == BATCH * float(calls.group(1))
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        took = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # the two batches embedding were finished; nothing more was claimed, nothing is leased
    indexed = {r[0] for r in _rows(database, "SELECT image_id FROM images WHERE status = 2")}
    queued = _rows(database, "SELECT image_id, lease_until, attempts FROM jobs")
    assert len(indexed) == counted + 2 * BATCH and indexed < ids, log.read_text()
    assert {r[0] for r in queued} == ids - indexed
    assert all(lease == 0 and attempts == 0 for _, lease, attempts in queued)
    # the two embed at once: stopping takes a batch's time, not two
    assert took < BATCH * SECONDS_PER_IMAGE + 5, f"stopping took {took:.1f} s"


def test_sigterm_api_answers_the_request_in_flight_then_exits_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_FETCH_ALLOW_PRIVATE": "true"}
    key = cli(data, "keys", "create", "acme", env=env).strip()
    server = Server(data, env).start()
    answer: dict[str, httpx.Response] = {}
    try:
        with slow_server() as slow:

            def upload() -> None:
                metadata = f'{{"image_urls": ["{slow.url("/img?delay=3")}"]}}'
                answer["r"] = httpx.post(
                    f"{server.url}/v1/images/upload",
                    headers={"X-Api-Key": key},
                    data={"metadata": metadata},
                    timeout=30,
                )

            thread = threading.Thread(target=upload)
            thread.start()
            assert slow.wait_in_flight(1)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)

            def refused() -> bool:
                try:
                    httpx.get(f"{server.url}/healthz", timeout=1)
                except httpx.ConnectError:
                    return True
                except httpx.HTTPError:
                    return False
                return False

            _wait("the listener to close", refused, 5)
            assert thread.is_alive(), "the request in flight was answered too soon to tell"
            thread.join(30)
        assert answer["r"].status_code == 200, answer["r"].text
        assert answer["r"].json()["results"][0]["status"] == "queued"
        assert server.proc.wait(30) == 0, server.log.read_text()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: the test stops and restarts it."""
    yield from started(PostgresServer())


def _pg_ctl(server: PostgresServer, *args: str) -> None:
    assert server._bin is not None and server.folder is not None
    options = (
        f"-p {server.port} -k {server.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c max_connections=300"
    )
    subprocess.run(
        [*server._as, str(server._bin / "pg_ctl"), "-D", str(server.folder / "data"),
         "-o", options, "-l", str(server.folder / "server.log"), "-w", "-t", "60", *args],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_readyz_503_while_postgres_is_down_then_200(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        model="fake",
        database_url=own_postgres.database(),
        readiness_timeout_s=1.0,
        database_pool_size=2,
    )
    service = build_service(settings, embedder=FakeEmbedder())
    service.start()
    warm_up(service.embedder)
    try:
        with TestClient(create_app(settings, service)) as client:
            assert client.get("/readyz").status_code == 200
            _pg_ctl(own_postgres, "-m", "fast", "stop")
            try:
                started_at = time.monotonic()
                r = client.get("/readyz")
                assert time.monotonic() - started_at < 5  # bounded by the timeout, not 30 s
                assert r.status_code == 503
                body = r.json()
                assert not body["checks"]["metadata"]["ok"]
                assert body["checks"]["model"]["ok"] and body["checks"]["vectors"]["ok"]
                assert body["error"]["message"].startswith("not ready: metadata: ")
                assert client.get("/healthz").status_code == 200  # alive all the same
            finally:
                _pg_ctl(own_postgres, "start")
            _wait(
                "/readyz to recover",
                lambda: client.get("/readyz").status_code == 200,
                timeout_s=60,
                every_s=0.5,
            )
    finally:
        with contextlib.suppress(Exception):
            service.close()
