"""The inference pool: never more image batches, nor more queries, at once than it has slots;
a query never waits behind image batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.embedders.pool import BoundedEmbedder, InferencePool


class Counter:
    """How many model calls run at the same time, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def call(self) -> None:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.02)
        with self._lock:
            self.running -= 1


class CountingEmbedder(FakeEmbedder):
    """Reports each of its query calls to one Counter and each image batch to another."""

    def __init__(
        self, counter: Counter | None = None, dim: int = 32, images: Counter | None = None
    ) -> None:
        super().__init__(dim=dim, model_id=f"fake-{dim}")
        self.counter = counter or Counter()
        self.images = images or Counter()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.counter.call()
        return super().embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.images.call()
        return super().embed_images(images)


@pytest.mark.parametrize("slots", [1, 3])
def test_calls_of_each_kind_never_exceed_the_slots(slots: int) -> None:
    inner = CountingEmbedder()
    pool = InferencePool(slots)
    bounded = pool.bound(inner)
    image = Image.new("RGB", (8, 8), (200, 0, 0))
    with ThreadPoolExecutor(24) as ex:
        calls = [ex.submit(bounded.embed_texts, ["a dog"]) for _ in range(20)]
        calls += [ex.submit(bounded.embed_images, [image]) for _ in range(20)]
        results = [c.result() for c in calls]
    assert inner.counter.peak == slots
    assert inner.images.peak == slots
    assert all(r.shape == (1, inner.dim) for r in results)


class HeldImages(FakeEmbedder):
    """Image batches that run until let go."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = threading.Event()
        self.go = threading.Event()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.embedding.set()
        assert self.go.wait(10)
        return super().embed_images(images)


def test_a_query_never_waits_behind_image_batches() -> None:
    inner = HeldImages()
    bounded = InferencePool(1).bound(inner)
    image = Image.new("RGB", (8, 8), (0, 200, 0))
    with ThreadPoolExecutor(2) as ex:
        batch = ex.submit(bounded.embed_images, [image])
        assert inner.embedding.wait(10)  # the only image slot is taken
        try:
            query = ex.submit(bounded.embed_texts, ["a green square"])
            assert query.result(timeout=5).shape == (1, inner.dim)
            assert not batch.done()
        finally:
            inner.go.set()
        assert batch.result(timeout=10).shape == (1, inner.dim)


def test_models_bound_to_one_pool_share_its_slots() -> None:
    # during a model switch the old and the new model run in the same process
    counter = Counter()
    pool = InferencePool(2)
    old, new = pool.bound(CountingEmbedder(counter)), pool.bound(CountingEmbedder(counter, 64))
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda e: e.embed_texts(["x"]), [old, new] * 8))
    assert counter.peak == 2


def test_bound_embedder_is_the_model() -> None:
    inner = FakeEmbedder(dim=64, model_id="fake-64")
    bounded = InferencePool(2).bound(inner)
    assert (bounded.model_id, bounded.dim) == ("fake-64", 64)
    np.testing.assert_array_equal(bounded.embed_texts(["red"]), inner.embed_texts(["red"]))
    sims = np.array([-0.2, 0.1, 0.5])
    np.testing.assert_array_equal(bounded.calibrate(sims), inner.calibrate(sims))
    assert bounded.images_embedded == inner.images_embedded  # type: ignore[attr-defined]
    assert InferencePool(2).bound(bounded).inner is inner  # never wrapped twice


def test_zero_slots_means_one_per_core_at_least_two() -> None:
    assert InferencePool(0).size >= 2
    with pytest.raises(ValueError):
        InferencePool(-1)


def test_the_service_embeds_through_the_configured_pool(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", model="fake", inference_slots=3)
    service = build_service(settings, embedder=FakeEmbedder())
    try:
        assert isinstance(service.embedder, BoundedEmbedder)
        assert service.embedder.pool.size == 3
    finally:
        service.close()
