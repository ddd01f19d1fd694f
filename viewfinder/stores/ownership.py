"""One process at a time on an embedded data directory.

The embedded stores assume a single owner: the exact vector index lives in that process's
memory, and at start the owner releases every lease, taking any claimed work for abandoned.
A second process on the same directory (a `viewfinder index` beside a running `serve`, or two
servers) would make the first miss the second's vectors and re-index what the first is
indexing. So the owner holds an advisory lock on `<data_dir>/viewfinder.lock`; the operating
system drops it when the process ends, however it ends (`kill -9` included), so a crash never
leaves a stale lock behind. Shared stores (PostgreSQL and a Milvus server) take no lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from ..errors import ConfigurationError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; the embedded stores run unguarded
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "viewfinder.lock"


class DataDirLock:
    """An exclusive, non-blocking claim on a data directory, held until `release`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the directory, or raise ConfigurationError naming the process that holds it."""
        if self._file is not None or fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigurationError(
                f"the data directory {self.path.parent.resolve()} is in use by another "
                f"Viewfinder process (pid {holder}), e.g. a running `viewfinder serve`. Send the "
                "command to that server instead (--server http://HOST:PORT --api-key KEY, or "
                "VIEWFINDER_SERVER and VIEWFINDER_API_KEY), or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the directory go (closing the file drops the lock)."""
        if self._file is not None:
            self._file.close()
            self._file = None
