"""How full the file system under a path is (for the upload reserve and the metrics)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)


class DiskUsage(NamedTuple):
    """Bytes of the file system, and bytes free to this process."""

    total: int
    free: int


def disk_usage(path: Path) -> DiskUsage | None:
    """The usage of the file system that holds `path` (or, before it exists, its nearest
    existing parent); None when it can't be measured (the write itself will tell)."""
    where = next((p for p in (path, *path.parents) if p.exists()), None)
    if where is None:
        return None
    try:
        total, _, free = shutil.disk_usage(where)
    except OSError as exc:
        log.debug("no disk usage for %s: %s", where, exc)
        return None
    return DiskUsage(total=total, free=free)
