"""The file system under a path: how full it is (for the upload reserve and the metrics), and
whether it is a network one (where SQLite is not safe)."""

from __future__ import annotations

import logging
import os
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


# File systems whose locking SQLite can't rely on: a database on one can be corrupted
# (https://www.sqlite.org/howtocorrupt.html, section 2.1).
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "davfs", "fuse.rclone"}
)


def network_filesystem(path: Path, mounts: str | None = None) -> str | None:
    """The type of the network file system that holds `path` (e.g. "nfs4"), or None for a
    local one or where it can't be told. `mounts` is /proc/self/mounts' text (Linux)."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = Path(os.path.abspath(path)).as_posix()
    best, kind = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind if kind in NETWORK_FILESYSTEMS else None
