"""The blob sweeper: removes image bytes that nothing has needed for a grace period.

Bytes are content-addressed and shared by every image (of any tenant) with the same content,
so "no image refers to these bytes" and "these bytes may go" must be one decision, or a delete
takes the bytes of a concurrent upload of the same picture. Nothing removes bytes inline:

- an upload *holds* the hash (`MetadataStore.hold_blob`) before it stores the bytes, and the
  commit of its image row releases the hold;
- a delete *marks* the hash in the commit that removes the row;
- the sweeper takes hashes held or marked longer than the grace period ago and, for each, in one
  transaction of the metadata store, removes the bytes only if no image refers to them and no
  newer hold or mark exists (`MetadataStore.sweep_blob`).

A hold that outlives the grace period belongs to an upload that died before committing: its
bytes are swept like those of a deleted image. An upload slower than the grace period finds its
hold gone at commit and stores its bytes again (`BlobHoldLost`). Any number of processes may
sweep the same stores at once. Each pass also lets the blob store remove what interrupted
writes left behind (`BlobStore.sweep_partial`), once older than an hour and the grace period.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ViewfinderError
from .ports import BlobStore, MetadataStore

log = logging.getLogger(__name__)

# Leftovers of interrupted writes are removed once at least this old (and past the grace).
PARTIAL_MIN_AGE_S = 3600.0


@dataclass(frozen=True)
class SweepOptions:
    """How long unneeded bytes are kept, and how often to look."""

    grace_s: float = 3600.0
    interval_s: float = 300.0
    batch_size: int = 200


@dataclass(frozen=True)
class SweepReport:
    """What one pass did."""

    removed: int = 0  # objects whose bytes were removed
    kept: int = 0  # candidates still needed, or already swept by another process
    partial: int = 0  # leftovers of interrupted writes removed by the blob store


class BlobSweeper:
    """Removes unneeded image bytes: `sweep_once` is one pass, `start` runs passes on a thread."""

    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        options: SweepOptions,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.options = options
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self, *, now: float | None = None, limit: int | None = None) -> SweepReport:
        """Remove the bytes unneeded since before `now` minus the grace period (at most `limit`
        candidates are looked at); a store failure ends the pass early, losing nothing."""
        now = self._clock() if now is None else now
        cutoff = now - self.options.grace_s
        removed = kept = 0
        seen: set[str] = set()  # a mark may stay (waiting for a newer one): once per pass
        while limit is None or len(seen) < limit:
            want = self.options.batch_size
            if limit is not None:
                want = min(want, limit - len(seen))
            candidates = self.metadata.blob_sweep_candidates(cutoff, want + len(seen))
            fresh = [sha for sha in candidates if sha not in seen][:want]
            if not fresh:
                break
            for sha in fresh:
                seen.add(sha)
                if self.metadata.sweep_blob(sha, cutoff, self.blobs.delete):
                    removed += 1
                else:
                    kept += 1
        # a write in progress is never that old, whatever the grace period
        partial = self.blobs.sweep_partial(min(cutoff, now - PARTIAL_MIN_AGE_S))
        if removed or partial:
            log.info("removed %d unreferenced image files and %d partial writes", removed, partial)
        return SweepReport(removed=removed, kept=kept, partial=partial)

    def start(self) -> None:
        """Sweep every `interval_s` on a daemon thread, beginning now."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vf-blob-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except ViewfinderError as exc:  # a store outage: the marks wait for the next pass
                log.warning("sweeping unreferenced image files failed: %s", exc.message)
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                log.exception("sweeping unreferenced image files failed")
            self._stop.wait(self.options.interval_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after its current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
