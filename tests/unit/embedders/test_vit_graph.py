"""The random-weight CLIP transformer graphs the benchmark uses, at a small size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.embedders.onnx_clip import OnnxClipEmbedder
from viewfinder.embedders.runtime import create_session
from viewfinder.testing.vit_graph import VitShape, build_vit_clip

SMALL = VitShape(
    image_size=32,
    patch_size=8,
    vision_width=32,
    vision_layers=2,
    vision_heads=4,
    text_width=32,
    text_layers=2,
    text_heads=4,
    context_length=16,
    vocab_size=500,
    embed_dim=24,
    quick_gelu=False,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_vit_clip(tmp_path_factory.mktemp("vit") / "ViT-Small__random", SMALL)


def test_loads_and_embeds_unit_vectors(model_dir: Path) -> None:
    embedder = OnnxClipEmbedder(model_dir)
    images = embedder.embed_images([Image.new("RGB", (50, 40), (10, 200, 30))] * 3)
    texts = embedder.embed_texts(["a green square", "a dog"])
    assert images.shape == (3, 24) and texts.shape == (2, 24)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["vision_cfg"]["layers"] == 2 and config["text_cfg"]["heads"] == 4


def test_text_pools_at_end_of_text_under_a_causal_mask(model_dir: Path) -> None:
    session = create_session(model_dir / "textual" / "model.onnx")
    ids = np.zeros((1, SMALL.context_length), np.int32)
    ids[0, :4] = [10, 11, 12, 400]  # 400: the highest id, where the text ends
    base = session.run(None, {"text": ids})[0]
    after = ids.copy()
    after[0, 4:] = 7  # tokens after the end cannot be seen by it
    np.testing.assert_allclose(session.run(None, {"text": after})[0], base, rtol=1e-5)
    before = ids.copy()
    before[0, 1] = 13  # tokens before it are
    assert not np.allclose(session.run(None, {"text": before})[0], base)


def test_rejects_impossible_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of patch_size"):
        build_vit_clip(tmp_path / "a", VitShape(image_size=30, patch_size=8))
    with pytest.raises(ValueError, match="head counts"):
        build_vit_clip(tmp_path / "b", VitShape(vision_width=100, vision_heads=12))
