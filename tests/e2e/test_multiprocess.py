"""Scale-out: two API processes and two worker processes on one PostgreSQL, S3 and Milvus.

300 concurrent uploads go through both APIs; a worker is killed with SIGKILL mid-batch; every
image must still be indexed, exactly once, and both APIs must answer searches identically.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.contract.services import MilvusServer, PostgresServer, S3Server, started
from tests.e2e.server import Server, cli

pytestmark = pytest.mark.e2e

N_IMAGES = 300
LEASE_S = 8.0  # longer than any batch here, short enough to wait out in a test
INDEXED = re.compile(r"viewfinder\.indexing\.worker: indexed (\d+) images")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    yield from started(PostgresServer())


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from started(S3Server(tmp_path_factory.mktemp("s3")))


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    yield from started(MilvusServer(tmp_path_factory.mktemp("milvus")))


class Worker:
    """A `viewfinder worker` process logging at debug level to a file."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.log = data_dir.parent / f"{data_dir.name}.log"
        cmd = [sys.executable, "-m", "viewfinder.cli", "worker", "--data-dir", str(data_dir)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
            )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while "Viewfinder worker:" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def indexed(self) -> int:
        """How many images this worker reported indexed."""
        return sum(int(n) for n in INDEXED.findall(self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _image(n: int) -> bytes:
    # distinct mean colours, so the fake model gives every image its own vector
    colour = ((n * 37) % 256, (n * 91 + 17) % 256, (n * 53 + 101) % 256)
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buf, format="PNG")
    return buf.getvalue()


def _db_ids(url: str, sql: str) -> set[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(sql)}


def _comparable(results: list[dict]) -> list[tuple]:
    # image_url is signed per request; everything else must match exactly
    return [(r["image_id"], r["score"], r["image_metadata"]) for r in results]


def test_two_apis_two_workers_one_killed(
    tmp_path: Path, postgres: PostgresServer, s3: S3Server, milvus: MilvusServer
) -> None:
    database = postgres.database()
    env = {
        "VIEWFINDER_DATABASE_URL": database,
        "VIEWFINDER_BLOB_URL": f"s3://{s3.bucket()}/images",
        "VIEWFINDER_VECTOR_URL": milvus.url("viewfinder"),
        **{f"VIEWFINDER_{k.upper()}": v for k, v in s3.settings().items()},
        "VIEWFINDER_MODEL": "fake:0.05",  # slow enough to catch a worker mid-batch
        "VIEWFINDER_SECRET_KEY": "shared-secret-of-every-api-process",
        "VIEWFINDER_LEASE_S": str(LEASE_S),
        "VIEWFINDER_BATCH_SIZE": "8",
        "VIEWFINDER_POLL_INTERVAL_S": "0.1",
        "VIEWFINDER_DATABASE_POOL_SIZE": "8",
    }
    key = cli(tmp_path / "admin", "keys", "create", "acme", env=env).strip()
    headers = {"X-Api-Key": key}
    apis = [Server(tmp_path / f"api{n}", {**env, "VIEWFINDER_WORKERS": "0"}) for n in (1, 2)]
    worker_env = {**env, "VIEWFINDER_LOG_LEVEL": "debug", "VIEWFINDER_WORKERS": "1"}
    workers: list[Worker] = []
    try:
        for api in apis:
            api.start()
        workers = [Worker(tmp_path / f"worker{n}", worker_env) for n in (1, 2)]
        for w in workers:
            w.wait_ready()

        # 300 concurrent uploads, alternating between the two APIs
        def upload(n: int) -> dict:
            r = httpx.post(
                f"{apis[n % 2].url}/v1/images/upload",
                headers=headers,
                files=[("images", (f"img{n}.png", _image(n), "image/png"))],
                data={"metadata": f'{{"requests": [{{"metadata": {{"n": {n}}}}}]}}'},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            return r.json()["results"][0]

        with ThreadPoolExecutor(24) as pool:
            uploaded = list(pool.map(upload, range(N_IMAGES)))
        ids = {u["image_id"] for u in uploaded}
        assert len(ids) == N_IMAGES and {u["indexing_status"] for u in uploaded} <= {1, 2}

        # kill worker 1 while both are busy: whatever it holds stays leased, unfinished
        deadline = time.monotonic() + 60
        while workers[0].indexed() < 16 or workers[1].indexed() < 8:
            assert time.monotonic() < deadline, "workers made no progress"
            time.sleep(0.05)
        workers[0].proc.send_signal(signal.SIGKILL)
        workers[0].proc.wait(10)
        killed_at = time.time()
        time.sleep(3)  # worker 2 finishes the batch it had; worker 1's leases still run
        # claimed before the kill (lease ends by killed_at + LEASE_S) and still not done
        orphaned = _db_ids(
            database,
            f"SELECT image_id FROM jobs WHERE lease_until > {time.time()} "
            f"AND lease_until <= {killed_at + LEASE_S}",
        )
        assert orphaned, "worker 1 held no claimed images when it was killed"

        deadline = time.monotonic() + 150
        while True:
            indexed = _db_ids(database, "SELECT image_id FROM images WHERE status = 2")
            if indexed == ids:
                break
            assert time.monotonic() < deadline, f"{len(ids - indexed)} images never indexed"
            time.sleep(0.25)

        # exactly once: each image completed by one worker, one vector each
        assert workers[0].indexed() + workers[1].indexed() == N_IMAGES
        assert _db_ids(database, "SELECT image_id FROM jobs") == set()
        from viewfinder.stores.factory import open_vectors

        vectors = open_vectors(env["VIEWFINDER_VECTOR_URL"])
        vectors.open("fake-32", 32)
        try:
            assert vectors.count() == N_IMAGES and vectors.ids() == ids
        finally:
            vectors.close()

        # both APIs give identical answers
        for query in ("red", "a blue square", "green and yellow", "anything at all"):
            body = {"query": query, "max_results": 50}
            answers = [
                httpx.post(f"{api.url}/v1/images/search", headers=headers, json=body).json()
                for api in apis
            ]
            assert len(answers[0]["results"]) == 50
            assert _comparable(answers[0]["results"]) == _comparable(answers[1]["results"])
        listings = [
            httpx.get(f"{api.url}/v1/images?limit=500", headers=headers).json()["results"]
            for api in apis
        ]
        assert [i["image_id"] for i in listings[0]] == [i["image_id"] for i in listings[1]]
        assert {i["image_id"] for i in listings[0]} == ids

        # a worker stops gracefully on SIGTERM
        workers[1].proc.send_signal(signal.SIGTERM)
        assert workers[1].proc.wait(30) == 0
    finally:
        for w in workers:
            w.stop()
        for api in apis:
            api.stop()
