"""Tags: the concepts a model sees in an image, best first, from its class probabilities.

A model that can name what it sees offers `embed_and_tag` (the `Tagger` protocol of base.py),
which returns the tags with the vectors of the same forward pass. The built-in model reads them
off its ImageNet classifier; CLIP-family models classify zero-shot over the same vocabulary
(zero_shot.py); the fake test model names the nearest basic colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..domain.records import Tag
from .base import Tagger


@dataclass(frozen=True)
class TagLimits:
    """How many tags an image keeps, and the least confidence a kept tag has."""

    max_tags: int = 5
    min_confidence: float = 0.05

    @property
    def enabled(self) -> bool:
        """Whether tags are wanted at all."""
        return self.max_tags > 0


def top_tags(probabilities: np.ndarray, names: Sequence[str], limits: TagLimits) -> list[list[Tag]]:
    """Per row of (n, classes) probabilities, the best named classes above the threshold.

    Classes sharing a name (ImageNet has two "crane"s, two "maillot"s) count as one tag with
    their probabilities summed.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise ValueError(f"probabilities of shape {p.shape} do not match {len(names)} names")
    unique = list(dict.fromkeys(names))
    if len(unique) != len(names):
        column = {name: i for i, name in enumerate(unique)}
        merged = np.zeros((p.shape[0], len(unique)))
        np.add.at(merged.T, [column[n] for n in names], p.T)
        p, names = merged, unique
    out: list[list[Tag]] = []
    for row in p:
        best = np.argsort(-row, kind="stable")[: max(0, limits.max_tags)]
        out.append(
            [
                Tag(str(names[i]), round(float(row[i]), 4))
                for i in best
                if row[i] >= limits.min_confidence and row[i] > 0
            ]
        )
    return out


def embed_and_tag(
    embedder: Any, images: Sequence[Image.Image], limits: TagLimits
) -> tuple[np.ndarray, list[list[Tag]] | None]:
    """The images' vectors, and their tags when the model can name what it sees and tags are
    wanted (else None: the images' stored tags are left alone)."""
    if not limits.enabled or not isinstance(embedder, Tagger):
        return embedder.embed_images(images), None
    vectors, tags = embedder.embed_and_tag(images, limits)
    return vectors, tags
