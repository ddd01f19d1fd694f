"""Scores for image-to-image similarity: a logistic over the cosine between two image vectors.

Text-to-image cosines and image-to-image cosines live on different scales (two photos of the
same kind of scene sit far closer than a caption and its photo), so a search by example image
needs its own map to [0, 1]. An embedder may carry its own fit as an optional method
`calibrate_image(similarities)`; otherwise the constants below apply, by model family.
Fitted by bench/near_duplicates.py: balanced logistic, related = two distinct coco_mini photos
whose COCO label sets overlap by half or more (Jaccard), so 0.5 reads "likely the same kind of
scene" and a near-duplicate copy scores close to 1.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .base import Embedder, logistic

# (center, slope) by model family, for embedders without a fit of their own. CLIP and SigLIP
# image towers put unrelated photos near 0.5 and the same scene past 0.8 (not fitted here:
# no such model ships with the tests).
FAMILY_DEFAULTS: dict[str, tuple[float, float]] = {
    "clip": (0.80, 20.0),
    "siglip": (0.80, 20.0),
}
DEFAULT = (0.80, 20.0)


@runtime_checkable
class ImageCalibrating(Protocol):
    """Optional: an embedder with its own image-to-image calibration."""

    def calibrate_image(self, similarities: np.ndarray) -> np.ndarray: ...


def calibrate_image(embedder: Embedder, similarities: np.ndarray) -> np.ndarray:
    """Image-to-image cosines mapped to [0, 1] (monotonic), by the embedder's own fit if any."""
    own = getattr(embedder, "calibrate_image", None)
    if callable(own):
        return np.asarray(own(similarities), dtype=np.float32)
    family = getattr(embedder, "family", None)
    center, slope = FAMILY_DEFAULTS.get(family, DEFAULT) if isinstance(family, str) else DEFAULT
    return logistic(similarities, center=center, slope=slope)
