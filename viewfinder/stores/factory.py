"""The one place that maps store URLs to concrete backends.

Embedded: `sqlite:///PATH`, `file://PATH`, `exact://PATH`. Shared (optional extras, imported
only when named): `postgresql://...` (viewfinder[postgres]), `s3://BUCKET/PREFIX`
(viewfinder[s3]), `milvus://HOST:PORT/NAME` (viewfinder[milvus]) and `milvus-lite:///PATH.db`
(viewfinder[milvus-lite]).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlparse

from ..config import Settings
from ..domain.ports import BlobStore, MetadataStore, VectorIndex
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .milvus_target import MilvusTarget

_POSTGRES = ("postgresql", "postgres")
_MILVUS = ("milvus", "milvus+https", "milvus-lite")


def _path_of(url: str, scheme: str) -> Path:
    # sqlite:///abs/path and sqlite:///rel/path both mean the path after the third slash
    rest = url[len(scheme) + 3 :]
    if not rest:
        raise ConfigurationError(f"store URL {url!r} names no path")
    return Path(rest)


def local_storage(settings: Settings) -> dict[str, Path]:
    """Where the stores that write to this machine's disk keep their files, by store
    ("metadata", "blobs", "vectors"); stores on servers (PostgreSQL, S3, Milvus) are left out.
    Each path is the folder (or file) the store writes, for measuring its file system."""
    urls = {
        "metadata": (settings.resolved_database_url(), "sqlite"),
        "blobs": (settings.resolved_blob_url(), "file"),
        "vectors": (settings.resolved_vector_url(), "exact"),
    }
    paths = {
        store: _path_of(url, scheme)
        for store, (url, scheme) in urls.items()
        if urlparse(url).scheme == scheme
    }
    # "sqlite:////abs" leaves "//abs": the same file, but not the same Path
    return {
        s: Path("/" + p.as_posix().lstrip("/")) if p.is_absolute() else p for s, p in paths.items()
    }


def _missing_extra(extra: str, what: str, exc: ImportError) -> NoReturn:
    raise ConfigurationError(
        f"{what} needs the optional package {exc.name or 'for it'}: "
        f"pip install 'viewfinder[{extra}]'"
    ) from exc


def _settings(settings: Settings | None) -> Settings:
    # Built from defaults only, never from the environment: callers without settings get
    # plain defaults (and boto3's / Milvus's own credential lookup).
    return settings if settings is not None else Settings.model_construct()


def is_shared_metadata(url: str) -> bool:
    """Whether several processes (on several machines) may use this metadata store at once."""
    return urlparse(url).scheme in _POSTGRES


def is_shared_vectors(url: str) -> bool:
    """Whether several processes may use this vector index at once (a Milvus server)."""
    return urlparse(url).scheme in ("milvus", "milvus+https")


def is_multi_process(settings: Settings) -> bool:
    """Whether this deployment may run many API and worker processes on the same stores.

    Then leases are left to expire instead of being released at start, and `viewfinder
    worker` processes may run beside the API processes.
    """
    return is_shared_metadata(settings.resolved_database_url()) and is_shared_vectors(
        settings.resolved_vector_url()
    )


def open_metadata(url: str, settings: Settings | None = None) -> MetadataStore:
    """Build the metadata store a URL names."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from .sqlite_metadata import SqliteMetadataStore

        return SqliteMetadataStore(_path_of(url, scheme))
    if scheme in _POSTGRES:
        try:
            from .postgres_metadata import PostgresMetadataStore, PostgresOptions
        except ImportError as exc:
            _missing_extra("postgres", "a postgresql:// database", exc)
        s = _settings(settings)
        options = PostgresOptions(
            pool_size=s.database_pool_size,
            connect_timeout_s=s.database_connect_timeout_s,
            pool_timeout_s=s.database_pool_timeout_s,
            statement_timeout_s=s.database_statement_timeout_s,
        )
        return PostgresMetadataStore(url, options)
    raise ConfigurationError(
        f"unsupported VIEWFINDER_DATABASE_URL scheme {scheme!r}: use sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )


def open_blobs(url: str, settings: Settings | None = None) -> BlobStore:
    """Build the blob store a URL names."""
    parts = urlparse(url)
    if parts.scheme == "file":
        from .local_blobs import LocalBlobStore

        return LocalBlobStore(_path_of(url, parts.scheme))
    if parts.scheme == "s3":
        try:
            from .s3_blobs import S3BlobStore, S3Options
        except ImportError as exc:
            _missing_extra("s3", "an s3:// blob store", exc)
        if not parts.netloc:
            raise ConfigurationError(f"S3 URL {url!r} names no bucket: s3://BUCKET/PREFIX")
        s = _settings(settings)
        options = S3Options(
            endpoint_url=s.s3_endpoint_url,
            region=s.s3_region,
            access_key_id=s.s3_access_key_id,
            secret_access_key=s.s3_secret_access_key,
            addressing_style=s.s3_addressing_style,
            retry_mode=s.s3_retry_mode,
            max_attempts=s.s3_max_attempts,
        )
        return S3BlobStore(parts.netloc, parts.path, options)
    raise ConfigurationError(
        f"unsupported VIEWFINDER_BLOB_URL scheme {parts.scheme!r}: use file://PATH or "
        "s3://BUCKET/PREFIX"
    )


def _milvus_target(url: str, settings: Settings | None) -> MilvusTarget:
    try:
        from .milvus_target import parse_url
    except ImportError as exc:
        _missing_extra("milvus", "a Milvus vector index", exc)
    s = _settings(settings)
    target = parse_url(url, token=s.milvus_token, index_type=s.milvus_index_type)
    if target.lite:
        try:
            import milvus_lite  # noqa: F401 - pymilvus alone only reaches a server
        except ImportError as exc:
            _missing_extra("milvus-lite", "a Milvus Lite vector index", exc)
        Path(target.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return target


def open_vectors(
    url: str, *, shadow: bool = False, settings: Settings | None = None
) -> VectorIndex:
    """Build the vector index a URL names; `shadow` is where a new model's vectors are built."""
    scheme = urlparse(url).scheme
    if scheme == "exact":
        from .exact_vectors import ExactVectorIndex, shadow_path

        path = _path_of(url, scheme)
        s = _settings(settings)
        return ExactVectorIndex(
            shadow_path(path) if shadow else path,
            ann_threshold=s.vector_ann_threshold,
            ann_ef=s.vector_ann_ef,
        )
    if scheme in _MILVUS:
        target = _milvus_target(url, settings)
        from .milvus_vectors import MilvusVectorIndex

        return MilvusVectorIndex(target, shadow=shadow)
    raise ConfigurationError(
        f"unsupported VIEWFINDER_VECTOR_URL scheme {scheme!r}: use exact://PATH, "
        "milvus://HOST:PORT/NAME or milvus-lite:///PATH.db"
    )


def promote_vectors(url: str, settings: Settings | None = None) -> None:
    """Make the shadow index the active one (both must be closed); atomic per backend."""
    scheme = urlparse(url).scheme
    if scheme == "exact":
        from .exact_vectors import promote

        promote(_path_of(url, scheme))
        return
    if scheme in _MILVUS:
        target = _milvus_target(url, settings)
        from .milvus_target import promote as promote_milvus

        promote_milvus(target)
        return
    raise ConfigurationError(f"unsupported VIEWFINDER_VECTOR_URL scheme {scheme!r}")


def open_stores(settings: Settings) -> tuple[MetadataStore, BlobStore, VectorIndex]:
    """Build all three stores from settings."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metadata = open_metadata(settings.resolved_database_url(), settings)
    try:
        from .in_place_blobs import InPlaceBlobStore

        # images indexed in place are read from the user's files, which only this store finds
        blobs: BlobStore = InPlaceBlobStore(
            open_blobs(settings.resolved_blob_url(), settings), metadata.in_place_files_with_sha
        )
        try:
            return metadata, blobs, open_vectors(settings.resolved_vector_url(), settings=settings)
        except BaseException:
            blobs.close()
            raise
    except BaseException:
        metadata.close()
        raise
