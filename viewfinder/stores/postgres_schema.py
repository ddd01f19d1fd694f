"""The PostgreSQL metadata store's schema: one migration per version, applied in order."""

from __future__ import annotations

from . import reembed_leases_sql as reembed_sql
from .image_counts_sql import POSTGRES_MIGRATION as IMAGE_COUNTS_MIGRATION
from .image_meta_sql import POSTGRES_MIGRATION as IMAGE_META_MIGRATION
from .in_place_sql import MIGRATION as IN_PLACE_MIGRATION
from .perceptual_hash_sql import POSTGRES_MIGRATION as PHASH_MIGRATION
from .rate_counters_sql import MIGRATION as RATE_COUNTERS_MIGRATION
from .tags_exif_sql import POSTGRES_MIGRATION as TAGS_EXIF_MIGRATION

# Each entry upgrades the schema by one version; never edit a released one, append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        rate_limits TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE images (
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        image_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        status INTEGER NOT NULL,
        upload_ts DOUBLE PRECISION NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        sha256 TEXT,
        content_type TEXT,
        size_bytes BIGINT NOT NULL DEFAULT 0,
        width INTEGER,
        height INTEGER,
        error TEXT,
        source_url TEXT
    );
    CREATE INDEX images_by_tenant ON images (tenant, upload_ts DESC, seq DESC);
    CREATE INDEX images_by_sha ON images (sha256);
    CREATE INDEX images_by_status ON images (status);
    CREATE TABLE jobs (
        image_id TEXT PRIMARY KEY REFERENCES images (image_id) ON DELETE CASCADE,
        attempts INTEGER NOT NULL DEFAULT 0,
        available_at DOUBLE PRECISION NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        enqueued_at DOUBLE PRECISION NOT NULL,
        last_error TEXT
    );
    CREATE INDEX jobs_ready ON jobs (available_at, enqueued_at);
    """,
    "ALTER TABLE images ADD COLUMN file_name TEXT",
    # Blob references, for the sweeper (domain/blob_sweeper.py): a hold is an upload's claim on
    # bytes it stores before its row exists; an orphan mark says a delete may have left bytes
    # unreferenced. Both carry the time they were written, for the grace period.
    """
    CREATE TABLE blob_holds (
        image_id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX blob_holds_by_sha ON blob_holds (sha256);
    CREATE INDEX blob_holds_by_since ON blob_holds (since);
    CREATE TABLE blob_orphans (
        sha256 TEXT PRIMARY KEY,
        since DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX blob_orphans_by_since ON blob_orphans (since);
    """,
    # Images indexed in place: where their files are (stores/in_place_sql.py).
    IN_PLACE_MIGRATION,
    # Image counts per (tenant, status), kept by triggers (stores/image_counts_sql.py).
    IMAGE_COUNTS_MIGRATION,
    # Tags (set when indexed) and EXIF (at ingest), with the capture time indexed
    # (stores/tags_exif_sql.py).
    TAGS_EXIF_MIGRATION,
    # Rate-limit counters shared by the API processes (stores/rate_counters_sql.py).
    RATE_COUNTERS_MIGRATION,
    # The perceptual hash of each image, for near-duplicates (stores/perceptual_hash_sql.py).
    PHASH_MIGRATION,
    # Re-embedding shared by the workers during a model switch (stores/reembed_leases_sql.py).
    reembed_sql.MIGRATION,
    # A GIN index on the metadata, for fast selective filters (stores/image_meta_sql.py).
    IMAGE_META_MIGRATION,
]
