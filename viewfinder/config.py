"""Settings: declared once here (name, default, help), read from `VIEWFINDER_*` variables.

Build one `Settings` at the edge (CLI or test) and pass it down; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a Viewfinder server. Each field's description is its documentation."""

    model_config = SettingsConfigDict(env_prefix="VIEWFINDER_", extra="ignore")

    data_dir: Path = Field(
        Path("viewfinder-data"),
        description="Directory holding the database, image bytes, vectors and pulled models.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where models built once per machine and user are kept, shared by every "
        "data directory (default: the user cache directory, e.g. `~/.cache/viewfinder`; "
        "unwritable: a temporary one).",
    )
    host: str = Field("127.0.0.1", description="Address `viewfinder serve` listens on.")
    port: int = Field(8000, description="Port `viewfinder serve` listens on.")
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the server at, used in `image_url` "
        "(default: taken from each request).",
    )
    model: str = Field(
        "builtin",
        description="Embedding model: `builtin`, a name from `viewfinder models list` (fetched "
        "once with `viewfinder models pull NAME`), a path to a CLIP model directory in the "
        "immich ONNX layout, or `fake` (tests only).",
    )
    database_url: str | None = Field(
        None, description="Metadata store URL (default: `sqlite:///<data_dir>/viewfinder.db`)."
    )
    blob_url: str | None = Field(
        None, description="Image byte store URL (default: `file://<data_dir>/blobs`)."
    )
    vector_url: str | None = Field(
        None, description="Vector index URL (default: `exact://<data_dir>/vectors.db`)."
    )
    database_pool_size: int = Field(
        10, description="Most PostgreSQL connections one process opens (`postgresql://` only)."
    )
    database_connect_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long opening one PostgreSQL connection may take before the database "
        "counts as unreachable (requests then answer 503 at once until it is back).",
    )
    database_pool_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for a free PostgreSQL connection of the pool "
        "before answering 503 (the database is busy, or unreachable).",
    )
    database_statement_timeout_s: float = Field(
        30.0,
        ge=0,
        description="Longest one PostgreSQL statement may run before it is cancelled "
        "(0: no limit).",
    )
    shared_rate_limits: bool = Field(
        True,
        description="With a `postgresql://` metadata store, count rate limits in the database "
        "so that every API process shares one limit per key (off: each process counts alone).",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint for `s3://` blob URLs, e.g. `http://minio:9000` "
        "(default: AWS).",
    )
    s3_region: str | None = Field(
        None, description="S3 region (default: from the AWS configuration or environment)."
    )
    s3_access_key_id: str | None = Field(
        None, description="S3 access key id (default: the AWS credential chain)."
    )
    s3_secret_access_key: str | None = Field(
        None, description="S3 secret access key (default: the AWS credential chain)."
    )
    s3_addressing_style: str = Field(
        "auto",
        description="S3 bucket addressing: `auto`, `path` (most self-hosted S3 servers) or "
        "`virtual`.",
    )
    s3_retry_mode: str = Field(
        "standard",
        description="How S3 requests that fail transiently (throttling, 5xx, dropped "
        "connections) are retried, with backoff: `standard` or `adaptive` (also slows down "
        "when throttled).",
    )
    s3_max_attempts: int = Field(
        5, ge=1, description="Attempts per S3 request, the first one included."
    )
    vector_ann_threshold: int = Field(
        20000,
        ge=0,
        description="Vectors a tenant holds before the embedded index (`exact://`) searches it "
        "through an HNSW graph (built in the background; re-scored exactly) instead of a full "
        "scan (0: always scan).",
    )
    vector_ann_ef: int = Field(
        256,
        ge=1,
        description="Candidates the HNSW graph of the embedded index explores per search: "
        "recall vs. speed.",
    )
    milvus_token: str | None = Field(
        None,
        description="Milvus credentials for `milvus://` URLs: `user:password` or an API key.",
    )
    milvus_index_type: str = Field(
        "HNSW",
        description="Index type of new Milvus collections: `HNSW` (a graph over sealed "
        "segments: fast at millions, recall@10 about 0.98+), `FLAT` (exact, same results as "
        "the embedded index's scans) or `AUTOINDEX`.",
    )
    secret_key: str | None = Field(
        None,
        description="Secret that signs `image_url`s (default: generated once and kept in "
        "`<data_dir>/secret_key`).",
    )
    url_ttl_s: int = Field(3600, description="Lifetime of a signed `image_url`, in seconds.")
    workers: int = Field(1, description="Indexing worker threads in the server process.")
    indexing_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much lower than the threads answering requests the indexing threads "
        "run (a nice increment, Linux; 0: the same), so that searches don't wait for the CPU "
        "behind indexing.",
    )
    in_place: bool = Field(
        False,
        description="`viewfinder index` indexes local folders in place (as `--in-place`): the "
        "index refers to the files where they are instead of copying them into the data "
        "directory, and never writes into their folders.",
    )
    batch_size: int = Field(16, description="Images embedded per batch by a worker.")
    max_attempts: int = Field(
        3, description="Indexing attempts per image before it is marked failed (status 3)."
    )
    retry_delay_s: float = Field(2.0, description="Delay before a failed image is retried.")
    lease_s: float = Field(
        300.0, description="How long a worker holds claimed images before others may take them."
    )
    poll_interval_s: float = Field(0.5, description="How often an idle worker checks the queue.")
    max_tags: int = Field(
        5,
        ge=0,
        description="Tags kept per indexed image: the concepts the model sees, best first "
        "(0: none).",
    )
    min_tag_confidence: float = Field(
        0.05, ge=0.0, le=1.0, description="Least confidence (0-1) of a kept tag."
    )
    duplicate_similarity: float = Field(
        0.85,
        ge=-1.0,
        le=1.0,
        description="Near-duplicates: least cosine between two images' stored vectors when "
        "their perceptual hashes (dHash) also agree within `VIEWFINDER_DUPLICATE_MAX_HAMMING`.",
    )
    duplicate_max_hamming: int = Field(
        14, ge=0, le=64, description="Near-duplicates: most differing bits of the 64-bit dHash."
    )
    duplicate_similarity_without_hash: float = Field(
        0.96,
        ge=-1.0,
        le=1.0,
        description="Near-duplicates: least cosine when an image has no hash (stored by an "
        "older version, or indexed in place).",
    )
    duplicate_neighbours: int = Field(
        10, ge=1, le=200, description="Near-duplicates: nearest neighbours looked at per image."
    )
    duplicate_max_images: int = Field(
        20_000,
        ge=1,
        description="`GET /v1/duplicates` groups the tenant's newest this many indexed images "
        "(with their neighbours among all; a tenant within it is compared by matrix products, "
        "a larger one by a k-NN search per image).",
    )
    blob_grace_s: float = Field(
        3600.0,
        ge=0,
        description="How long image bytes that no image needs any more (all its images deleted, "
        "or stored by an upload that died before committing) are kept before they are removed.",
    )
    blob_sweep_interval_s: float = Field(
        300.0,
        gt=0,
        description="How often `serve` and `worker` processes remove image bytes unneeded for "
        "`VIEWFINDER_BLOB_GRACE_S`.",
    )
    max_request_bytes: int = Field(
        200 * 1024 * 1024, description="Largest accepted request body, in bytes."
    )
    max_file_bytes: int = Field(25 * 1024 * 1024, description="Largest accepted image, in bytes.")
    max_pixels: int = Field(
        50_000_000, description="Largest accepted image area in pixels (decompression bombs)."
    )
    max_images_per_request: int = Field(
        100, description="Most images (files plus URLs) one upload may carry."
    )
    max_metadata_bytes: int = Field(
        64 * 1024, ge=2, description="Largest metadata object of one image, in bytes of JSON."
    )
    max_upload_metadata_bytes: int = Field(
        1_000_000,
        ge=2,
        le=1024 * 1024,
        description="Largest `metadata` form field of one upload (every item's metadata and "
        "URL), in bytes.",
    )
    max_json_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON request body (search), in bytes."
    )
    decode_memory_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory that decoded pixels may take at once across uploads, indexing and "
        "thumbnails; further decodes wait (an image bigger than this decodes alone).",
    )
    upload_memory_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Memory that the file parts of uploads being read may take at once in a "
        "server process (16 MiB an upload at most, so 16 uploads at the default); further "
        "uploads write their parts to disk as they arrive (slower, never refused). 0 sends "
        "every part to disk.",
    )
    upload_reserve_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Uploads are refused (503) while a store on a local disk (SQLite, a blob "
        "folder, the exact vector index) has less than this free, so that deletes and "
        "indexing still have room. 0: no reserve.",
    )
    fetch_timeout_s: float = Field(15.0, description="Time limit for fetching one image URL.")
    fetch_deadline_s: float = Field(
        30.0,
        gt=0,
        description="Time limit for fetching all the `image_urls` of one upload; a URL not "
        "fetched by then fails alone.",
    )
    fetch_per_request: int = Field(
        4, ge=1, description="Most `image_urls` of one upload fetched at once."
    )
    fetch_threads: int = Field(
        16,
        ge=1,
        description="Most image URLs fetched at once by a process, over all uploads (on "
        "threads of their own, so slow URLs never hold up other requests).",
    )
    fetch_allow_private: bool = Field(
        False,
        description="Let `image_urls` reach loopback and private addresses (off: guards "
        "against server-side request forgery). Link-local and cloud metadata addresses are "
        "refused always.",
    )
    rate_limits: dict[str, str] = Field(
        default_factory=dict,
        description='Per-key request limits by endpoint, e.g. `{"search": "60/minute", '
        '"*": "1000/hour"}` (endpoints: upload, search, list, get, delete). Default: none.',
    )
    intra_op_threads: int = Field(
        0,
        description="ONNX Runtime threads per inference. 0: CLIP-family models let ONNX "
        "Runtime decide (one per core); the built-in model runs a batch's runs of 4 images one "
        "thread each, as many at once as there are cores, and a query on one thread (a little "
        "faster on few cores).",
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description="Threads numpy's BLAS may use in a process that runs a model (0: the "
        "library's default, one per core). One: the model already runs on every core, and "
        "idle BLAS threads spin and take CPU from it.",
    )
    inter_op_threads: int = Field(
        0,
        description="ONNX Runtime threads running independent graph nodes at once "
        "(0: let ONNX Runtime decide).",
    )
    inference_slots: int = Field(
        0,
        ge=0,
        description="Most image batches, and apart from them most query embeddings, one "
        "process embeds at once, across all models; the others wait, and a query never waits "
        "behind image batches (0: one per CPU core, at least 2).",
    )
    providers: str | None = Field(
        None,
        description="ONNX Runtime execution providers to try, in order, comma-separated "
        "(`cuda`, `coreml`, `openvino`, `cpu` or full names). Empty: the best available, "
        "CPU last.",
    )
    hf_endpoint: str | None = Field(
        None,
        description="Hugging Face hub (or mirror) URL that `viewfinder models pull` fetches "
        "from (default: `HF_ENDPOINT`, else https://huggingface.co).",
    )
    metrics: bool = Field(
        False,
        description="Serve Prometheus metrics at `/metrics` (requests, latency, queue depth, "
        "indexing throughput, inference time, vector count); off: 404.",
    )
    readiness_timeout_s: float = Field(
        2.0,
        gt=0,
        description="How long `/readyz` waits for each store to answer before it reports the "
        "process not ready (503).",
    )
    log_level: str = Field("info", description="Logging level.")

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _parse_rate_limits(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return {}
        return value

    def resolved_database_url(self) -> str:
        """The metadata store URL, defaulting into the data directory."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'viewfinder.db').resolve()}"

    def resolved_blob_url(self) -> str:
        """The image byte store URL, defaulting into the data directory."""
        return self.blob_url or f"file://{(self.data_dir / 'blobs').resolve()}"

    def resolved_vector_url(self) -> str:
        """The vector index URL, defaulting into the data directory."""
        return self.vector_url or f"exact://{(self.data_dir / 'vectors.db').resolve()}"

    def resolved_cache_dir(self) -> Path:
        """The model cache directory, defaulting to the platform's user cache directory."""
        return (self.cache_dir or user_cache_dir()).expanduser()


def user_cache_dir(app: str = "viewfinder") -> Path:
    """The platform's per-user cache directory for `app` (as the `platformdirs` package has it)."""
    home = Path.home()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / app / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / app
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else home / ".cache") / app
