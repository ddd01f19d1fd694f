"""The built-in model's image-to-image calibration (`BuiltinEmbedder.calibrate_image`).

A balanced logistic over the cosine between two image vectors, fitted by
bench/near_duplicates.py on coco_mini: related = two distinct photos whose COCO label sets
overlap by half or more (Jaccard), against every other pair (56,882 ordered pairs, 218
related), weighed equally. Fitted on recipe v5 (v4 gave 0.4353 / 8.21, v3 0.4357 / 8.20). A
resized, re-encoded or 10%-cropped copy of a photo then scores ~0.99 (median cosine 0.985).
"""

from __future__ import annotations

import numpy as np

from ..base import logistic

# text model -> (center, slope); e5 was not fitted: its image vectors differ only by their
# class-table centring, so minilm's fit stands in for it
FITTED: dict[str, tuple[float, float]] = {"minilm": (0.4707, 8.63)}


def calibrate_image(text_model: str, similarities: np.ndarray) -> np.ndarray:
    """Image-to-image cosines mapped to [0, 1]."""
    center, slope = FITTED.get(text_model, FITTED["minilm"])
    return logistic(similarities, center=center, slope=slope)
