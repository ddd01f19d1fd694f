"""Changing the model: background re-embedding while searches keep answering, then a swap."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import png_bytes
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain.records import IndexingStatus, UploadItem
from viewfinder.domain.service import ImageService, SearchRequest
from viewfinder.indexing.worker import IndexingWorker

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def _service(data_dir: Path, model: str) -> tuple[ImageService, IndexingWorker]:
    settings = Settings(data_dir=data_dir, model=model, batch_size=2)
    service = build_service(settings)
    service.start()
    return service, IndexingWorker(service, worker_options(settings))


def _top(service: ImageService, query: str) -> str:
    return service.search("t", SearchRequest(query=query, max_results=1))[0].record.image_id


def test_switch_reembeds_in_background_and_swaps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    service, worker = _service(data, "fake")
    records = service.upload("t", [UploadItem(data=png_bytes(c)) for c in COLOURS.values()])
    ids = dict(zip(COLOURS, (r.image_id for r in records), strict=True))
    worker.drain()
    worker.close()
    service.close()

    service, worker = _service(data, "fake64")
    assert service.vectors.stored_model().model_id == "fake-32"  # type: ignore[union-attr]
    progress = service.queue_status("t").switch
    assert progress is not None and (progress.from_model, progress.to_model) == (
        "fake-32",
        "fake-64",
    )
    assert progress.done == 0 and progress.total == 3
    # searches keep answering from the old vectors with the old model
    assert _top(service, "red") == ids["red"]
    # a new upload during the switch is searchable at once and lands in the new index too
    (late,) = service.upload("t", [UploadItem(data=png_bytes((255, 255, 0)))])
    worker.run_once()
    assert _top(service, "yellow") == late.image_id
    assert worker.reembed_once() == 2  # one batch of the three older images
    assert service.spaces.switch is not None
    assert service.queue_status("t").switch.done == 3  # type: ignore[union-attr]
    while worker.reembed_once():
        pass
    assert service.spaces.switch is None  # promoted
    assert service.vectors.stored_model().model_id == "fake-64"  # type: ignore[union-attr]
    assert service.vectors.count() == 4
    assert _top(service, "blue") == ids["blue"]
    assert service.queue_status("t").switch is None
    worker.close()
    service.close()

    again, _ = _service(data, "fake64")  # restarted: no switch left to do
    assert again.spaces.switch is None and again.vectors.count() == 4
    assert not (data / "vectors.next.db").exists()
    again.close()


def test_switch_resumes_after_restart_and_handles_deletes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    service, worker = _service(data, "fake")
    records = service.upload("t", [UploadItem(data=png_bytes((n, 0, 0))) for n in range(5)])
    worker.drain()
    service.close()

    service, worker = _service(data, "fake64")
    worker.reembed_once()  # 2 of 5 done, then "crash"
    service.close()

    service, worker = _service(data, "fake64")
    assert service.queue_status().switch.done == 2  # type: ignore[union-attr]
    service.delete("t", records[4].image_id)
    while worker.reembed_once():
        pass
    assert service.spaces.switch is None
    assert service.vectors.ids() == {r.image_id for r in records[:4]}
    assert all(service.get("t", r.image_id).status == IndexingStatus.INDEXED for r in records[:4])
    service.close()


def test_old_model_unavailable_searches_partial_new_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    model_dir = tmp_path / "gone-model"
    from viewfinder.testing import build_tiny_clip

    build_tiny_clip(model_dir)
    service, worker = _service(data, str(model_dir))
    (record,) = service.upload("t", [UploadItem(data=png_bytes((255, 0, 0)))])
    worker.drain()
    service.close()
    import shutil

    shutil.rmtree(model_dir)
    service, worker = _service(data, "fake")
    assert service.spaces.switch is not None and service.spaces.switch.old_embedder is None
    assert service.search("t", SearchRequest(query="red")) == []  # nothing re-embedded yet
    while worker.reembed_once():
        pass
    assert _top(service, "red") == record.image_id
    service.close()


def test_an_old_model_in_the_same_space_keeps_every_image_searchable(tmp_path: Path) -> None:
    """The old model can't be loaded, but the new one says the old vectors share its space
    (the built-in model's recipe upgrades): its queries search the old vectors at once, new
    uploads join them, and the switch still re-embeds everything and promotes."""
    from viewfinder.embedders.fake import FakeEmbedder

    data = tmp_path / "data"
    settings = Settings(data_dir=data, model="fake", batch_size=2)

    def open_with(embedder: FakeEmbedder) -> tuple[ImageService, IndexingWorker]:
        service = build_service(settings, embedder)
        service.start()
        return service, IndexingWorker(service, worker_options(settings))

    service, worker = open_with(FakeEmbedder(model_id="fake-old"))
    records = service.upload("t", [UploadItem(data=png_bytes(c)) for c in COLOURS.values()])
    ids = dict(zip(COLOURS, (r.image_id for r in records), strict=True))
    worker.drain()
    service.close()

    # "fake" now loads as fake-32, not fake-old: the old model is gone
    service, worker = open_with(FakeEmbedder(model_id="fake-new", same_space=["fake-old"]))
    sw = service.spaces.switch
    assert sw is not None and sw.old_embedder is None and sw.shared_space
    assert service.spaces.answering_model() == "fake-old"
    assert _top(service, "red") == ids["red"]  # nothing re-embedded yet, all searchable
    (late,) = service.upload("t", [UploadItem(data=png_bytes((255, 255, 0)))])
    worker.run_once()
    assert _top(service, "yellow") == late.image_id
    while worker.reembed_once():
        pass
    assert service.spaces.switch is None
    assert service.vectors.stored_model().model_id == "fake-new"  # type: ignore[union-attr]
    assert service.vectors.count() == 4
    assert _top(service, "blue") == ids["blue"]
    service.close()

    # the same without the shared space: only what is re-embedded is searchable meanwhile
    data = tmp_path / "other"
    settings = Settings(data_dir=data, model="fake", batch_size=2)
    service, worker = open_with(FakeEmbedder(model_id="fake-old"))
    service.upload("t", [UploadItem(data=png_bytes((255, 0, 0)))])
    worker.drain()
    service.close()
    service, worker = open_with(FakeEmbedder(model_id="fake-new"))
    assert service.spaces.switch is not None and not service.spaces.switch.shared_space
    assert service.search("t", SearchRequest(query="red")) == []
    service.close()


def test_a_tenant_sees_the_switch_over_its_own_images_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    service, worker = _service(data, "fake")
    service.upload("t", [UploadItem(data=png_bytes((n, 0, 0))) for n in range(3)])
    service.upload("u", [UploadItem(data=png_bytes((0, n, 0))) for n in range(2)])
    worker.drain()
    service.close()

    service, worker = _service(data, "fake64")
    progress = {t: service.queue_status(t).switch for t in ("t", "u", "nobody", None)}
    assert {t: (p.done, p.total) for t, p in progress.items() if p} == {
        "t": (0, 3),
        "u": (0, 2),
        "nobody": (0, 0),
        None: (0, 5),
    }
    worker.reembed_once()  # one batch of two images
    done = {t: service.queue_status(t).switch.done for t in ("t", "u")}  # type: ignore[union-attr]
    assert sum(done.values()) == 2 and done["t"] <= 3 and done["u"] <= 2
    while worker.reembed_once():
        pass
    assert service.queue_status("t").switch is None
    worker.close()
    service.close()
