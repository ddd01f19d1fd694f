"""A model switch on shared stores: the worker processes share the re-embedding through
leases in PostgreSQL, so each indexed image is re-embedded once, not once per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.contract.services import MilvusServer, PostgresServer
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain.records import UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker

IMAGES = 16


@pytest.fixture
def shared(
    postgres_server: PostgresServer, milvus_server: MilvusServer, tmp_path: Path
) -> Iterator[Settings]:
    database = postgres_server.database()
    yield Settings(
        data_dir=tmp_path / "data",
        model="fake",
        database_url=database,
        vector_url=milvus_server.url(),
        blob_url=f"file://{tmp_path / 'blobs'}",
        database_pool_size=3,
        batch_size=2,
    )
    postgres_server.drop(database)


def _worker_until_switched(service: ImageService, settings: Settings, errors: list) -> None:
    worker = IndexingWorker(service, worker_options(settings))
    try:
        deadline = time.monotonic() + 60
        while service.spaces.switch is not None and time.monotonic() < deadline:
            if not worker.reembed_once():
                time.sleep(0.05)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
    finally:
        worker.close()


def test_two_workers_reembed_each_image_once(shared: Settings) -> None:
    first = build_service(shared, embedder=FakeEmbedder())
    first.start(single_process=False)
    first.upload(
        "t", [UploadItem(data=png_bytes((n * 15, 0, 255 - n * 15))) for n in range(IMAGES)]
    )
    IndexingWorker(first, worker_options(shared)).drain()
    first.close()

    # two worker processes with the new model, embedding slowly enough to overlap
    target = shared.model_copy(update={"model": "fake64"})
    models = [FakeEmbedder(64, "fake-64", delay_s=0.02) for _ in range(2)]
    services = [build_service(target, embedder=m) for m in models]
    errors: list[BaseException] = []
    try:
        for s in services:
            s.start(single_process=False)
            assert s.spaces.switch is not None
        threads = [
            threading.Thread(target=_worker_until_switched, args=(s, target, errors))
            for s in services
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not errors, errors
        assert [m.images_embedded for m in models] != [IMAGES, 0]  # both took part
        assert sum(m.images_embedded for m in models) == IMAGES  # each image once
        for s in services:
            assert s.spaces.switch is None  # promoted by one, noticed by the other
            assert s.vectors.count("t") == IMAGES
            assert s.spaces.answering_model() == "fake-64"
    finally:
        for s in services:
            s.close()
