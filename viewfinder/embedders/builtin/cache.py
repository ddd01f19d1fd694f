"""Files the built-in model derives once and keeps in its cache directory.

Writes are atomic (a temporary file in the same directory, then `os.replace`), so a crash or a
second process building at the same time never leaves a half-written file under the final name.
A file that fails to load is treated as absent and rebuilt.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...errors import ConfigurationError

logger = logging.getLogger(__name__)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the model cache in {path.parent}: {exc}; make the data directory "
            "writable or point VIEWFINDER_DATA_DIR elsewhere"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_bytes(
    path: Path, build: Callable[[], bytes], validate: Callable[[bytes], bool]
) -> bytes:
    """Return the cached file's bytes if `validate` accepts them, else build, store and return."""
    if path.is_file():
        try:
            data = path.read_bytes()
            if validate(data):
                return data
            logger.warning("cached %s is invalid; rebuilding it", path)
        except OSError as exc:
            logger.warning("cannot read cached %s (%s); rebuilding it", path, exc)
    data = build()
    atomic_write(path, data)
    logger.info("wrote %s (%d bytes)", path, len(data))
    return data


def cached_arrays(
    path: Path,
    build: Callable[[], dict[str, np.ndarray]],
    validate: Callable[[dict[str, np.ndarray]], bool],
) -> dict[str, np.ndarray]:
    """Like `cached_bytes` for a dict of arrays stored as an uncompressed ``.npz``."""

    def load(data: bytes) -> dict[str, np.ndarray] | None:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            logger.warning("cannot parse cached %s (%s)", path, exc)
            return None
        return arrays if validate(arrays) else None

    loaded: dict[str, np.ndarray] | None = None

    def check(data: bytes) -> bool:
        nonlocal loaded
        loaded = load(data)
        return loaded is not None

    def make() -> bytes:
        nonlocal loaded
        loaded = build()
        buf = io.BytesIO()
        np.savez(buf, **loaded)  # type: ignore[arg-type]
        return buf.getvalue()

    cached_bytes(path, make, check)
    assert loaded is not None
    return loaded
