"""The perceptual hash column of the images table (domain/perceptual_hash.py): a 64-bit dHash
computed at ingest, NULL for images stored before it existed or indexed in place. One migration
per SQL dialect, appended to the MIGRATIONS of sqlite_metadata.py and postgres_metadata.py.
"""

from __future__ import annotations

SQLITE_MIGRATION = "ALTER TABLE images ADD COLUMN phash INTEGER;"
POSTGRES_MIGRATION = "ALTER TABLE images ADD COLUMN phash BIGINT;"
COLUMN = "phash"
