"""embedders/image_calibration.py: an embedder's own image-to-image fit, else its family's."""

from __future__ import annotations

import numpy as np

from viewfinder.embedders.builtin.image_calibration import FITTED
from viewfinder.embedders.builtin.image_calibration import calibrate_image as builtin_image
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.embedders.image_calibration import DEFAULT, calibrate_image
from viewfinder.embedders.pool import InferencePool

SIMS = np.array([-0.2, 0.3, 0.6, 0.9, 0.99, 1.0], np.float32)


def test_an_embedders_own_fit_wins_and_survives_the_pool() -> None:
    fake = FakeEmbedder()
    own = fake.calibrate_image(SIMS)
    assert np.allclose(calibrate_image(fake, SIMS), own)
    assert np.allclose(calibrate_image(InferencePool(1).bound(fake), SIMS), own)
    assert own[-1] > 0.99 and own[0] < 0.01


class _Plain:
    """An embedder without a fit of its own."""

    def __init__(self, family: str | None) -> None:
        self.family = family


def test_family_default_is_monotonic_in_0_1() -> None:
    scores = calibrate_image(_Plain("clip"), SIMS)  # type: ignore[arg-type]
    assert np.all(np.diff(scores) > 0) and scores.min() >= 0 and scores.max() <= 1
    center = DEFAULT[0]
    assert abs(float(calibrate_image(_Plain(None), np.array([center]))[0]) - 0.5) < 1e-6  # type: ignore[arg-type]


def test_builtin_fit_puts_copies_near_one_and_strangers_near_zero() -> None:
    scores = builtin_image("minilm", np.array([0.11, FITTED["minilm"][0], 0.985]))
    assert scores[0] < 0.1 and abs(scores[1] - 0.5) < 1e-6 and scores[2] > 0.98
    assert np.allclose(builtin_image("e5", SIMS), builtin_image("minilm", SIMS))
