"""FetchPool against a slow local server: concurrency per upload and in total, one deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.slow_http import PNG, SlowServer, slow_server
from viewfinder.domain.fetch import Fetched, FetchPolicy, UrlFetcher
from viewfinder.domain.fetch_pool import FetchLimits, FetchPool
from viewfinder.errors import FetchError

PRIVATE = FetchPolicy(allow_private=True, timeout_s=5.0)


@pytest.fixture
def server() -> Iterator[SlowServer]:
    with slow_server() as state:
        yield state


def pool(**limits: float) -> FetchPool:
    return FetchPool(lambda: UrlFetcher(PRIVATE), FetchLimits(**limits))  # type: ignore[arg-type]


def in_background(p: FetchPool, urls: list[str], into: list[list[object]]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(list(p.fetch_all(urls))))
    thread.start()
    return thread


def test_urls_of_one_upload_are_fetched_at_once(server: SlowServer) -> None:
    p = pool(threads=8, per_request=4, deadline_s=10.0)
    urls = [server.url(f"/held?n={n}") for n in range(4)]
    got: list[list[object]] = []
    try:
        upload = in_background(p, urls, got)
        assert server.wait_in_flight(4)  # all four wait on the server at the same time
        server.release.set()
        upload.join()
    finally:
        p.close()
    assert [g.final_url for g in got[0] if isinstance(g, Fetched)] == urls  # in order
    assert [g.data for g in got[0] if isinstance(g, Fetched)] == [PNG] * 4


def test_per_request_bound(server: SlowServer) -> None:
    p = pool(threads=8, per_request=2, deadline_s=10.0)
    got: list[list[object]] = []
    try:
        upload = in_background(p, [server.url("/held")] * 6, got)
        assert server.wait_in_flight(2)
        time.sleep(0.2)
        assert server.in_flight == 2  # and no more, however long the two take
        server.release.set()
        upload.join()
    finally:
        p.close()
    assert all(isinstance(g, Fetched) for g in got[0])
    assert server.peak == 2 and server.served == 6


def test_thread_bound_over_all_uploads(server: SlowServer) -> None:
    p = pool(threads=3, per_request=2, deadline_s=10.0)
    got: list[list[object]] = []
    try:
        uploads = [in_background(p, [server.url("/held")] * 2, got) for _ in range(4)]
        assert server.wait_in_flight(3)
        time.sleep(0.2)
        assert server.in_flight == 3
        server.release.set()
        for upload in uploads:
            upload.join()
    finally:
        p.close()
    assert len(got) == 4 and all(isinstance(g, Fetched) for r in got for g in r)
    assert server.peak == 3


def test_one_deadline_for_all_urls_of_an_upload(server: SlowServer) -> None:
    p = pool(threads=4, per_request=1, deadline_s=0.8)
    try:
        started = time.monotonic()
        got = p.fetch_all(
            [server.url("/img?delay=0.1"), server.url("/held")] + [server.url("/img")] * 2
        )
        took = time.monotonic() - started
    finally:
        p.close()
    assert isinstance(got[0], Fetched)
    assert isinstance(got[1], FetchError) and "timed out after" in got[1].message
    for late in got[2:]:
        assert isinstance(late, FetchError)
        assert "not fetched within the upload's time" in late.message
        assert "VIEWFINDER_FETCH_DEADLINE_S" in late.message
    assert took < 2.0  # the deadline (0.8 s) and a margin for a busy machine


class HoldingFetcher(UrlFetcher):
    """Fetches nothing: `held` URLs wait for `release`, others answer at once; records calls."""

    def __init__(self) -> None:
        super().__init__(PRIVATE)
        self.release = threading.Event()
        self.holding = threading.Event()
        self.calls: list[str] = []

    def fetch(self, url: str, *, deadline: float | None = None) -> Fetched:
        self.calls.append(url)
        if url.endswith("/held"):
            self.holding.set()
            self.release.wait(10.0)
        return Fetched(data=PNG, content_type="image/png", final_url=url)


def test_a_queued_upload_gives_up_at_its_deadline() -> None:
    # One thread, held by another upload: this one never starts, and says so in time.
    fetcher = HoldingFetcher()
    p = FetchPool(lambda: fetcher, FetchLimits(threads=1, per_request=1, deadline_s=0.3))
    try:
        blocker = threading.Thread(target=p.fetch_all, args=(["http://a.example/held"],))
        blocker.start()
        assert fetcher.holding.wait(5.0)
        started = time.monotonic()
        got = p.fetch_all(["http://b.example/img"])
        took = time.monotonic() - started
        fetcher.release.set()
        blocker.join()
    finally:
        p.close()
    assert isinstance(got[0], FetchError) and "not fetched within" in got[0].message
    assert took < 1.5
    time.sleep(0.05)
    assert fetcher.calls == ["http://a.example/held"]  # the queued fetch was dropped, not run late


def test_async_fetch_holds_no_thread_of_the_caller(server: SlowServer) -> None:
    p = pool(threads=4, per_request=4, deadline_s=5.0)

    async def scenario() -> tuple[list[object], float]:
        loop = asyncio.get_running_loop()
        fetching = asyncio.ensure_future(p.fetch_all_async([server.url("/held")] * 4))
        await loop.run_in_executor(None, server.wait_in_flight, 4)
        ticked = time.monotonic()
        await asyncio.sleep(0.01)  # the loop is free while the fetches wait
        lag = time.monotonic() - ticked
        server.release.set()
        return list(await fetching), lag

    try:
        got, lag = asyncio.run(scenario())
    finally:
        p.close()
    assert all(isinstance(g, Fetched) for g in got)
    assert lag < 0.5


def test_a_url_the_fetcher_chokes_on_fails_alone(server: SlowServer) -> None:
    p = pool(threads=2, per_request=2, deadline_s=5.0)
    try:
        got = p.fetch_all(["http://\ud800.example/x.png", server.url("/img")])
    finally:
        p.close()
    assert isinstance(got[0], FetchError)
    assert isinstance(got[1], Fetched)


def test_limits_must_allow_a_fetch() -> None:
    with pytest.raises(ValueError):
        pool(threads=0)


def test_the_fetcher_is_made_on_the_first_url_once() -> None:
    # made lazily: a process that fetches no URL never imports the HTTP stack (fetch_pool.py)
    made: list[HoldingFetcher] = []

    def make() -> HoldingFetcher:
        made.append(HoldingFetcher())
        return made[-1]

    p = FetchPool(make, FetchLimits(threads=2, per_request=2, deadline_s=5.0))
    try:
        assert p.fetch_all([]) == [] and not made  # an upload of files only
        p.fetch_all(["http://a.example/1.png", "http://b.example/2.png"])
        p.fetch_all(["http://c.example/3.png"])
    finally:
        p.close()
    assert len(made) == 1 and sorted(made[0].calls) == [
        "http://a.example/1.png",
        "http://b.example/2.png",
        "http://c.example/3.png",
    ]
