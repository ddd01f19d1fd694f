"""Assemble a running service from settings: the stores, the embedder, the worker options."""

from __future__ import annotations

from .config import Settings
from .domain.fetch import FetchPolicy, UrlFetcher
from .domain.ingest import IngestLimits
from .domain.service import ImageService
from .embedders.base import Embedder
from .embedders.factory import load_embedder
from .indexing.worker import WorkerOptions
from .stores.factory import open_stores


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
    return ImageService(
        metadata,
        blobs,
        vectors,
        embedder if embedder is not None else load_embedder(settings),
        fetcher,
        limits,
    )


def worker_options(settings: Settings) -> WorkerOptions:
    """The indexing worker's options, from settings."""
    return WorkerOptions(
        batch_size=settings.batch_size,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        retry_delay_s=settings.retry_delay_s,
        poll_interval_s=settings.poll_interval_s,
    )
