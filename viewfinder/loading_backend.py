"""`LoadingBackend`: a backend opened on a thread, so a front end can answer before it is ready.

`viewfinder mcp` must answer an MCP host's `initialize` and `list_tools` at once, while
opening a data directory loads the model (and a machine's first start builds it). The backend
opens in the background; a call made meanwhile waits for it, and if it is still loading after
`wait_s` the call fails with `Unavailable` saying so, to be tried again. A backend that failed
to open fails every call with the error it opened with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

from .errors import ConfigurationError, Unavailable, ViewfinderError

log = logging.getLogger(__name__)


class LoadingBackend:
    """Opens `opener()` (a context manager giving a backend) on a thread; calls wait for it.

    Attributes are those of the opened backend (`search`, `upload`...), reached once it is
    open. `close` (or leaving the `with` block) closes it on the thread that opened it.
    """

    def __init__(
        self,
        opener: Callable[[], AbstractContextManager[Any]],
        *,
        wait_s: float = 30.0,
        what: str = "the model",
    ) -> None:
        self._opener = opener
        self.wait_s = wait_s
        self.what = what
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._backend: Any = None
        self._error: ViewfinderError | None = None
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="viewfinder-open", daemon=True)

    def start(self) -> LoadingBackend:
        """Start opening the backend; returns at once."""
        self._started_at = time.monotonic()
        self._thread.start()
        return self

    @property
    def ready(self) -> bool:
        """Whether the backend is open (or failed to open)."""
        return self._ready.is_set()

    def _run(self) -> None:
        with ExitStack() as stack:
            try:
                self._backend = stack.enter_context(self._opener())
            except ViewfinderError as exc:
                self._error = exc
            except Exception as exc:  # reported by every call, not lost on a thread
                self._error = ConfigurationError(f"cannot open the backend: {exc}")
            if self._error is not None:
                log.error("%s", self._error.message)
            else:
                log.info("ready after %.1f s", time.monotonic() - self._started_at)
            self._ready.set()
            self._stop.wait()

    def backend(self, timeout_s: float | None = None) -> Any:
        """The open backend, waiting up to `timeout_s` (default `wait_s`) for it."""
        if not self._ready.wait(self.wait_s if timeout_s is None else timeout_s):
            waited = time.monotonic() - self._started_at
            raise Unavailable(
                f"Viewfinder is still loading {self.what} ({waited:.0f} s so far; the first "
                "start on a machine builds the built-in model once, later starts take a "
                "second or two). Try again in a moment."
            )
        if self._error is not None:
            raise self._error
        return self._backend

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.backend(), name)

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the backend; one still opening is given `timeout_s` to finish first (the
        thread is a daemon: past that, the process may exit under it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> LoadingBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
