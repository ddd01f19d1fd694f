"""OnnxClipEmbedder against tiny random models written by `build_tiny_clip`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.embedders.base import Embedder, min_image_side
from viewfinder.embedders.model_dir import REQUIRED_FILES, load_model_dir
from viewfinder.embedders.onnx_clip import OnnxClipEmbedder, Preprocess
from viewfinder.embedders.runtime import CPU, choose_providers
from viewfinder.errors import ConfigurationError
from viewfinder.testing import build_tiny_clip
from viewfinder.testing.tiny_clip import CLIP_MEAN, CLIP_STD, OPEN_CLIP_SPECIALS

CONTEXT = 16
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255,) * 3}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "Tiny-CLIP__test")


@pytest.fixture(scope="module")
def embedder(clip_dir: Path) -> OnnxClipEmbedder:
    return OnnxClipEmbedder(clip_dir)


@pytest.fixture
def model_copy(clip_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the model directory that a test may damage."""
    return Path(shutil.copytree(clip_dir, tmp_path / "Tiny-CLIP__copy"))


def noise_images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)) for _ in range(n)]


# --- vectors -------------------------------------------------------------------------------


def test_satisfies_protocol_and_reads_identity(embedder: OnnxClipEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == "Tiny-CLIP__test"
    assert embedder.dim == 16
    assert embedder.family == "clip"


def test_vectors_are_unit_float32_rows(embedder: OnnxClipEmbedder) -> None:
    images = embedder.embed_images(noise_images(3) + [Image.new("L", (20, 90), 128)])
    texts = embedder.embed_texts(["a red square", "", "x" * 500])
    for vectors, n in ((images, 4), (texts, 3)):
        assert vectors.shape == (n, 16)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_empty_inputs_give_empty_arrays(embedder: OnnxClipEmbedder) -> None:
    assert embedder.embed_images([]).shape == (0, 16)
    assert embedder.embed_texts([]).shape == (0, 16)
    assert embedder.embed_texts([]).dtype == np.float32


def test_deterministic_across_calls_and_instances(
    embedder: OnnxClipEmbedder, clip_dir: Path
) -> None:
    images, texts = noise_images(2), ["a dog", "a blue sky"]
    again = OnnxClipEmbedder(clip_dir)
    np.testing.assert_array_equal(embedder.embed_images(images), embedder.embed_images(images))
    np.testing.assert_allclose(embedder.embed_images(images), again.embed_images(images), atol=1e-6)
    np.testing.assert_allclose(embedder.embed_texts(texts), again.embed_texts(texts), atol=1e-6)


def test_batching_does_not_change_a_vector(embedder: OnnxClipEmbedder) -> None:
    images = noise_images(5)
    together = embedder.embed_images(images)
    alone = np.concatenate([embedder.embed_images([image]) for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_different_inputs_give_different_vectors(embedder: OnnxClipEmbedder) -> None:
    images = embedder.embed_images(noise_images(4))
    texts = embedder.embed_texts(["a dog", "a cat", "zebra", "a photo of a dog"])
    for vectors in (images, texts):
        sims = vectors @ vectors.T
        assert np.all(sims[~np.eye(4, dtype=bool)] < 0.9999)


def test_colour_words_find_their_colour(embedder: OnnxClipEmbedder) -> None:
    images = embedder.embed_images([Image.new("RGB", (48, 32), c) for c in COLOURS.values()])
    texts = embedder.embed_texts([f"a {name} square" for name in COLOURS])
    assert list((texts @ images.T).argmax(axis=1)) == list(range(len(COLOURS)))


def test_concurrent_calls_agree(embedder: OnnxClipEmbedder) -> None:
    texts = [f"a {colour} dog" for colour in COLOURS] * 4
    expected = embedder.embed_texts(texts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(lambda t: embedder.embed_texts([t])[0], texts))
        images = list(pool.map(lambda i: embedder.embed_images([i])[0], noise_images(8)))
    np.testing.assert_allclose(np.stack(rows), expected, atol=1e-5)
    np.testing.assert_allclose(np.stack(images), embedder.embed_images(noise_images(8)), atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_static_batch_dimension_is_chunked(tmp_path: Path, batch_size: int) -> None:
    dynamic = OnnxClipEmbedder(build_tiny_clip(tmp_path / "dynamic"))
    static = OnnxClipEmbedder(build_tiny_clip(tmp_path / "static", batch_size=batch_size))
    images, texts = noise_images(5), ["a", "b", "c d", "red", "sky"]
    np.testing.assert_allclose(static.embed_images(images), dynamic.embed_images(images), atol=1e-5)
    np.testing.assert_allclose(static.embed_texts(texts), dynamic.embed_texts(texts), atol=1e-5)


def test_int64_text_input_gives_the_same_vectors(
    embedder: OnnxClipEmbedder, tmp_path: Path
) -> None:
    int64 = OnnxClipEmbedder(build_tiny_clip(tmp_path / "int64", text_dtype="int64"))
    texts = ["a red square", "two dogs on a beach"]
    np.testing.assert_allclose(int64.embed_texts(texts), embedder.embed_texts(texts), atol=1e-6)


# --- preprocessing -------------------------------------------------------------------------


def block_image(height: int, width: int, seed: int = 1) -> np.ndarray:
    """Random colours in 2x2 blocks, so a 2x downscale has one exact answer."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 2, width // 2, 3), dtype=np.uint8)
    return small.repeat(2, axis=0).repeat(2, axis=1)


def reference(pixels: np.ndarray) -> np.ndarray:
    """Independent normalisation to NCHW-ready CHW float32."""
    mean, std = np.array(CLIP_MEAN), np.array(CLIP_STD)
    return ((pixels / 255.0 - mean) / std).transpose(2, 0, 1).astype(np.float32)


@pytest.mark.parametrize(("height", "width"), [(64, 96), (96, 64), (64, 64)])
@pytest.mark.parametrize("interpolation", ["box", "nearest"])
def test_shortest_side_resize_then_centre_crop(height: int, width: int, interpolation: str) -> None:
    cfg = {"size": 32, "mean": CLIP_MEAN, "std": CLIP_STD, "interpolation": interpolation}
    preprocess = Preprocess.from_config(cfg, None, Path("preprocess_cfg.json"))
    pixels = block_image(height, width)
    halved = pixels[::2, ::2]  # shortest side 2x -> 32
    top, left = (halved.shape[0] - 32) // 2, (halved.shape[1] - 32) // 2
    expected = reference(halved[top : top + 32, left : left + 32])
    np.testing.assert_allclose(preprocess(Image.fromarray(pixels)), expected, atol=1e-5)


def test_model_preprocessing_crops_and_normalises(embedder: OnnxClipEmbedder) -> None:
    # Shortest side already at size: no resampling, so bicubic cannot blur the check.
    pixels = np.random.default_rng(2).integers(0, 256, (32, 45, 3), dtype=np.uint8)
    left = round((45 - 32) / 2)
    out = embedder.preprocess(Image.fromarray(pixels))
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference(pixels[:, left : left + 32]), atol=1e-5)


def test_squash_and_longest_modes() -> None:
    pixels = block_image(32, 64)
    base = {"size": [16, 16], "mean": CLIP_MEAN, "std": CLIP_STD, "interpolation": "box"}
    squash = Preprocess.from_config({**base, "resize_mode": "squash"}, None, Path("p"))
    expected = pixels.reshape(16, 2, 16, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(squash(Image.fromarray(pixels)), reference(expected), atol=0.02)
    longest = Preprocess.from_config(
        {**base, "resize_mode": "longest", "fill_color": 0}, None, Path("p")
    )
    out = longest(Image.fromarray(pixels))
    np.testing.assert_allclose(out[:, :4], reference(np.zeros((4, 16, 3))), atol=1e-5)  # padding
    expected = pixels.reshape(8, 4, 16, 4, 3).mean(axis=(1, 3))  # 4x box filter
    np.testing.assert_allclose(out[:, 4:12], reference(expected), atol=0.02)
    np.testing.assert_allclose(out[:, 12:], reference(np.zeros((4, 16, 3))), atol=1e-5)


def test_greyscale_and_alpha_images_become_rgb(embedder: OnnxClipEmbedder) -> None:
    grey = embedder.preprocess(Image.new("L", (32, 32), 200))
    rgba = embedder.preprocess(Image.new("RGBA", (32, 32), (200, 200, 200, 7)))
    np.testing.assert_allclose(grey, reference(np.full((32, 32, 3), 200.0)), atol=1e-5)
    np.testing.assert_allclose(rgba, grey)


# --- tokenizer -----------------------------------------------------------------------------


def test_clip_tokens_are_framed_zero_padded_and_truncated(embedder: OnnxClipEmbedder) -> None:
    tok = embedder.tokenizer
    short, long = tok(["a red square", "red " * 100])
    assert short.shape == long.shape == (CONTEXT,)
    assert short[0] == tok.bos_id and long[0] == tok.bos_id
    assert list(short[1:5]).index(tok.eos_id) == 3  # a red square <eot>
    assert np.all(short[5:] == 0)
    assert long[-1] == tok.eos_id and tok.eos_id not in long[:-1]


def test_open_clip_special_token_names(tmp_path: Path) -> None:
    model = build_tiny_clip(tmp_path / "m", special_tokens=OPEN_CLIP_SPECIALS)
    tok = OnnxClipEmbedder(model).tokenizer
    assert tok.mode == "clip"
    row = tok(["a dog"])[0]
    assert row[0] == tok.bos_id and row[3] == tok.eos_id and row[4] == 0


def test_siglip_pads_with_its_pad_id_and_lowercases(tmp_path: Path) -> None:
    siglip = OnnxClipEmbedder(build_tiny_clip(tmp_path / "m", family="siglip"))
    tok = siglip.tokenizer
    assert siglip.family == "siglip" and tok.mode == "hf"
    assert tok.pad_id != 0 and tok.eos_id is not None
    short, long = tok(["A Red  SQUARE!", "red " * 100])
    np.testing.assert_array_equal(short, tok(["a red square"])[0])
    assert short[3] == tok.eos_id and np.all(short[4:] == tok.pad_id)  # no start token
    assert long.shape == (CONTEXT,) and long[-1] == tok.eos_id
    vectors = siglip.embed_texts(["A RED square", "a red square"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


# --- calibration ---------------------------------------------------------------------------


def test_calibrate_is_monotonic_in_unit_interval(embedder: OnnxClipEmbedder) -> None:
    sims = np.linspace(-1.0, 1.0, 201, dtype=np.float32)
    scores = embedder.calibrate(sims)
    assert scores.dtype == np.float32 and scores.shape == sims.shape
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores) >= 0)
    assert scores[0] < 0.01 and scores[-1] > 0.99
    assert embedder.calibrate(np.array([0.2]))[0] == pytest.approx(0.5)


def test_calibration_overrides(model_copy: Path) -> None:
    assert OnnxClipEmbedder(model_copy, calibration=(0.5, 10.0)).calibrate(
        np.array([0.5])
    ) == pytest.approx([0.5])
    (model_copy / "viewfinder.json").write_text(
        json.dumps({"calibration": {"center": 0.3, "slope": 5}})
    )
    assert OnnxClipEmbedder(model_copy).calibration.center == 0.3
    with pytest.raises(ConfigurationError):
        OnnxClipEmbedder(model_copy, calibration=(0.3, -1.0))
    (model_copy / "viewfinder.json").write_text(json.dumps({"calibration": {"center": 0.3}}))
    with pytest.raises(ConfigurationError, match="viewfinder.json"):
        OnnxClipEmbedder(model_copy)


# --- broken model directories --------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="VIEWFINDER_MODEL") as info:
        OnnxClipEmbedder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_file(model_copy: Path, name: str) -> None:
    (model_copy / name).unlink()
    with pytest.raises(ConfigurationError, match="VIEWFINDER_MODEL") as info:
        OnnxClipEmbedder(model_copy)
    assert name in str(info.value) and str(model_copy) in str(info.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.json", b"{not json"),
        ("config.json", b"[1, 2]"),
        ("visual/preprocess_cfg.json", b"\xff\xfe"),
        ("visual/preprocess_cfg.json", b'{"size": "big"}'),
        ("visual/model.onnx", b"version https://git-lfs.github.com/spec/v1\n"),
        ("textual/model.onnx", b"\x00garbage"),
        ("textual/tokenizer.json", b"{}"),
    ],
)
def test_corrupt_file(model_copy: Path, name: str, content: bytes) -> None:
    (model_copy / name).write_bytes(content)
    with pytest.raises(ConfigurationError) as info:
        OnnxClipEmbedder(model_copy)
    assert name.split("/")[-1] in str(info.value)


def test_git_lfs_pointer_is_named(model_copy: Path) -> None:
    (model_copy / "textual" / "model.onnx").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
    )
    with pytest.raises(ConfigurationError, match="Git LFS pointer"):
        OnnxClipEmbedder(model_copy)


def test_config_that_disagrees_with_the_graphs(model_copy: Path) -> None:
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "embed_dim": 8}))
    with pytest.raises(ConfigurationError, match="embed_dim"):
        OnnxClipEmbedder(model_copy)
    (model_copy / "config.json").write_text(json.dumps(config))
    cfg_path = model_copy / "visual" / "preprocess_cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "size": 24}))
    with pytest.raises(ConfigurationError, match="24x24"):
        OnnxClipEmbedder(model_copy)


def test_load_model_dir_reads_identity(model_copy: Path) -> None:
    model = load_model_dir(model_copy)
    assert model.model_id == "Tiny-CLIP__copy" and model.family == "clip"
    (model_copy / "viewfinder.json").write_text(json.dumps({"model_id": "custom"}))
    assert load_model_dir(model_copy).model_id == "custom"


# --- runtime -------------------------------------------------------------------------------


def test_providers_fall_back_to_cpu() -> None:
    assert choose_providers(["CUDAExecutionProvider"], available=[CPU]) == [CPU]
    assert choose_providers(["cuda", "cpu"], available=["CUDAExecutionProvider", CPU]) == [
        "CUDAExecutionProvider",
        CPU,
    ]
    assert choose_providers(None, available=["OpenVINOExecutionProvider", CPU]) == [
        "OpenVINOExecutionProvider",
        CPU,
    ]


def test_unavailable_provider_still_loads(clip_dir: Path) -> None:
    embedder = OnnxClipEmbedder(
        clip_dir, providers=["cuda", "coreml"], intra_op_threads=1, inter_op_threads=1
    )
    assert embedder.embed_texts(["a dog"]).shape == (1, 16)


@dataclass
class StubInfo:
    name: str
    shape: Sequence[int | str | None]
    type: str


class StubSession:
    """Stands in for onnxruntime: returns the batch's first features, counts calls."""

    def __init__(self, path: Path) -> None:
        self.textual = path.parent.name == "textual"
        self.calls = 0

    def get_inputs(self) -> list[StubInfo]:
        if self.textual:
            return [StubInfo("text", ["batch", CONTEXT], "tensor(int32)")]
        return [StubInfo("image", ["batch", 3, 32, 32], "tensor(float)")]

    def get_outputs(self) -> list[StubInfo]:
        return [StubInfo("embedding", ["batch", 16], "tensor(float)")]

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        (batch,) = feed.values()
        assert batch.dtype == (np.int32 if self.textual else np.float32)
        flat = batch.reshape(len(batch), -1).astype(np.float32)
        return [flat[:, :16] + 1.0]


def test_session_factory_accepts_a_stub(clip_dir: Path) -> None:
    sessions: list[StubSession] = []

    def factory(path: Path) -> StubSession:
        sessions.append(StubSession(path))
        return sessions[-1]

    embedder = OnnxClipEmbedder(clip_dir, session_factory=factory)
    vectors = embedder.embed_texts(["a", "b"])
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert [s.calls for s in sessions] == [0, 1]


def test_images_need_twice_the_tower_input_on_their_shorter_side(tmp_path: Path) -> None:
    model = OnnxClipEmbedder(build_tiny_clip(tmp_path / "m", image_size=48))
    assert model.min_image_side == 96
    assert min_image_side(model) == 96
