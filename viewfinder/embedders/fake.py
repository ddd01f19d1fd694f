"""A deterministic embedder for fast tests: no model, stable vectors, real text-image affinity.

Images are summarised by their mean colour; texts by the colour words they contain, so
"a red square" ranks a red image first. Anything else hashes to a stable pseudo-random vector.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from ..domain.records import Tag
from .base import l2_normalize, logistic
from .tags import TagLimits, top_tags

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}


class FakeEmbedder:
    """Deterministic stand-in for a real model (dimension 32)."""

    def __init__(
        self,
        dim: int = 32,
        model_id: str = "fake-32",
        delay_s: float = 0.0,
        load_s: float = 0.0,
        same_space: Iterable[str] = (),
    ) -> None:
        self._dim = dim
        self._model_id = model_id
        self._same_space = frozenset(same_space)  # model ids whose vectors share this space
        self._delay_s = delay_s  # per image: lets crash tests catch indexing mid-way
        self._load_s = load_s  # `warm_up` takes this long once, as a real model's first load
        self.images_embedded = 0
        self._counting = threading.Lock()  # workers embed two batches at once
        self.warmed_up = False

    def warm_up(self) -> None:
        """Stand in for loading a model: sleeps `load_s` the first time."""
        if not self.warmed_up:
            time.sleep(self._load_s)
            self.warmed_up = True

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def shares_space_with(self, model_id: str) -> bool:
        """Whether vectors of `model_id` live in this model's space (`same_space`)."""
        return model_id in self._same_space

    def _colour_vector(self, rgb: Sequence[float]) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        centred = (np.asarray(rgb, dtype=np.float32) / 255.0) - 0.5
        v[:3] = centred
        v[3] = 0.05  # keeps grey images from being the zero vector
        return v

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = []
        if self._delay_s:
            time.sleep(self._delay_s * len(images))
        for img in images:
            small = np.asarray(img.convert("RGB").resize((8, 8)), dtype=np.float32)
            rows.append(self._colour_vector(small.reshape(-1, 3).mean(axis=0)))
        with self._counting:
            self.images_embedded += len(rows)
        return l2_normalize(np.stack(rows)) if rows else np.zeros((0, self._dim), np.float32)

    def embed_and_tag(
        self, images: Sequence[Image.Image], limits: TagLimits
    ) -> tuple[np.ndarray, list[list[Tag]]]:
        """Vectors, and tags naming the basic colours nearest each image's mean colour."""
        vectors = self.embed_images(images)
        if not images:
            return vectors, []
        means = np.stack([_mean_colour(img) for img in images])
        palette = np.asarray(list(COLOURS.values()), np.float32)
        distance = np.linalg.norm(means[:, None, :] - palette[None, :, :], axis=2) / 255.0
        logits = -8.0 * distance  # a pure colour is its own tag, at ~0.99 confidence
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return vectors, top_tags(p / p.sum(axis=1, keepdims=True), list(COLOURS), limits)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = [w.strip(".,!?") for w in text.lower().split()]
            hits = [COLOURS[w] for w in words if w in COLOURS]
            if hits:
                rows.append(self._colour_vector(np.mean(hits, axis=0)))
            else:
                seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
                rows.append(np.random.default_rng(seed).standard_normal(self._dim))
        return l2_normalize(np.stack(rows)) if rows else np.zeros((0, self._dim), np.float32)

    def calibrate(
        self, similarities: np.ndarray, query_vector: np.ndarray | None = None
    ) -> np.ndarray:
        return logistic(similarities, center=0.5, slope=10.0)

    def calibrate_image(self, similarities: np.ndarray) -> np.ndarray:
        """Image-to-image: colours a little apart (cosine 0.9) already read as unrelated."""
        return logistic(similarities, center=0.9, slope=60.0)


def _mean_colour(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((8, 8)), np.float32).reshape(-1, 3).mean(axis=0)
