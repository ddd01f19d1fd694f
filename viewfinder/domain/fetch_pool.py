"""Fetch the image URLs of uploads concurrently, on threads of their own.

A slow URL must never hold a thread that answers other requests. The fetches of every upload
run on one bounded pool of dedicated threads; an HTTP upload awaits them without holding a
thread at all (`fetch_all_async`), other callers block (`fetch_all`). Within one upload at
most `per_request` URLs are in flight, and all of them share one deadline: what is not
fetched by then fails alone, and the upload answers.

The fetcher (fetch.py, and with it httpx and httpcore) is made on the first fetch, so a process
that never fetches a URL, such as a local `viewfinder search`, never imports the HTTP stack.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from ..errors import FetchError

if TYPE_CHECKING:
    from .fetch import Fetched, UrlFetcher

logger = logging.getLogger(__name__)

FetchOutcome = Union["Fetched", FetchError]  # noqa: UP007  (a name imported for typing only)
"""What became of one URL: its body, or why there is none."""


@dataclass(frozen=True)
class FetchLimits:
    """How many URL fetches run at once, and for how long one upload waits for them."""

    threads: int = 16  # over all uploads of the process
    per_request: int = 4  # URLs of one upload in flight at once
    deadline_s: float = 30.0  # for all the URLs of one upload, queueing included


class FetchPool:
    """Runs URL fetches for many uploads at once under `FetchLimits`; thread-safe."""

    def __init__(self, make_fetcher: Callable[[], UrlFetcher], limits: FetchLimits) -> None:
        """`make_fetcher` gives the fetcher applying the per-URL guards and time limit, called
        on the first fetch; the pool owns and closes that fetcher."""
        if limits.threads < 1 or limits.per_request < 1:
            raise ValueError("fetch threads and per-request fetches must be at least 1")
        self._make_fetcher = make_fetcher
        self._fetcher: UrlFetcher | None = None
        self._fetcher_lock = threading.Lock()
        self.limits = limits
        self._executor = ThreadPoolExecutor(
            max_workers=limits.threads, thread_name_prefix="viewfinder-fetch"
        )

    def fetch_all(self, urls: Sequence[str]) -> list[FetchOutcome]:
        """Fetch every URL (blocking), in the order given; never raises FetchError."""
        batch = self._start(urls)
        wait_futures(batch.runners, timeout=batch.time_left())
        return batch.finish()

    async def fetch_all_async(self, urls: Sequence[str]) -> list[FetchOutcome]:
        """`fetch_all` for the event loop: awaits the fetch threads without holding one."""
        batch = self._start(urls)
        if batch.runners:
            waiting = [asyncio.wrap_future(f) for f in batch.runners]
            try:
                await asyncio.wait(waiting, timeout=batch.time_left())
            except BaseException:  # cancelled (the client went away): take no more URLs
                batch.finish()
                raise
            for w in waiting:
                if not w.done():
                    w.cancel()  # cancels nothing running: the batch is told to stop below
        return batch.finish()

    def close(self) -> None:
        """Stop taking fetches and release the threads and the fetcher."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._fetcher_lock:
            if self._fetcher is not None:
                self._fetcher.close()

    def _start(self, urls: Sequence[str]) -> _Batch:
        # a time.monotonic() instant, as UrlFetcher.fetch takes its deadline
        batch = _Batch(list(urls), time.monotonic() + self.limits.deadline_s)
        if batch.urls:
            fetcher = self._fetcher_made()
            for _ in range(min(self.limits.per_request, len(batch.urls))):
                batch.runners.append(self._executor.submit(batch.run, fetcher))
        return batch

    def _fetcher_made(self) -> UrlFetcher:
        with self._fetcher_lock:
            if self._fetcher is None:
                self._fetcher = self._make_fetcher()
            return self._fetcher


class _Batch:
    """The URLs of one upload: runners take the next URL until none is left or time is up."""

    def __init__(self, urls: list[str], deadline: float) -> None:
        self.urls = urls
        self.deadline = deadline
        self.runners: list[Future[None]] = []
        self._outcomes: list[FetchOutcome | None] = [None] * len(urls)
        self._next = 0
        self._finished = False
        self._lock = threading.Lock()

    def time_left(self) -> float:
        # a moment past the deadline: a fetch that hits it reports its own timeout first
        return max(0.0, self.deadline - time.monotonic()) + 0.05

    def run(self, fetcher: UrlFetcher) -> None:
        """One runner: fetch URLs of this batch one after another."""
        while True:
            with self._lock:
                if self._finished or self._next >= len(self.urls):
                    return
                n = self._next
                self._next += 1
            if time.monotonic() >= self.deadline:
                return  # `finish` reports it and every URL not taken
            try:
                outcome: FetchOutcome = fetcher.fetch(self.urls[n], deadline=self.deadline)
            except FetchError as exc:
                outcome = exc
            except Exception:  # a URL the fetcher chokes on fails alone, not the upload
                logger.exception("fetching %s failed unexpectedly", _shown(self.urls[n]))
                outcome = FetchError(f"could not fetch {_shown(self.urls[n])}")
            with self._lock:
                if not self._finished:
                    self._outcomes[n] = outcome

    def finish(self) -> list[FetchOutcome]:
        """The outcomes; every URL without one by now failed for want of time."""
        with self._lock:
            self._finished = True
            outcomes = list(self._outcomes)
        for runner in self.runners:
            runner.cancel()  # a runner still queued behind other uploads never starts
        return [
            outcome
            if outcome is not None
            else FetchError(
                f"could not fetch {_shown(url)}: not fetched within the upload's time for "
                "its URLs (VIEWFINDER_FETCH_DEADLINE_S)"
            )
            for url, outcome in zip(self.urls, outcomes, strict=True)
        ]


def _shown(url: str) -> str:
    """`fetch.shown_url`; only called once a fetcher exists, so fetch.py is loaded already."""
    from .fetch import shown_url

    return shown_url(url)
