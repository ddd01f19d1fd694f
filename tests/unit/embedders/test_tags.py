"""Tags: top classes within limits, zero-shot tags of CLIP-family models, the fake model's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.domain.records import Tag
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.embedders.onnx_clip import OnnxClipEmbedder
from viewfinder.embedders.pool import InferencePool
from viewfinder.embedders.tags import TagLimits, embed_and_tag, top_tags
from viewfinder.embedders.zero_shot import ZeroShotTagger
from viewfinder.testing import build_tiny_clip


def square(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (40, 40), colour)


def test_top_tags_are_the_best_above_the_threshold_and_merge_shared_names() -> None:
    p = np.array([[0.05, 0.5, 0.15, 0.2, 0.1], [0.9, 0.02, 0.03, 0.04, 0.01]])
    names = ["crane", "dog", "crane", "cat", "fox"]
    assert top_tags(p, names, TagLimits(max_tags=2, min_confidence=0.0)) == [
        [Tag("dog", 0.5), Tag("crane", 0.2)],  # the two cranes: 0.05 + 0.15, ahead of cat
        [Tag("crane", 0.93), Tag("cat", 0.04)],
    ]
    assert top_tags(p, names, TagLimits(max_tags=5, min_confidence=0.2)) == [
        [Tag("dog", 0.5), Tag("crane", 0.2), Tag("cat", 0.2)],
        [Tag("crane", 0.93)],
    ]
    with pytest.raises(ValueError, match="names"):
        top_tags(p, names[:3], TagLimits())


def test_the_fake_model_names_colours_and_embeds_as_without_tags() -> None:
    fake = FakeEmbedder()
    images = [square((250, 5, 5)), square((0, 0, 255))]
    vectors, tags = fake.embed_and_tag(images, TagLimits(max_tags=3))
    np.testing.assert_array_equal(vectors, fake.embed_images(images))
    assert [t[0].name for t in tags] == ["red", "blue"] and tags[0][0].confidence > 0.9


class Untagged:
    """A model without tags: only the Embedder protocol."""

    model_id, dim = "plain", 32

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return FakeEmbedder().embed_images(images)


def test_embed_and_tag_without_tags_or_without_a_tagging_model() -> None:
    images = [square((0, 255, 0))]
    vectors, tags = embed_and_tag(FakeEmbedder(), images, TagLimits(max_tags=0))
    assert tags is None and vectors.shape == (1, 32)  # tags off: the stored ones stay
    assert embed_and_tag(Untagged(), images, TagLimits())[1] is None
    # in the inference pool: one slot, one model call recorded, either way
    pool = InferencePool(1)
    calls: list[tuple[str, int]] = []
    pool.observe(lambda kind, n, _s: calls.append((kind, n)))
    _, pooled = embed_and_tag(pool.bound(FakeEmbedder()), images, TagLimits())
    assert pooled is not None and pooled[0][0].name == "green"
    assert embed_and_tag(pool.bound(Untagged()), images, TagLimits())[1] is None  # type: ignore[arg-type]
    assert calls == [("images", 1), ("images", 1)]


def test_zero_shot_vocabulary_is_embedded_once(tmp_path: Path) -> None:
    clip = OnnxClipEmbedder(build_tiny_clip(tmp_path / "m"))
    asked: list[int] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        asked.append(len(texts))
        return clip.embed_texts(texts)

    colours = ["red", "green", "blue", "yellow", "white", "black"]
    tagger = ZeroShotTagger(embed, lambda: colours)
    images = [square((255, 0, 0)), square((0, 0, 255)), square((0, 255, 0))]
    for _ in range(2):
        tags = tagger.tag(clip.embed_images(images), TagLimits(max_tags=1, min_confidence=0.0))
        assert [t[0].name for t in tags] == ["red", "blue", "green"]
    assert asked == [len(colours)]  # once, however many batches follow
    assert tagger.tag(np.zeros((0, clip.dim), np.float32), TagLimits()) == []


def test_clip_models_tag_zero_shot_over_the_imagenet_vocabulary(tmp_path: Path) -> None:
    clip = OnnxClipEmbedder(build_tiny_clip(tmp_path / "m"))
    images = [square((255, 165, 0)), square((0, 200, 0))]
    vectors, tags = clip.embed_and_tag(images, TagLimits(max_tags=5, min_confidence=0.0))
    np.testing.assert_allclose(vectors, clip.embed_images(images), atol=1e-6)
    # the tiny model's weights are random but its colour words are wired to the pixels
    assert tags[0][0].name == "orange" and "green" in tags[1][0].name
    assert all(len(t) == 5 for t in tags)
    for row in tags:
        assert [t.confidence for t in row] == sorted((t.confidence for t in row), reverse=True)
    assert clip.embed_and_tag([], TagLimits())[1] == []
