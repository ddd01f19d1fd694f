"""Build the embedder that settings name (the only place that knows concrete models)."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import Settings
from ..errors import ConfigurationError
from .base import Embedder
from .blas import limit_blas_threads

# the built-in model's names and their text towers
BUILTIN_TEXT_MODELS = {"builtin": "minilm", "builtin-multilingual": "e5"}
# `fake`, `fake64`: test models of dimension 32 / 64; `:SECONDS` slows each image down;
# `:SECONDS:LOAD_SECONDS` also makes loading it (`warm_up`) take that long
FAKE_MODEL = re.compile(r"fake(\d*)(?::([0-9.]+)(?::([0-9.]+))?)?")


def load_embedder(settings: Settings) -> Embedder:
    """Return the embedder selected by `VIEWFINDER_MODEL`; sets this process's BLAS threads
    (`VIEWFINDER_BLAS_THREADS`, see blas.py)."""
    limit_blas_threads(settings.blas_threads)
    name = settings.model.strip()
    fake = FAKE_MODEL.fullmatch(name)
    if fake:
        from .fake import FakeEmbedder

        dim = int(fake.group(1) or 32)
        return FakeEmbedder(
            dim=dim,
            model_id=f"fake-{dim}",
            delay_s=float(fake.group(2) or 0),
            load_s=float(fake.group(3) or 0),
        )
    if name in BUILTIN_TEXT_MODELS:
        from .builtin import BuiltinEmbedder, ModelCache

        # one cache per machine and user; a data dir's own (earlier versions) is read too
        cache = ModelCache(
            settings.resolved_cache_dir() / "builtin",
            also_read=[settings.data_dir / "models" / "builtin"],
        )
        return BuiltinEmbedder(
            cache,
            text_model=BUILTIN_TEXT_MODELS[name],
            intra_op_threads=settings.intra_op_threads,
            run_nice=settings.indexing_nice,
        )
    from .catalog import resolve_model
    from .onnx_clip import OnnxClipEmbedder

    # A catalogue name must already be in the model cache: the server never downloads.
    return OnnxClipEmbedder(
        resolve_model(name, settings.data_dir),
        providers=providers(settings),
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
    )


def providers(settings: Settings) -> list[str] | None:
    """The execution providers `VIEWFINDER_PROVIDERS` asks for; None: the best available."""
    wanted = [name.strip() for name in (settings.providers or "").split(",") if name.strip()]
    return wanted or None


def model_id_without_loading(spec: str, data_dir: Path) -> str | None:
    """The model id that the model setting `spec` would load here, found without loading it
    (a test model, one that ships with Viewfinder, a complete pulled model or a model
    directory); None when it would not load without a download."""
    name = spec.strip()
    fake = FAKE_MODEL.fullmatch(name)
    if fake:
        return f"fake-{int(fake.group(1) or 32)}"
    if name in BUILTIN_TEXT_MODELS:
        from .builtin import builtin_model_id

        return builtin_model_id("lite2", BUILTIN_TEXT_MODELS[name])
    if not name:
        return None
    from .catalog import resolve_model
    from .model_dir import load_model_dir

    try:
        return load_model_dir(resolve_model(name, data_dir)).model_id
    except ConfigurationError:
        return None


def shares_space_without_loading(spec: str, model_id: str) -> bool:
    """Whether the model setting `spec` would search `model_id`'s vectors while it re-embeds
    them (`shares_space_with`, see domain/spaces.py), found without loading it."""
    name = spec.strip()
    if name in BUILTIN_TEXT_MODELS:
        from .builtin import builtin_shares_space

        return builtin_shares_space("lite2", BUILTIN_TEXT_MODELS[name], model_id)
    return False  # test models and CLIP-family models share no space with another model
