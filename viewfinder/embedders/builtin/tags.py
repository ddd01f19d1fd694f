"""The built-in model's tags: its ImageNet classifier's own guesses, from the forward pass that
also made the image's vector (no second inference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...domain.records import Tag
from ..tags import TagLimits, top_tags
from .vision import softmax


def class_tags(logits: np.ndarray, names: Sequence[str], limits: TagLimits) -> list[list[Tag]]:
    """Per image, the ImageNet classes it most likely shows (untempered softmax of the logits,
    as `describe` has them), within `limits`."""
    return top_tags(softmax(logits, 1.0), names, limits)
