"""A model switch re-embeds indexed images and gives them the new model's tags."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain.records import UploadItem
from viewfinder.indexing.worker import IndexingWorker


def test_reembedded_images_get_the_new_models_tags(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, model="fake", max_tags=1)
    service = build_service(settings)
    service.start()
    grey = png_bytes((128, 128, 128))  # near several basic colours: many tags to choose from
    record, _ = service.upload("t", [UploadItem(data=grey), UploadItem(data=png_bytes((0, 0, 9)))])
    worker = IndexingWorker(service, worker_options(settings))
    worker.drain()
    worker.close()
    assert len(service.get("t", record.image_id).tags) == 1
    service.close()

    # another model, allowed three tags an image: re-embedding brings its tags
    settings = Settings(data_dir=data, model="fake64", max_tags=3)
    service = build_service(settings)
    service.start()
    assert service.spaces.switch is not None
    worker = IndexingWorker(service, worker_options(settings))
    while worker.reembed_once():
        pass
    assert service.spaces.switch is None  # promoted
    assert len(service.get("t", record.image_id).tags) == 3
    worker.close()
    service.close()
