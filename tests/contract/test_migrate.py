"""`viewfinder migrate`: an embedded installation copied to PostgreSQL, S3 and Milvus."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import png_bytes
from tests.contract.services import MilvusServer, PostgresServer, S3Server
from tests.exif_images import jpeg_with_exif
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.cli import cli
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import SearchRequest
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker


def test_embedded_to_shared_stores(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
    s3_server: S3Server,
    milvus_server: MilvusServer,
) -> None:
    # an embedded installation: two tenants, indexed, queued, stored-only and failed images
    embedded = Settings(data_dir=tmp_path / "data", model="fake")
    svc = build_service(embedded, embedder=FakeEmbedder())
    svc.start()
    secret = KeyRing(svc.metadata).create("acme").secret
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (250, 250, 0)]
    svc.upload(
        "acme",
        [
            UploadItem(data=png_bytes(c), filename=f"c{i}.png", metadata={"n": i})
            for i, c in enumerate(colours)
        ],
    )
    svc.upload("globex", [UploadItem(data=png_bytes((255, 0, 0)))])
    svc.upload(
        "acme",
        [UploadItem(data=b"not an image"), UploadItem(data=jpeg_with_exif(), index=False)],
    )
    worker = IndexingWorker(svc, worker_options(embedded))
    worker.drain()
    worker.close()
    queued = svc.upload("acme", [UploadItem(data=png_bytes((0, 255, 255)))])
    before = {t: svc.list_images(t, 100, 0) for t in ("acme", "globex")}
    assert {r.file_name for r in before["acme"]} >= {"c0.png", "c3.png"}
    # tags (set by indexing) and EXIF (at upload) are among what must come along
    assert sum(bool(r.tags) for r in before["acme"]) == 4
    assert [r.exif.make for r in before["acme"] if r.exif] == ["Canon"]
    query = SearchRequest(query="a red square", max_results=10)
    hits_before = [(h.record.image_id, h.score) for h in svc.search("acme", query)]
    assert len(hits_before) == 4
    svc.close()

    for name, value in s3_server.settings().items():
        monkeypatch.setenv(f"VIEWFINDER_{name.upper()}", value)
    monkeypatch.setenv("VIEWFINDER_MODEL", "fake")
    targets = {
        "database_url": postgres_server.database(),
        "blob_url": f"s3://{s3_server.bucket()}/vf",
        "vector_url": milvus_server.url(),
    }
    args = ["migrate", "--data-dir", str(embedded.data_dir)]
    args += [f"--to-{k.replace('_', '-')}={v}" for k, v in targets.items()]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "copied 1 keys, 8 of 8 images, 6 image files, 5 vectors" in result.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "copied 0 keys, 0 of 8 images, 0 image files, 5 vectors" in again.output

    shared = Settings(data_dir=tmp_path / "api", model="fake", **targets, **s3_server.settings())  # type: ignore[arg-type]
    svc = build_service(shared, embedder=FakeEmbedder())
    svc.start(single_process=False)
    try:
        assert KeyRing(svc.metadata).authenticate(secret).tenant == "acme"
        assert {t: svc.list_images(t, 100, 0) for t in before} == before
        hits = [(h.record.image_id, h.score) for h in svc.search("acme", query)]
        assert [s for _, s in hits] == pytest.approx([s for _, s in hits_before], abs=1e-5)
        assert hits[0][0] == hits_before[0][0]  # and the tied ones may swap places
        assert {i for i, _ in hits} == {i for i, _ in hits_before}
        for record in before["acme"]:
            if record.sha256:
                assert svc.blobs.exists(record.sha256)
        # the queue came along: the queued image is indexed on the new stores
        assert svc.metadata.image_ids_with_status(IndexingStatus.QUEUED) == {queued[0].image_id}
        worker = IndexingWorker(svc, worker_options(shared))
        worker.drain()
        worker.close()
        assert svc.vectors.count() == 6
    finally:
        svc.close()
