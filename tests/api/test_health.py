"""The probes: /healthz and /readyz without a key or a rate limit, and /metrics when enabled."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.api.app import create_app
from viewfinder.bootstrap import warm_up
from viewfinder.config import Settings
from viewfinder.domain.records import UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.embedders.pool import InferencePool
from viewfinder.indexing.worker import IndexingWorker


@pytest.fixture
def warm(service: ImageService) -> ImageService:
    warm_up(service.embedder)  # what `serve` does before it listens
    return service


def test_healthz_needs_no_key_and_no_store(client: TestClient, service: ImageService) -> None:
    service.metadata.close()  # alive, whatever the stores do
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert "x-ratelimit-requests-limit" not in r.headers


def test_readyz_lists_every_part(client: TestClient, warm: ImageService) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"metadata", "blobs", "vectors", "model"}
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_waits_for_the_model(client: TestClient, service: ImageService) -> None:
    r = client.get("/readyz")  # the fake model has not been warmed up
    assert r.status_code == 503
    body = r.json()
    assert body["error"]["type"] == "server_error"
    assert body["error"]["message"].startswith("not ready: model: ")
    assert not body["checks"]["model"]["ok"] and body["checks"]["metadata"]["ok"]
    warm_up(service.embedder)
    assert client.get("/readyz").status_code == 200


@pytest.mark.embedded_only
def test_readyz_503_while_the_image_folder_is_gone_then_200(
    client: TestClient, warm: ImageService, settings: Settings
) -> None:
    blobs = settings.data_dir / "blobs"
    shutil.rmtree(blobs)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert not r.json()["checks"]["blobs"]["ok"]
    assert "blobs" in r.json()["error"]["message"]
    (blobs / ".partial").mkdir(parents=True)
    assert client.get("/readyz").status_code == 200


@pytest.mark.embedded_only
def test_probes_are_never_rate_limited(settings: Settings, warm: ImageService) -> None:
    limited = settings.model_copy(update={"rate_limits": {"*": "1/minute"}})
    with TestClient(create_app(limited, warm)) as c:
        for _ in range(5):
            assert c.get("/healthz").status_code == 200
            assert c.get("/readyz").status_code == 200


def test_metrics_are_off_by_default(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404


@pytest.fixture
def metered(settings: Settings, service: ImageService) -> Iterator[TestClient]:
    # as bootstrap builds it: the model behind an inference pool, whose calls are timed
    service.embedder = InferencePool(2).bound(service.embedder)
    with TestClient(create_app(settings.model_copy(update={"metrics": True}), service)) as c:
        yield c


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def test_metrics_count_requests_by_route_and_status(
    metered: TestClient,
    service: ImageService,
    settings: Settings,
    stores: str,
    auth: dict[str, str],
    worker: IndexingWorker,
) -> None:
    image_id = metered.post(
        "/v1/images/upload", headers=auth, files=[("images", ("a.png", png_bytes((250, 0, 0))))]
    ).json()["results"][0]["image_id"]
    before = metered.get("/metrics").text
    assert _sample(before, "viewfinder_images", status="queued") == 1
    assert _sample(before, "viewfinder_queue_lag_seconds") is not None
    worker.drain()
    for _ in range(2):
        assert metered.get(f"/v1/images/{image_id}", headers=auth).status_code == 200
    assert metered.get("/v1/images/nope", headers=auth).status_code == 404
    assert metered.post("/v1/images/search", headers=auth, json={"query": "red"}).status_code == 200
    text = metered.get("/metrics").text
    route = "/v1/images/{image_id}"
    assert (
        _sample(text, "viewfinder_http_requests_total", method="GET", route=route, status="200")
        == 2
    )
    assert (
        _sample(text, "viewfinder_http_requests_total", method="GET", route=route, status="404")
        == 1
    )
    count = "viewfinder_http_request_duration_seconds_count"
    assert _sample(text, count, method="GET", route=route, status="200") == 2
    assert _sample(text, "viewfinder_images", status="indexed") == 1
    assert _sample(text, "viewfinder_images", status="queued") == 0
    assert _sample(text, "viewfinder_vectors") == 1
    if stores == "embedded":  # SQLite, a folder and the exact index: all on the data dir's disk
        disk = shutil.disk_usage(settings.data_dir)
        for store in ("metadata", "blobs", "vectors"):
            free = _sample(text, "viewfinder_storage_free_bytes", store=store)
            assert free is not None and abs(free - disk.free) < 256 * 2**20, store
            assert _sample(text, "viewfinder_storage_capacity_bytes", store=store) == disk.total
    else:  # PostgreSQL, S3 and Milvus: no local disk to report
        assert "viewfinder_storage_free_bytes{" not in text
    assert _sample(text, "viewfinder_queue_lag_seconds") == 0
    # the query's embedding, and the worker's batch (same process, same inference pool)
    assert _sample(text, "viewfinder_inference_duration_seconds_count", kind="texts") == 1
    assert _sample(text, "viewfinder_inference_items_total", kind="images") == 1
    assert metered.get("/nowhere").status_code == 404
    after = metered.get("/metrics").text
    assert (
        _sample(
            after, "viewfinder_http_requests_total", method="GET", route="unmatched", status="404"
        )
        == 1
    )


def test_worker_probe_app_reports_queue_lag_and_last_batch(
    service: ImageService, settings: Settings
) -> None:
    from viewfinder.api.health import HealthServer, worker_app
    from viewfinder.domain.readiness import Readiness
    from viewfinder.indexing.worker import WorkerOptions, WorkerPool

    warm_up(service.embedder)
    pool = WorkerPool(service, WorkerOptions(batch_size=4, poll_interval_s=0.01), 1)

    def indexing() -> None:
        if pool.alive() < 1:
            raise RuntimeError("not started")

    app = worker_app(
        Readiness({"indexing": indexing}, 1.0),
        None,
        last_batch_at=lambda: pool.last_batch_at,
        oldest_queued_at=service.metadata.oldest_queued_at,
    )
    from tests.contract.services import free_port

    port = free_port()
    server = HealthServer(app, "127.0.0.1", port)
    server.start()
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        with pytest.raises(OSError):  # the port is taken: said at start, not later
            HealthServer(app, "127.0.0.1", port).start()
        service.upload("acme", [UploadItem(data=png_bytes((1, 2, 3)))])
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and "indexing: RuntimeError: not started" in r.text
        assert r.json()["queue_lag_s"] >= 0 and r.json()["last_batch_at"] is None
        assert httpx.get(f"{base}/metrics").status_code == 404  # metrics off
        pool.start()
        try:
            deadline = time.monotonic() + 10
            while pool.last_batch_at is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            body = httpx.get(f"{base}/readyz").json()
            assert body["status"] == "ready" and body["queue_lag_s"] == 0
            assert body["last_batch_age_s"] >= 0
        finally:
            pool.stop()
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz")
