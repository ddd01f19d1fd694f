"""Assemble a running service from settings: the stores, the embedder, the worker options."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .disk_usage import network_filesystem
from .domain.blob_sweeper import BlobSweeper, SweepOptions
from .domain.duplicates import DuplicateLimits
from .domain.fetch_pool import FetchLimits, FetchPool
from .domain.ingest import DecodeBudget, IngestLimits, return_freed_pixels_to_the_os
from .domain.metadata_rules import MetadataLimits
from .domain.service import ImageService
from .domain.spaces import SpaceHooks
from .embedders.base import Embedder
from .embedders.factory import load_embedder
from .embedders.pool import InferencePool
from .embedders.tags import TagLimits
from .indexing.worker import WorkerOptions
from .stores.disk_reserve import DiskReserve
from .stores.factory import (
    is_multi_process,
    local_storage,
    open_stores,
    open_vectors,
    promote_vectors,
)
from .stores.ownership import DataDirLock

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .domain.fetch import UrlFetcher


def build_service(settings: Settings, embedder: Embedder | None = None) -> ImageService:
    """Open the stores and the model named by settings (not yet started).

    On embedded stores the service owns the data directory until it is closed: a second
    process asking for it gets a ConfigurationError that names the fix.
    """
    owner = None if is_multi_process(settings) else DataDirLock(settings.data_dir)
    if owner is not None:
        owner.acquire()
    try:
        return _assemble(settings, embedder, owner)
    except BaseException:
        if owner is not None:
            owner.release()
        raise


def _assemble(
    settings: Settings, embedder: Embedder | None, owner: DataDirLock | None
) -> ImageService:
    metadata, blobs, vectors = open_stores(settings)
    _warn_of_network_filesystems(settings)
    fetches = FetchPool(
        lambda: _url_fetcher(settings),
        FetchLimits(
            threads=settings.fetch_threads,
            per_request=settings.fetch_per_request,
            deadline_s=settings.fetch_deadline_s,
        ),
    )
    limits = IngestLimits(
        max_file_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        budget=DecodeBudget(settings.decode_memory_bytes),
        metadata=MetadataLimits(max_bytes=settings.max_metadata_bytes),
    )
    return_freed_pixels_to_the_os()  # else each decoding thread keeps its last image's memory
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
        fetches,
        limits,
        model_spec=_model_spec(settings.model),
        hooks=hooks,
        on_close=owner.release if owner is not None else None,
        duplicates=DuplicateLimits(
            similarity=settings.duplicate_similarity,
            max_hamming=settings.duplicate_max_hamming,
            similarity_without_hash=settings.duplicate_similarity_without_hash,
            neighbours=settings.duplicate_neighbours,
            max_images=settings.duplicate_max_images,
        ),
        room_for_uploads=DiskReserve(local_storage(settings), settings.upload_reserve_bytes).check,
    )


def _warn_of_network_filesystems(settings: Settings) -> None:
    """Say so when an SQLite database (the metadata, the exact vector index) lies on a
    network file system, where its locking is unreliable and it can be corrupted."""
    local = local_storage(settings)
    for store in ("metadata", "vectors"):
        kind = network_filesystem(local[store]) if store in local else None
        if kind is not None:
            log.warning(
                "the %s store (%s) is on a network file system (%s), where SQLite's locking "
                "is unreliable and a database can be corrupted: keep the data directory on a "
                "local disk, or use PostgreSQL and Milvus (docs/deployment.md)",
                store,
                local[store],
                kind,
            )


def _url_fetcher(settings: Settings) -> UrlFetcher:
    """The fetcher of image URLs, made on the first URL upload: it imports httpx and httpcore,
    a tenth of a second that most commands (a local search) never need."""
    from .domain.fetch import FetchPolicy, UrlFetcher

    return UrlFetcher(
        FetchPolicy(
            allow_private=settings.fetch_allow_private,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_file_bytes,
        )
    )


def _model_spec(model: str) -> str:
    """The model setting in a form that loads again from any directory."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def blob_sweeper(settings: Settings, service: ImageService) -> BlobSweeper:
    """The sweeper of unneeded image bytes over the service's stores, from settings."""
    return BlobSweeper(
        service.metadata,
        service.blobs,
        SweepOptions(grace_s=settings.blob_grace_s, interval_s=settings.blob_sweep_interval_s),
    )


def worker_options(settings: Settings) -> WorkerOptions:
    """The indexing worker's options, from settings."""
    return WorkerOptions(
        batch_size=settings.batch_size,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        retry_delay_s=settings.retry_delay_s,
        poll_interval_s=settings.poll_interval_s,
        nice=settings.indexing_nice,
        tags=TagLimits(settings.max_tags, settings.min_tag_confidence),
    )


def warm_up(embedder: Embedder) -> float:
    """Load every part of a model that loads on first use (the built-in model's towers, built
    once into the model cache if needed); returns the seconds it took."""
    started = time.perf_counter()
    load = getattr(embedder, "warm_up", None)  # reached through the pool's BoundedEmbedder
    if callable(load):
        load()
    return time.perf_counter() - started
