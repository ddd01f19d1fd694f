"""Assemble a running service from settings: the stores, the embedder, the worker options."""

from __future__ import annotations

from pathlib import Path

from .config import Settings
from .domain.fetch import FetchPolicy, UrlFetcher
from .domain.ingest import IngestLimits
from .domain.service import ImageService
from .domain.spaces import SpaceHooks
from .embedders.base import Embedder
from .embedders.factory import load_embedder
from .embedders.pool import InferencePool
from .indexing.worker import WorkerOptions
from .stores.factory import open_stores, open_vectors, promote_vectors


def build_service(settings: Settings, embedder: Embedder | None = None) -> ImageService:
    """Open the stores and the model named by settings (not yet started)."""
    metadata, blobs, vectors = open_stores(settings)
    fetcher = UrlFetcher(
        FetchPolicy(
            allow_private=settings.fetch_allow_private,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_file_bytes,
        )
    )
    limits = IngestLimits(max_file_bytes=settings.max_file_bytes, max_pixels=settings.max_pixels)
    vector_url = settings.resolved_vector_url()
    # one pool for every model of the process: during a switch the old and new share it
    pool = InferencePool(settings.inference_slots)
    hooks = SpaceHooks(
        open_index=lambda shadow: open_vectors(vector_url, shadow=shadow, settings=settings),
        promote=lambda: promote_vectors(vector_url, settings),
        load_embedder=lambda spec: pool.bound(
            load_embedder(settings.model_copy(update={"model": spec}))
        ),
    )
    return ImageService(
        metadata,
        blobs,
        vectors,
        pool.bound(embedder if embedder is not None else load_embedder(settings)),
        fetcher,
        limits,
        model_spec=_model_spec(settings.model),
        hooks=hooks,
    )


def _model_spec(model: str) -> str:
    """The model setting in a form that loads again from any directory."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def worker_options(settings: Settings) -> WorkerOptions:
    """The indexing worker's options, from settings."""
    return WorkerOptions(
        batch_size=settings.batch_size,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        retry_delay_s=settings.retry_delay_s,
        poll_interval_s=settings.poll_interval_s,
    )
