"""Room kept free on the local disks of the stores, so that a filling disk stops uploads
before it stops everything else.

When a disk is completely full, SQLite cannot even delete (a delete appends to its write-ahead
log), so a user could not free space through the API, and indexing stalls. Uploads are what
fill a disk, so they are refused (503, "the server's storage is full") while any store on a
local disk (SQLite, a blob folder, the exact vector index) has less than
`VIEWFINDER_UPLOAD_RESERVE_BYTES` free; deletes, indexing, searches and listings go on in the
room kept. Stores on servers (PostgreSQL, S3, Milvus) keep their own limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..disk_usage import disk_usage
from ..errors import StorageFull


def _mib(n: int) -> str:
    mib = n / 2**20
    return f"{mib:.1f} MiB" if mib < 10 else f"{mib:.0f} MiB"


class DiskReserve:
    """`check()` raises StorageFull while a store's disk has less than `reserve_bytes` free."""

    def __init__(self, paths: Mapping[str, Path], reserve_bytes: int) -> None:
        self.paths = dict(paths)
        self.reserve_bytes = reserve_bytes

    def free_bytes(self) -> dict[str, int]:
        """Bytes free to this process on each store's disk (those that can be measured)."""
        usage = {store: disk_usage(path) for store, path in self.paths.items()}
        return {store: u.free for store, u in usage.items() if u is not None}

    def check(self) -> None:
        """Refuse an upload while some store's disk is below the reserve."""
        if self.reserve_bytes <= 0:
            return
        short = {s: f for s, f in self.free_bytes().items() if f < self.reserve_bytes}
        if short:
            store, free = min(short.items(), key=lambda item: item[1])
            raise StorageFull(
                f"only {_mib(free)} free on the disk of the {store} store; uploads wait below "
                f"VIEWFINDER_UPLOAD_RESERVE_BYTES, {_mib(self.reserve_bytes)} kept for deletes "
                "and indexing"
            )
