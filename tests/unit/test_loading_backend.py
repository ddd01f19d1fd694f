"""LoadingBackend: opens in the background, calls wait for it, and say so when it takes long."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from viewfinder.errors import ConfigurationError, Unavailable
from viewfinder.loading_backend import LoadingBackend


class Backend:
    def __init__(self) -> None:
        self.closed_on: str | None = None

    def search(self, query: str) -> str:
        return f"found {query}"


class Opener:
    """A backend whose opening blocks until `release` (as a model being built would)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.error = error
        self.backend = Backend()
        self.opened_on: str | None = None

    @contextmanager
    def __call__(self) -> Iterator[Backend]:
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        self.opened_on = threading.current_thread().name
        yield self.backend
        self.backend.closed_on = threading.current_thread().name


def test_calls_wait_for_the_backend_and_say_when_it_is_still_loading() -> None:
    opener = Opener()
    with LoadingBackend(opener, wait_s=0.05, what="the model") as loading:
        assert not loading.ready
        with pytest.raises(Unavailable, match="still loading the model.*Try again"):
            loading.search("cats")
        opener.release.set()
        assert loading.backend(timeout_s=5).search("cats") == "found cats"
        assert loading.search("dogs") == "found dogs" and loading.ready
    # closed on the thread that opened it, when the front end closes
    assert opener.backend.closed_on == opener.opened_on != threading.current_thread().name


def test_a_call_made_while_loading_gets_the_answer_once_ready() -> None:
    opener = Opener()
    with LoadingBackend(opener, wait_s=5) as loading:
        threading.Timer(0.1, opener.release.set).start()
        assert loading.search("cats") == "found cats"  # waited, did not fail


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (ConfigurationError("data directory in use"), ConfigurationError, "in use"),
        (RuntimeError("boom"), ConfigurationError, "cannot open the backend: boom"),
    ],
)
def test_a_backend_that_fails_to_open_fails_every_call(
    error: Exception, kind: type[Exception], message: str
) -> None:
    opener = Opener(error)
    opener.release.set()
    with LoadingBackend(opener, wait_s=5) as loading:
        for _ in range(2):
            with pytest.raises(kind, match=message):
                loading.search("cats")
