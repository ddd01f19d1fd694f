"""Zero-shot tags for CLIP-family models: the built-in model's ImageNet vocabulary, classified by
how close each image's vector lies to a prompt per class ("a photo of a {name}.").

The prompts' text embeddings are computed once per model, on the first call (a thousand texts:
seconds with a real text tower), and kept. Probabilities are a softmax over the cosines times
the logit scale CLIP was trained with (100), as CLIP's own zero-shot classifier has them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from ..domain.records import Tag
from .tags import TagLimits, top_tags

TEMPLATE = "a photo of a {name}."
LOGIT_SCALE = 100.0  # CLIP's learned temperature (exp of 4.6052, its clamp)


class ZeroShotTagger:
    """Tags image vectors by zero-shot classification over a fixed vocabulary."""

    def __init__(
        self,
        embed_texts: Callable[[Sequence[str]], np.ndarray],
        names: Callable[[], Sequence[str]],
        *,
        logit_scale: float = LOGIT_SCALE,
        template: str = TEMPLATE,
    ) -> None:
        self._embed_texts = embed_texts
        self._names = names
        self.logit_scale = logit_scale
        self.template = template
        self._lock = threading.Lock()
        self._vocabulary: tuple[list[str], np.ndarray] | None = None

    def vocabulary(self) -> tuple[list[str], np.ndarray]:
        """The class names and their prompts' unit text embeddings (computed once)."""
        with self._lock:
            if self._vocabulary is None:
                names = [str(n) for n in self._names()]
                prompts = [self.template.format(name=n) for n in names]
                self._vocabulary = (names, np.asarray(self._embed_texts(prompts), np.float32))
            return self._vocabulary

    def tag(self, vectors: np.ndarray, limits: TagLimits) -> list[list[Tag]]:
        """Per unit image vector, its most likely classes within `limits`."""
        if len(vectors) == 0:
            return []
        names, classes = self.vocabulary()
        logits = self.logit_scale * (np.asarray(vectors, np.float64) @ classes.T.astype(np.float64))
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return top_tags(p / p.sum(axis=1, keepdims=True), names, limits)
