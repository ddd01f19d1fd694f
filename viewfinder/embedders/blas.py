"""How many threads numpy's BLAS (OpenBLAS) may use in this process.

numpy's matrix products run on OpenBLAS, which starts a thread per core and, after each
product it splits across them, keeps those threads spinning for a while in case another one
follows. Next to a model that already runs on every core (ONNX Runtime), that spinning only
takes CPU from it: with two BLAS threads the built-in model's decode-and-embed loop spent 23
to 24 ms of CPU an image against 19 to 21 ms with one, and ran 2 to 17% slower (interleaved
runs on 2 cores). The products a model's own code does (a projection, a blend, colour
look-ups) are small, so one thread is enough for them. Whoever loads a model sets it once for
the process.
"""

from __future__ import annotations

import logging

from threadpoolctl import threadpool_info, threadpool_limits

log = logging.getLogger(__name__)


def limit_blas_threads(threads: int) -> None:
    """Let the process's BLAS libraries use at most `threads` threads (0: leave them be)."""
    if threads < 0:
        raise ValueError("BLAS threads must be 0 (the library's default) or more")
    if threads == 0:
        return
    threadpool_limits(limits=threads, user_api="blas")
    log.debug("BLAS threads: %s", [i["num_threads"] for i in blas_pools()])


def blas_pools() -> list[dict[str, object]]:
    """What threadpoolctl knows of the BLAS libraries loaded in this process."""
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
