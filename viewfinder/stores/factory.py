"""The one place that maps store URLs to concrete backends."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from ..config import Settings
from ..errors import ConfigurationError
from .base import BlobStore, MetadataStore, VectorIndex


def _path_of(url: str, scheme: str) -> Path:
    # sqlite:///abs/path and sqlite:///rel/path both mean the path after the third slash
    rest = url[len(scheme) + 3 :]
    if not rest:
        raise ConfigurationError(f"store URL {url!r} names no path")
    return Path(rest)


def open_metadata(url: str) -> MetadataStore:
    """Build the metadata store a URL names."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from .sqlite_metadata import SqliteMetadataStore

        return SqliteMetadataStore(_path_of(url, scheme))
    raise ConfigurationError(
        f"unsupported VIEWFINDER_DATABASE_URL scheme {scheme!r}: use sqlite:///PATH"
    )


def open_blobs(url: str) -> BlobStore:
    """Build the blob store a URL names."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        from .local_blobs import LocalBlobStore

        return LocalBlobStore(_path_of(url, scheme))
    raise ConfigurationError(f"unsupported VIEWFINDER_BLOB_URL scheme {scheme!r}: use file://PATH")


def open_vectors(url: str, *, shadow: bool = False) -> VectorIndex:
    """Build the vector index a URL names; `shadow` is where a new model's vectors are built."""
    scheme = urlparse(url).scheme
    if scheme == "exact":
        from .exact_vectors import ExactVectorIndex, shadow_path

        path = _path_of(url, scheme)
        return ExactVectorIndex(shadow_path(path) if shadow else path)
    raise ConfigurationError(
        f"unsupported VIEWFINDER_VECTOR_URL scheme {scheme!r}: use exact://PATH"
    )


def promote_vectors(url: str) -> None:
    """Make the shadow index the active one (both must be closed); atomic per backend."""
    scheme = urlparse(url).scheme
    if scheme == "exact":
        from .exact_vectors import promote

        promote(_path_of(url, scheme))
        return
    raise ConfigurationError(f"unsupported VIEWFINDER_VECTOR_URL scheme {scheme!r}")


def open_stores(settings: Settings) -> tuple[MetadataStore, BlobStore, VectorIndex]:
    """Build all three stores from settings."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return (
        open_metadata(settings.resolved_database_url()),
        open_blobs(settings.resolved_blob_url()),
        open_vectors(settings.resolved_vector_url()),
    )
