"""Background threads yield the CPU to requests: the threads that index images run at a lower
scheduling priority (a higher nice value) than the threads that answer requests.

Indexing is throughput work: it keeps every core busy for as long as the queue lasts, and a
search that arrives meanwhile used to wait its turn for the CPU behind it. With the indexing
threads (the worker's batch and decode threads, the built-in model's image runs) at nice +10,
the kernel runs a request's thread first and indexing takes whatever CPU is left, so it
finishes as fast as before when nothing else runs. On two cores, while 480 photos were
indexing (interleaved runs), searches answered in 11.8 to 14.8 ms (p50; 33 to 48 ms p95)
against 25.5 to 30.6 (59 to 86) with every thread equal, and indexing kept its rate within the
machine's noise.

Linux sets a nice value per thread; elsewhere this is a no-op. ONNX Runtime's own pool threads
(a CLIP model's intra-op threads) keep the process's priority: only the thread that calls the
model is lowered there.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

MAX_NICE = 19


def lower_this_thread(increment: int) -> bool:
    """Raise the calling thread's nice value by `increment` (at most to 19); returns whether
    it did. Raising it needs no privilege; it cannot be lowered back."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, current + increment))
    except OSError:
        return False
    return True


def lowered(increment: int) -> Callable[[], None]:
    """A thread pool initializer: each of the pool's threads runs `increment` nicer."""

    def initializer() -> None:
        lower_this_thread(increment)

    return initializer
