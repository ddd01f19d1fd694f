"""The Embedder protocol: what the service and the indexing worker need from a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from ..domain.records import Tag
    from .tags import TagLimits


@runtime_checkable
class Embedder(Protocol):
    """Maps images and texts into one vector space.

    Both methods return float32 arrays of shape (n, dim), each row L2-normalised.
    `calibrate` maps raw dot products between a text and an image vector to scores in
    [0, 1] that mean the same for every query; it must be monotonic in the similarity for a
    given query. `query_vector`, when given, is the vector the similarities were measured
    from, so that a model may judge them against that query's own typical similarities.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def calibrate(
        self, similarities: np.ndarray, query_vector: np.ndarray | None = None
    ) -> np.ndarray: ...


def min_image_side(embedder: object) -> int | None:
    """The shorter side, in pixels, that images given to `embedder` need: its optional
    `min_image_side` (about twice its network's input, so that its own resize still filters
    well). Decoding big photos no larger than that is much cheaper. None: the model does not
    say, and gets images as large as the decoding cap allows."""
    side = getattr(embedder, "min_image_side", None)
    return side if isinstance(side, int) and side > 0 else None


@runtime_checkable
class Tagger(Protocol):
    """Optional: an embedder that also names what it sees (tags.py).

    `embed_and_tag` returns what `embed_images` would, plus each image's tags (best first,
    within `limits`), from the same forward pass.
    """

    def embed_and_tag(
        self, images: Sequence[Image.Image], limits: TagLimits
    ) -> tuple[np.ndarray, list[list[Tag]]]: ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def logistic(similarities: np.ndarray, center: float, slope: float) -> np.ndarray:
    """Monotonic calibration of cosine similarities to [0, 1]."""
    s = np.asarray(similarities, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-slope * (s - center)))).astype(np.float32)
