"""Indexing threads run nicer than request threads (Linux sets nice per thread)."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from viewfinder.thread_priority import MAX_NICE, lower_this_thread, lowered

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux
def test_a_lowered_pool_runs_nicer_and_the_caller_does_not() -> None:
    before = _nice()
    with ThreadPoolExecutor(2, initializer=lowered(3)) as pool:
        seen = set(pool.map(lambda _: _nice(), range(8)))
    assert seen == {min(MAX_NICE, before + 3)}
    assert _nice() == before  # the calling thread keeps its priority


@linux
def test_nice_stops_at_19_and_zero_changes_nothing() -> None:
    result: dict[str, object] = {}

    def work() -> None:
        start = _nice()
        result["zero"] = (lower_this_thread(0), _nice() == start)
        lower_this_thread(40)
        result["top"] = _nice()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert result == {"zero": (False, True), "top": MAX_NICE}
