"""Reconciling on PostgreSQL + Milvus goes a page of ids at a time: no full-scan read (every
vector id, every indexed id) is made, and orphans and missing vectors are still repaired."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from tests.conftest import png_bytes
from tests.contract.services import MilvusServer, PostgresServer
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain import reconcile
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker


@pytest.fixture
def service(
    postgres_server: PostgresServer, milvus_server: MilvusServer, tmp_path: Path
) -> Iterator[ImageService]:
    database = postgres_server.database()
    settings = Settings(
        data_dir=tmp_path / "data",
        model="fake",
        database_url=database,
        vector_url=milvus_server.url(),
        blob_url=f"file://{tmp_path / 'blobs'}",
        database_pool_size=2,
    )
    svc = build_service(settings, embedder=FakeEmbedder())
    svc.start(single_process=False)
    worker = IndexingWorker(svc, worker_options(settings))
    svc.upload("t", [UploadItem(data=png_bytes((40 * n, 0, 0))) for n in range(5)])
    worker.drain()
    worker.close()
    yield svc
    svc.close()
    postgres_server.drop(database)


def _no_full_scan(service: ImageService) -> None:
    def boom(*_: Any) -> NoReturn:
        raise AssertionError("a full scan of every id")

    service.metadata.image_ids_with_status = boom  # type: ignore[method-assign]
    for index in service.spaces.indexes():
        index.ids = boom  # type: ignore[method-assign]


@pytest.mark.parametrize("page", [None, 2])
def test_repairs_a_page_at_a_time(service: ImageService, page: int | None) -> None:
    indexed = sorted(
        r.image_id for r in service.metadata.list_images("t", 10, 0)
    )  # five images, indexed
    vec = np.zeros((1, service.embedder.dim), np.float32)
    vec[0, 0] = 1.0
    service.vectors.upsert(["ghost-of-a-deleted-image"], ["t"], vec)
    service.vectors.delete([indexed[1], indexed[3]])
    _no_full_scan(service)
    if page is None:
        service.reconcile()
    else:
        assert isinstance(service.vectors, reconcile.PagedVectorIds)
        reconcile.drop_orphans(service.metadata, service.vectors, page)
        requeued = reconcile.requeue_missing(
            service.metadata,  # type: ignore[arg-type]
            service.vectors,
            lambda ids: service.metadata.requeue(ids, 0.0),
            page,
        )
        assert requeued == 2
    assert service.vectors.count("t") == 3
    assert service.vectors.present_ids(["ghost-of-a-deleted-image", indexed[0]]) == {indexed[0]}
    statuses = {i: service.metadata.find_image(i).status for i in indexed}  # type: ignore[union-attr]
    assert [i for i, s in statuses.items() if s == IndexingStatus.QUEUED] == [
        indexed[1],
        indexed[3],
    ]
