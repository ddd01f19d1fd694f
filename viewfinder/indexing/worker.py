"""Background indexing: claim queued images, decode, embed in batches, commit vectors.

Order of commits makes a crash at any point safe: vectors are upserted (keyed by image id,
so a repeat overwrites) before the image is marked indexed; an image whose job is still
queued after a crash is simply embedded again.

A worker holds two batches at once (`WorkerOptions.in_flight`): while one embeds, the next is
claimed and decodes on a small thread pool, then embeds beside it. So decoding overlaps
inference, and the model's threads never wait at the end of a batch, where its last images,
the blending of its vectors and its commits run on one core: on two cores that idle tail was
a tenth of the time. Model calls wait for a slot of the process's inference pool
(`embedders.pool`). `stop()` lets the batches already embedding finish and gives back the ones
still decoding, unembedded, so that a stopping worker takes at most a batch's time and those
claims are at once free for other workers (not when their lease runs out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from PIL import Image

from ..domain.ingest import decode_for_model
from ..domain.records import IndexingStatus, Job
from ..domain.service import ImageService
from ..embedders.base import min_image_side
from ..embedders.tags import TagLimits, embed_and_tag
from ..errors import ViewfinderError, unwritable_storage
from ..thread_priority import lowered

log = logging.getLogger(__name__)

# After a failed batch (a store down, a full or read-only disk) the worker waits twice as long
# as the time before, from the poll interval up to this, so that a lasting failure costs
# neither a model pass every poll nor a log traceback every half second.
MAX_RETRY_WAIT_S = 30.0


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker batches, leases and retries."""

    batch_size: int = 16
    lease_s: float = 300.0
    max_attempts: int = 3
    retry_delay_s: float = 2.0
    poll_interval_s: float = 0.5
    decode_threads: int = 2
    in_flight: int = 2  # batches held at once: one embedding, the next decoding, then beside it
    nice: int = 10  # how much lower than requests the batch and decode threads run (0: equal)
    tags: TagLimits = TagLimits()  # tags kept per image, when the model can name things

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise ValueError("a worker needs at least one batch in flight")
        if self.nice < 0:
            raise ValueError("indexing threads can't run above the request threads")


@dataclass
class _Batch:
    """Claimed jobs and their images, decoding on the decode threads."""

    jobs: list[Job]
    images: list[Future[Image.Image]]
    lease_until: float  # what the claim set: releasing checks the lease is still ours


BatchObserver = Callable[[int], None]  # told how many images each finished batch indexed


class IndexingWorker:
    """Turns queued images into searchable ones; `run_once` does one batch."""

    def __init__(
        self,
        service: ImageService,
        options: WorkerOptions,
        *,
        clock: Callable[[], float] = time.time,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self.service = service
        self.options = options
        self._clock = clock
        self.batch_observers: list[BatchObserver] = [] if on_batch is None else [on_batch]
        self.last_batch_at: float | None = None  # when a batch was last committed (epoch s)
        self._stop = threading.Event()
        self._not_given_back: deque[_Batch] = deque()  # failed batches still leased to us
        self._decoder = ThreadPoolExecutor(
            max_workers=max(1, options.decode_threads),
            thread_name_prefix="vf-decode",
            initializer=lowered(options.nice),
        )
        self._lanes = ThreadPoolExecutor(
            max_workers=options.in_flight,
            thread_name_prefix="vf-batch",
            initializer=lowered(options.nice),
        )

    def _decode(self, job: Job) -> Image.Image:
        svc = self.service
        return decode_for_model(svc.blobs.get(job.sha256), svc.limits, self._min_side())

    def _min_side(self) -> int | None:
        """What the models that will embed a new image need on its shorter side: during a
        switch whose old model embeds too, the larger need (None: one of them doesn't say)."""
        svc = self.service
        switch = svc.spaces.switch
        models = [svc.embedder]
        if switch is not None and switch.old_embedder is not None:
            models.append(switch.old_embedder)
        sides = [min_image_side(model) for model in models]
        return None if None in sides else max(s for s in sides if s is not None)

    def run_once(self) -> int:
        """Claim and process one batch; return how many jobs were claimed."""
        self._give_back_pending()
        batch = self._claim()
        if batch is None:
            return 0
        self._finish(batch)
        return len(batch.jobs)

    def _pipeline(self) -> int:
        """Process batches until the queue is empty, `in_flight` of them at once.

        Returns how many jobs it took. A batch is claimed (and leased) as soon as fewer than
        `in_flight` are held, so its images decode on the decode threads while the batch
        before it embeds, and then it embeds beside that one. After stop() no batch is
        claimed; the batches held finish or are given back (`_finish`).
        """
        self._give_back_pending()
        taken = 0
        held: deque[Future[None]] = deque()
        try:
            while not self._stop.is_set():
                batch = self._claim()
                if batch is None:
                    break
                taken += len(batch.jobs)
                held.append(self._lanes.submit(self._finish, batch))
                if len(batch.jobs) < self.options.batch_size:
                    break  # the queue had no more
                if len(held) >= self.options.in_flight:
                    held.popleft().result()
        finally:
            wait(held)  # no batch outlives the call, even when one failed
        for future in held:
            future.result()  # a store failure of a batch is the call's failure
        return taken

    def _claim(self) -> _Batch | None:
        """Claim up to a batch of jobs and start decoding them on the decode threads."""
        svc = self.service
        now = self._clock()
        jobs = svc.metadata.claim_jobs(self.options.batch_size, self.options.lease_s, now)
        if not jobs:
            return None
        return _Batch(
            jobs,
            [self._decoder.submit(self._decode, job) for job in jobs],
            now + self.options.lease_s,
        )

    def _release(self, batch: _Batch) -> None:
        """Give back a claimed batch without embedding it (on stop)."""
        for future in batch.images:
            future.cancel()
        released = self.service.metadata.release_jobs(
            [job.image_id for job in batch.jobs], batch.lease_until
        )
        self.service.queue_changed.set()
        log.info("stopping: gave back %d images not embedded yet", released)

    def _give_back(self, batch: _Batch) -> None:
        """Release a batch whose vectors could not be stored. If that fails too (a full disk
        under the database as well), it is tried again before the next claim, and at worst
        the lease runs out."""
        try:
            self.service.metadata.release_jobs(
                [job.image_id for job in batch.jobs], batch.lease_until
            )
        except Exception:  # noqa: BLE001 - the batch's own failure is the one raised
            log.debug("could not give back a failed batch yet", exc_info=True)
            self._not_given_back.append(batch)

    def _give_back_pending(self) -> None:
        """Release the failed batches that could not be released when they failed."""
        for _ in range(len(self._not_given_back)):
            self._give_back(self._not_given_back.popleft())

    def _finish(self, batch: _Batch) -> None:
        """Wait for a batch's images, embed them and commit the vectors, then the statuses.

        A batch that is not embedding yet when the worker stops is given back instead."""
        svc = self.service
        if not self._stop.is_set():
            wait(batch.images)
        if self._stop.is_set():
            self._release(batch)
            return
        decoded: list[tuple[Job, Image.Image]] = []
        for job, future in zip(batch.jobs, batch.images, strict=True):
            try:
                decoded.append((job, future.result()))
            except ViewfinderError as exc:
                self._fail(job, f"could not decode stored image: {exc.message}", final=True)
            except Exception as exc:  # noqa: BLE001 - any decoder failure fails this item only
                self._fail(job, f"could not decode stored image: {exc}", final=False)
        if not decoded:
            return
        images = [img for _, img in decoded]
        switch = svc.spaces.switch
        try:
            # the tags come from the same forward pass as the vectors
            vectors, tags = embed_and_tag(svc.embedder, images, self.options.tags)
            # during a model switch the old model embeds new images too, so searches find them
            old = None
            if switch is not None and switch.old_embedder is not None:
                old = switch.old_embedder.embed_images(images)
        except Exception as exc:  # noqa: BLE001 - a model failure is retried, then reported
            log.exception("embedding a batch of %d images failed", len(decoded))
            for job, _ in decoded:
                self._fail(job, f"embedding failed: {exc}", final=False)
            return
        ids = [job.image_id for job, _ in decoded]
        try:
            svc.spaces.write(ids, [job.tenant for job, _ in decoded], vectors, old, switch)
            done = svc.metadata.complete_jobs(
                ids, None if tags is None else dict(zip(ids, tags, strict=True))
            )
        except Exception:
            # a store failure is no fault of these images: they are claimable again at once
            # (not when the lease runs out), and no attempt is counted against them
            self._give_back(batch)
            raise
        gone = [i for i in ids if i not in done]
        if gone:  # deleted while we embedded them
            with svc.spaces.lock:
                for index in svc.spaces.indexes():
                    index.delete(gone)
        self.last_batch_at = self._clock()
        for observer in self.batch_observers:
            observer(len(done))
        log.debug("indexed %d images", len(done))

    def reembed_once(self) -> int:
        """During a model switch, re-embed one batch of indexed images into the new index.

        Returns how many images it took; promotes the new index when nothing is left.
        """
        svc = self.service
        spaces = svc.spaces
        switch = spaces.switch
        if switch is None:
            return 0

        def indexed() -> set[str]:
            return svc.metadata.image_ids_with_status(IndexingStatus.INDEXED)

        ids = spaces.claim_reembed(self.options.batch_size, indexed, self.options.lease_s)
        if not ids:
            spaces.try_promote(
                indexed, lambda: svc.metadata.count_images(IndexingStatus.QUEUED) == 0
            )
            return 0
        good: list[tuple[str, str, Image.Image]] = []
        skipped: list[str] = []
        pending: list[tuple[Job, Future[Image.Image]]] = []
        for image_id in ids:
            record = svc.metadata.find_image(image_id)
            if record is None or record.sha256 is None:
                skipped.append(image_id)
                continue
            job = Job(image_id, record.tenant, record.sha256, 0)
            pending.append((job, self._decoder.submit(self._decode, job)))
        for job, future in pending:
            try:
                good.append((job.image_id, job.tenant, future.result()))
            except Exception as exc:  # noqa: BLE001 - one bad image must not stall the switch
                log.warning("image %s can't be re-embedded: %s", job.image_id, exc)
                skipped.append(job.image_id)
        try:
            images = [img for _, _, img in good]
            vectors, tags = embed_and_tag(svc.embedder, images, self.options.tags)
        except Exception:
            spaces.release_reembed(switch, [i for i, _, _ in good])
            spaces.finish_reembed(switch, [], [], None, skipped)
            raise
        spaces.finish_reembed(
            switch, [i for i, _, _ in good], [t for _, t, _ in good], vectors, skipped
        )
        if tags is not None:  # the tags of the model the images now answer to
            svc.metadata.set_tags({i: t for (i, _, _), t in zip(good, tags, strict=True)})
        return len(ids)

    def _fail(self, job: Job, reason: str, *, final: bool) -> None:
        attempts = 1 if final else self.options.max_attempts
        failed = self.service.metadata.fail_job(
            job.image_id, reason, attempts, self._clock() + self.options.retry_delay_s
        )
        log.warning("image %s: %s%s", job.image_id, reason, " (gave up)" if failed else "")

    def run_forever(self) -> None:
        """Process batches until `stop()`; sleep while the queue is empty, and longer after
        each failed batch in a row (up to MAX_RETRY_WAIT_S)."""
        retry_wait = self.options.poll_interval_s
        while not self._stop.is_set():
            try:
                claimed = self._pipeline()
                if not claimed and not self._stop.is_set():
                    claimed = self.reembed_once()
                retry_wait = self.options.poll_interval_s
            except Exception as exc:  # noqa: BLE001 - keep the worker alive through store hiccups
                refused = unwritable_storage(exc)
                if refused is not None:
                    log.warning(
                        "storage is %s (%s): indexing waits %.1f s",
                        refused.state,
                        refused.detail,
                        retry_wait,
                    )
                else:
                    log.exception("indexing batch failed; retrying in %.1f s", retry_wait)
                claimed = 0
                self._stop.wait(retry_wait)
                retry_wait = min(2 * retry_wait, max(MAX_RETRY_WAIT_S, retry_wait))
            if claimed == 0:
                self.service.queue_changed.wait(self.options.poll_interval_s)
                self.service.queue_changed.clear()

    def drain(self, timeout_s: float = 60.0) -> None:
        """Process until nothing is ready (for tests and batch tools)."""
        deadline = time.monotonic() + timeout_s
        while self._pipeline() and time.monotonic() < deadline:
            pass

    def stop(self) -> None:
        """Ask `run_forever` to return after its current batch."""
        self._stop.set()
        self.service.queue_changed.set()

    def close(self) -> None:
        """Stop and release the batch and decode threads."""
        self.stop()
        self._lanes.shutdown(wait=True)
        self._decoder.shutdown(wait=True)


class WorkerPool:
    """Runs N indexing workers on daemon threads."""

    def __init__(self, service: ImageService, options: WorkerOptions, count: int) -> None:
        self.workers = [IndexingWorker(service, options) for _ in range(max(0, count))]
        self._threads: list[threading.Thread] = []

    def observe(self, observer: BatchObserver) -> None:
        """Tell `observer` how many images each committed batch indexed."""
        for worker in self.workers:
            worker.batch_observers.append(observer)

    @property
    def last_batch_at(self) -> float | None:
        """When any of the workers last committed a batch (epoch seconds; None: never)."""
        return max((w.last_batch_at for w in self.workers if w.last_batch_at), default=None)

    def alive(self) -> int:
        """How many worker threads are running."""
        return sum(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Start every worker thread."""
        for n, worker in enumerate(self.workers):
            thread = threading.Thread(target=worker.run_forever, name=f"vf-index-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop workers after their current batch."""
        for worker in self.workers:
            worker.stop()
        for thread in self._threads:
            thread.join(timeout_s)
        for worker in self.workers:
            worker.close()
