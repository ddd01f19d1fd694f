"""Build the embedder that settings name (the only place that knows concrete models)."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import Settings
from ..errors import ConfigurationError
from .base import Embedder


def load_embedder(settings: Settings) -> Embedder:
    """Return the embedder selected by `VIEWFINDER_MODEL`."""
    name = settings.model.strip()
    fake = re.fullmatch(r"fake(\d*)(?::([0-9.]+))?", name)
    if fake:
        from .fake import FakeEmbedder

        # `fake`, `fake64`: test models of dimension 32 / 64; `:SECONDS` slows each image down
        dim = int(fake.group(1) or 32)
        return FakeEmbedder(dim=dim, model_id=f"fake-{dim}", delay_s=float(fake.group(2) or 0))
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
