"""A bounded inference pool: at most N image batches and N queries embed at once in a process.

Searches embed their query on the server's request threads and every indexing worker embeds
its batches on its own threads; without a bound, a burst of requests or many workers would run
that many ONNX Runtime inferences at once, each wanting every core, and all of them would
slow down together. The pool hands out a fixed number of slots for each kind of call; a call
waits for a free slot of its kind. Image batches and queries have slots of their own, so a
query never waits behind image batches (a query takes milliseconds, a batch a second): an
indexing worker keeps two batches embedding at once (indexing/worker.py), which would
otherwise hold every slot of a two-core machine. One pool serves every model of a process
(during a model switch, the old and the new).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from PIL import Image

from ..domain.records import Tag
from .base import Embedder
from .tags import TagLimits, embed_and_tag

InferenceObserver = Callable[[str, int, float], None]
CallKind = Literal["images", "texts"]


def default_slots() -> int:
    """The pool size when none is configured: one slot per core, at least two.

    Two, so that the two batches an indexing worker keeps in flight embed at once on a small
    machine, and two queries run side by side.
    """
    return max(2, os.cpu_count() or 1)


class InferencePool:
    """Slots for model calls, `size` for image batches and `size` for queries, shared by
    every embedder `bound` to it."""

    def __init__(self, slots: int = 0) -> None:
        if slots < 0:
            raise ValueError("inference slots must be >= 0 (0: one per core)")
        self.size = slots or default_slots()
        self._slots: dict[CallKind, threading.BoundedSemaphore] = {
            "images": threading.BoundedSemaphore(self.size),
            "texts": threading.BoundedSemaphore(self.size),
        }
        self._observers: list[InferenceObserver] = []

    @contextmanager
    def slot(self, kind: CallKind) -> Iterator[None]:
        """Hold a slot for one model call of `kind` ("images" or "texts")."""
        with self._slots[kind]:
            yield

    def observe(self, observer: InferenceObserver) -> Callable[[], None]:
        """Tell `observer` the kind ("images", "texts"), size and seconds of every model call
        (slot wait excluded); returns the function that stops telling it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def record(self, kind: str, count: int, seconds: float) -> None:
        """Tell the observers of one model call."""
        for observer in list(self._observers):
            observer(kind, count, seconds)

    def bound(self, embedder: Embedder) -> Embedder:
        """`embedder` with its model calls run in this pool's slots."""
        if isinstance(embedder, BoundedEmbedder):
            embedder = embedder.inner
        return BoundedEmbedder(embedder, self)


class BoundedEmbedder:
    """An Embedder whose `embed_images` and `embed_texts` wait for a slot of a pool."""

    def __init__(self, inner: Embedder, pool: InferencePool) -> None:
        self.inner = inner
        self.pool = pool

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self.pool.slot("images"):
            started = time.perf_counter()
            vectors = self.inner.embed_images(images)
        self.pool.record("images", len(images), time.perf_counter() - started)
        return vectors

    def embed_and_tag(
        self, images: Sequence[Image.Image], limits: TagLimits
    ) -> tuple[np.ndarray, list[list[Tag]] | None]:
        """`embed_images` with the model's tags (None: it has none), in one slot."""
        with self.pool.slot("images"):
            started = time.perf_counter()
            result = embed_and_tag(self.inner, images, limits)
        self.pool.record("images", len(images), time.perf_counter() - started)
        return result

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        with self.pool.slot("texts"):
            started = time.perf_counter()
            vectors = self.inner.embed_texts(texts)
        self.pool.record("texts", len(texts), time.perf_counter() - started)
        return vectors

    def calibrate(
        self, similarities: np.ndarray, query_vector: np.ndarray | None = None
    ) -> np.ndarray:
        return self.inner.calibrate(similarities, query_vector)

    def __getattr__(self, name: str) -> Any:
        # the model's own extras (`describe`, `family`, counters in tests) stay reachable
        return getattr(self.inner, name)
