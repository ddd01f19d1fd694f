"""Start-up compares vectors with metadata only after a crash: at a million images that
comparison takes seconds, and a clean stop leaves nothing to repair."""

from __future__ import annotations

from tests.conftest import png_bytes
from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker, WorkerOptions
from viewfinder.stores.exact_vectors import ExactVectorIndex
from viewfinder.stores.factory import open_vectors


def _started(settings: Settings):  # type: ignore[no-untyped-def]
    service = build_service(settings, embedder=FakeEmbedder())
    service.start()
    return service


def test_reconciles_after_a_crash_not_after_a_clean_stop(settings: Settings) -> None:
    service = _started(settings)
    a, b = service.upload("t", [UploadItem(data=png_bytes((9, 9, n))) for n in (1, 2)])
    IndexingWorker(service, WorkerOptions()).drain()
    model = (service.embedder.model_id, service.embedder.dim)
    service.close()
    # behind the service's back, b's vector goes, and the index is closed cleanly
    index = open_vectors(settings.resolved_vector_url(), settings=settings)
    index.open(*model)
    index.delete([b.image_id])
    index.close()
    service = _started(settings)  # a clean stop: no comparison, so b is not re-queued
    assert service.get("t", b.image_id).status == IndexingStatus.INDEXED
    service.close()
    # a process dies with the index open: the OS closes its files, nobody marks it clean
    dying = ExactVectorIndex(settings.data_dir / "vectors.db", background=False)
    dying.open(*model)
    dying.upsert(["ghost"], ["t"], service.embedder.embed_texts(["red"]))
    dying._file.close()  # type: ignore[union-attr]
    crashed = _started(settings)
    try:
        assert crashed.get("t", b.image_id).status == IndexingStatus.QUEUED  # reconciled
        IndexingWorker(crashed, WorkerOptions()).drain()
        assert crashed.vectors.ids() == {a.image_id, b.image_id}  # and the ghost dropped
    finally:
        crashed.close()
