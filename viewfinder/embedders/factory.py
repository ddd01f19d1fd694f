"""Build the embedder that settings name (the only place that knows concrete models)."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..errors import ConfigurationError
from .base import Embedder


def load_embedder(settings: Settings) -> Embedder:
    """Return the embedder selected by `VIEWFINDER_MODEL`."""
    name = settings.model.strip()
    if name == "fake" or name.startswith("fake:"):
        from .fake import FakeEmbedder

        # `fake:SECONDS` slows each image down, for crash tests
        delay = name.partition(":")[2]
        return FakeEmbedder(delay_s=float(delay) if delay else 0.0)
    if name == "builtin":
        from .builtin import BuiltinEmbedder

        return BuiltinEmbedder(
            settings.data_dir / "models" / "builtin",
            intra_op_threads=settings.intra_op_threads,
        )
    path = Path(name).expanduser()
    if path.is_dir():
        from .onnx_clip import OnnxClipEmbedder

        return OnnxClipEmbedder(path, intra_op_threads=settings.intra_op_threads)
    raise ConfigurationError(
        f"unknown model {name!r}: set VIEWFINDER_MODEL to `builtin` or to the path of a CLIP "
        "model directory in the immich ONNX layout (config.json, visual/model.onnx, "
        "textual/model.onnx, ...)"
    )
