"""Tags and EXIF in the images table: their columns, and how their JSON is written and read.

`tags` and `exif` are JSON text (the wire form of `Tag` and `Exif`); `taken_at` repeats the
capture time as a number with an index, so that filters by date need no JSON. One migration
per SQL dialect, appended to the MIGRATIONS of sqlite_metadata.py and postgres_metadata.py.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..domain.exif import exif_from_dict
from ..domain.records import Exif, Tag

logger = logging.getLogger(__name__)

SQLITE_MIGRATION = """
ALTER TABLE images ADD COLUMN tags TEXT;
ALTER TABLE images ADD COLUMN exif TEXT;
ALTER TABLE images ADD COLUMN taken_at REAL;
CREATE INDEX images_by_taken_at ON images (tenant, taken_at);
"""

POSTGRES_MIGRATION = """
ALTER TABLE images ADD COLUMN tags TEXT;
ALTER TABLE images ADD COLUMN exif TEXT;
ALTER TABLE images ADD COLUMN taken_at DOUBLE PRECISION;
CREATE INDEX images_by_taken_at ON images (tenant, taken_at);
"""

COLUMNS = "tags, exif, taken_at"


def values(tags: Sequence[Tag], exif: Exif | None) -> tuple[str | None, str | None, float | None]:
    """The three columns' values for an image's tags and EXIF."""
    return (
        dump_tags(tags),
        None if exif is None else json.dumps(exif.to_dict()),
        None if exif is None else exif.taken_at,
    )


def dump_tags(tags: Sequence[Tag]) -> str | None:
    """Tags as stored: a JSON list of `{"name", "confidence"}` (None: no tags)."""
    return json.dumps([t.to_dict() for t in tags]) if tags else None


def load_tags(text: str | None) -> list[Tag]:
    """Stored tags; what does not parse is dropped, so a bad row never fails a read."""
    data = _json(text)
    if not isinstance(data, list):
        return []
    tags = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        name, confidence = item.get("name"), item.get("confidence")
        if (
            isinstance(name, str)
            and isinstance(confidence, int | float)
            and not isinstance(confidence, bool)
            and math.isfinite(confidence)
        ):
            tags.append(Tag(name, float(confidence)))
    return tags


def load_exif(text: str | None) -> Exif | None:
    """Stored EXIF, or None (also for a row that does not parse)."""
    return exif_from_dict(_json(text))


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        logger.warning("ignoring unreadable stored tags or EXIF")
        return None
