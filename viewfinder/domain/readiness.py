"""Readiness: is this process able to serve? Each part (the stores, the model) is asked in turn.

A check is a function that returns when its part is ready and raises (with a reason) when not.
`Readiness.run` asks every check on a small pool of its own threads and waits at most the
timeout for each answer: a store that hangs makes its check fail in time instead of hanging
the probe, and a check still in flight is waited on again, not started twice, so an
orchestrator probing every second through an outage never piles up threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from ..embedders.base import Embedder
from ..errors import Unavailable, ViewfinderError
from .service import ImageService

Check = Callable[[], None]


@dataclass(frozen=True)
class CheckResult:
    """One part's answer: ready or not, why not, and how long it took to say."""

    name: str
    ok: bool
    ms: float
    error: str | None = None


class Readiness:
    """Runs named checks, each bounded by `timeout_s`, at most one run of each at a time."""

    def __init__(self, checks: Mapping[str, Check], timeout_s: float = 2.0) -> None:
        self.checks = dict(checks)
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.checks)), thread_name_prefix="vf-ready"
        )
        self._lock = threading.Lock()
        self._running: dict[str, Future[None]] = {}

    def _future(self, name: str) -> Future[None]:
        with self._lock:
            future = self._running.get(name)
            if future is None or future.done():
                future = self._pool.submit(self.checks[name])
                self._running[name] = future
            return future

    def run(self) -> list[CheckResult]:
        """Ask every part; blocks at most about `timeout_s` in all (the checks run together)."""
        started = time.monotonic()
        futures = {name: self._future(name) for name in self.checks}
        results = []
        for name, future in futures.items():
            left = max(0.0, self.timeout_s - (time.monotonic() - started))
            error = None
            try:
                future.result(timeout=left)
            except FutureTimeout:
                error = f"no answer within {self.timeout_s:g} s"
            except ViewfinderError as exc:
                error = exc.message
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with why
                error = f"{type(exc).__name__}: {exc}"
            ms = (time.monotonic() - started) * 1000
            results.append(CheckResult(name, error is None, round(ms, 1), error))
        return results

    def close(self) -> None:
        """Let the check threads go (a hung check's thread ends when its call does)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def model_loaded(embedder: Embedder) -> None:
    """Ready when the model's parts are loaded (models that load on first use say whether
    `warm_up` has run; others load when they are made)."""
    if not getattr(embedder, "warmed_up", True):
        raise Unavailable(f"the model {embedder.model_id} is not loaded yet")


def service_checks(service: ImageService, timeout_s: float) -> dict[str, Check]:
    """The checks of a process serving `service`: its three stores and its model."""
    return {
        "metadata": lambda: service.metadata.ping(timeout_s),
        "blobs": lambda: service.blobs.ping(timeout_s),
        "vectors": lambda: service.vectors.ping(timeout_s),
        "model": lambda: model_loaded(service.embedder),
    }
