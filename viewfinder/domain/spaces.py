"""Vector spaces: the active index, and the switch to a new model without downtime.

When the configured model differs from the one that built the active index, a *switch*
begins: searches keep using the old model and the old vectors, new uploads are embedded by
both models, and workers re-embed every indexed image from its original bytes into a shadow
index. When the shadow covers every indexed image it is promoted atomically and the old model
is let go. The state is derived from the indexes themselves, so a restart resumes a switch.

When the old model can't be loaded (gone from disk, or an older recipe of the built-in model
that this version no longer builds), searches use the new model over the images it has
re-embedded so far, unless the new model says the old vectors live in its own space
(`shares_space_with`: the built-in model's recipe 5 of recipe 4's vectors). Then its queries
search the old vectors, and new images join them, until the switch completes.

Worker processes on a shared metadata store share the re-embedding: each image is leased by
one process for the new model (`ReembedLeases`) before it is embedded, so each image is
re-embedded once, not once per process; a dead process's leases run out and others take over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..embedders.base import Embedder
from ..errors import ViewfinderError
from .ports import VectorIndex

log = logging.getLogger(__name__)


# A process whose every candidate is leased elsewhere looks for more this often, no sooner.
_REFILL_S = 2.0


@runtime_checkable
class ReembedLeases(Protocol):
    """Leases on images to re-embed, shared by the worker processes (a shared metadata store)."""

    def lease_reembed(
        self, target: str, image_ids: Sequence[str], lease_s: float, now: float
    ) -> list[str]:
        """Of these images, the ones no other process re-embeds for model `target`, leased."""
        ...

    def finish_reembed(self, target: str, image_ids: Sequence[str]) -> None:
        """These images are done, or can't be done: no process takes them again."""
        ...

    def release_reembed(self, target: str, image_ids: Sequence[str]) -> None:
        """Give leased images back."""
        ...

    def clear_reembed(self, target: str) -> None:
        """Forget the leases of a finished switch."""
        ...

    def finished_reembed(self, target: str, image_ids: Sequence[str]) -> set[str]:
        """Those of these images some process finished (or gave up on) for `target`."""
        ...


def shares_space(embedder: Embedder, model_id: str, dim: int) -> bool:
    """Whether `embedder`'s queries may search vectors of `model_id` (and its image vectors
    join them): an optional `shares_space_with(model_id)` of the embedder, same dimension."""
    says = getattr(embedder, "shares_space_with", None)
    return dim == embedder.dim and callable(says) and bool(says(model_id))


@dataclass(frozen=True)
class SpaceHooks:
    """What a switch needs from the outside: opening and promoting indexes, loading models."""

    open_index: Callable[[bool], VectorIndex]  # argument: shadow?
    promote: Callable[[], None]
    load_embedder: Callable[[str], Embedder]


@dataclass
class ModelSwitch:
    """An ongoing move of the vectors to a new model."""

    old_embedder: Embedder | None  # answers queries meanwhile; None if it can't be loaded
    old_model_id: str
    shadow: VectorIndex
    # the old model can't be loaded, but its vectors live in the new model's space: the new
    # model's queries search them, and new images' vectors join them (`shares_space`)
    shared_space: bool = False
    todo: deque[str] = field(default_factory=deque)
    skipped: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)
    refilled_at: float = float("-inf")  # monotonic time `todo` was last filled


@dataclass(frozen=True)
class SwitchProgress:
    """How far a switch has come: `done` of the `total` indexed images are in the new index.

    Searches meanwhile come from `from_model`'s vectors (by the old model, or by the new one
    where they share a space), or from `to_model` over the images it has so far when the old
    model can't be loaded; a status names that one as its `model_id`.
    """

    from_model: str
    to_model: str
    done: int
    total: int


class VectorSpaces:
    """Owns the active index and, during a model switch, the shadow index and the old model."""

    def __init__(
        self,
        active: VectorIndex,
        embedder: Embedder,
        spec: str,
        hooks: SpaceHooks | None,
        leases: ReembedLeases | None = None,
    ) -> None:
        self.active = active
        self.embedder = embedder
        self.spec = spec
        self.hooks = hooks
        self.leases = leases  # None: this process alone re-embeds
        self.switch: ModelSwitch | None = None
        self.lock = threading.RLock()
        self._checked_at = 0.0

    def open(self) -> None:
        """Open the active index; begin (or resume) a switch when the model changed."""
        stored = self.active.stored_model()
        target = (self.embedder.model_id, self.embedder.dim)
        if stored is None or (stored.model_id, stored.dim) == target or self.hooks is None:
            self.active.open(*target, self.spec)  # refuses another model without hooks
            return
        self.active.open(stored.model_id, stored.dim, stored.spec)
        old: Embedder | None = None
        try:
            old = self.hooks.load_embedder(stored.spec) if stored.spec else None
            if old is not None and old.model_id != stored.model_id:
                old = None
        except ViewfinderError as exc:
            log.warning("old model %s can't be loaded (%s)", stored.model_id, exc.message)
        shared = old is None and shares_space(self.embedder, stored.model_id, stored.dim)
        if shared:
            log.info(
                "searches use the %s vectors, queried by %s, until re-embedding completes",
                stored.model_id,
                self.embedder.model_id,
            )
        elif old is None:
            log.warning(
                "searches use the partial %s index until re-embedding completes",
                self.embedder.model_id,
            )
        shadow = self.hooks.open_index(True)
        shadow_model = shadow.stored_model()
        if shadow_model is not None and (shadow_model.model_id, shadow_model.dim) != target:
            shadow.reset(*target, self.spec)  # a switch to yet another model was abandoned
        shadow.open(*target, self.spec)
        self.switch = ModelSwitch(old, stored.model_id, shadow, shared_space=shared)
        log.info("switching vectors from %s to %s", stored.model_id, self.embedder.model_id)

    def indexes(self) -> list[VectorIndex]:
        """Every open index (for deletes and reconciliation)."""
        with self.lock:
            return [self.active] + ([self.switch.shadow] if self.switch else [])

    def query_space(self) -> tuple[Embedder, VectorIndex]:
        """The model and index that answer searches now."""
        self._notice_promotion()
        with self.lock:
            sw = self.switch
            if sw is None:
                return self.embedder, self.active
            if sw.old_embedder is not None:
                return sw.old_embedder, self.active
            if sw.shared_space:
                return self.embedder, self.active
            return self.embedder, sw.shadow

    def write(
        self,
        ids: list[str],
        tenants: list[str],
        vectors: np.ndarray,
        old: np.ndarray | None,
        switch: ModelSwitch | None,
    ) -> None:
        """Store new images' vectors: `vectors` from the configured model, `old` from the
        old model of `switch` (the switch seen when embedding began)."""
        with self.lock:
            if self.switch is None or self.switch is not switch:
                if self.switch is None:
                    self.active.upsert(ids, tenants, vectors)
                    return
                switch = self.switch  # a switch began meanwhile: fall through with no old vectors
                old = None
            assert switch is not None
            switch.shadow.upsert(ids, tenants, vectors)
            if old is not None:
                self.active.upsert(ids, tenants, old)
            elif switch.shared_space:
                self.active.upsert(ids, tenants, vectors)

    # re-embedding
    def claim_reembed(
        self, limit: int, indexed: Callable[[], set[str]], lease_s: float = 300.0
    ) -> list[str]:
        """Ids of indexed images still missing from the shadow index (empty when none), leased
        for `lease_s` seconds when worker processes share the work."""
        with self.lock:
            sw = self.switch
            if sw is None:
                return []
            while True:
                if not sw.todo:
                    if time.monotonic() - sw.refilled_at < _REFILL_S and self.leases is not None:
                        return []  # what is left is leased elsewhere: look again later
                    have = sw.shadow.ids()
                    missing = indexed() - have - sw.skipped - sw.in_flight
                    sw.todo.extend(sorted(missing))
                    sw.refilled_at = time.monotonic()
                batch: list[str] = []
                while sw.todo and len(batch) < limit:
                    image_id = sw.todo.popleft()
                    if image_id not in sw.in_flight:
                        batch.append(image_id)
                if batch and self.leases is not None:
                    # what other processes leased first is theirs: pass over it
                    batch = self.leases.lease_reembed(
                        self.embedder.model_id, batch, lease_s, time.time()
                    )
                if batch or not sw.todo:
                    sw.in_flight.update(batch)
                    return batch

    def finish_reembed(
        self,
        switch: ModelSwitch,
        ids: list[str],
        tenants: list[str],
        vectors: np.ndarray | None,
        skipped: list[str],
    ) -> None:
        """Commit re-embedded vectors into the shadow index of `switch`."""
        with self.lock:
            switch.in_flight.difference_update(ids)
            switch.in_flight.difference_update(skipped)
            switch.skipped.update(skipped)
            if self.switch is switch and ids and vectors is not None:
                switch.shadow.upsert(ids, tenants, vectors)
            if self.leases is not None:
                self.leases.finish_reembed(self.embedder.model_id, [*ids, *skipped])

    def release_reembed(self, switch: ModelSwitch, ids: list[str]) -> None:
        """Give claimed ids back after a failed batch."""
        with self.lock:
            switch.in_flight.difference_update(ids)
            switch.todo.extend(ids)
            if self.leases is not None:
                self.leases.release_reembed(self.embedder.model_id, ids)

    def try_promote(self, indexed: Callable[[], set[str]], queue_empty: Callable[[], bool]) -> bool:
        """Promote the shadow index once it covers every indexed image; True if promoted."""
        with self.lock:
            sw = self.switch
            if sw is None or sw.in_flight or sw.todo or not queue_empty() or self.hooks is None:
                return False
            left = indexed() - sw.shadow.ids() - sw.skipped
            if left and self.leases is not None:  # skipped by other processes
                left -= self.leases.finished_reembed(self.embedder.model_id, sorted(left))
            if left:
                return False
            if self.leases is not None and self._promoted_elsewhere():
                return True
            old_active = self.active
            old_active.close()
            sw.shadow.close()
            try:
                self.hooks.promote()
            except ViewfinderError:
                # another worker process promoted it between our look and our move
                if self.leases is None or not self._target_is_active():
                    raise
            active = self.hooks.open_index(False)
            active.open(self.embedder.model_id, self.embedder.dim, self.spec)
            self.active, self.switch = active, None
            if self.leases is not None:
                self.leases.clear_reembed(self.embedder.model_id)
            log.info("switched vectors from %s to %s", sw.old_model_id, self.embedder.model_id)
            return True

    def _notice_promotion(self) -> None:
        """In an API process, notice that a worker process promoted the shadow index."""
        if self.switch is None or self.hooks is None or time.monotonic() - self._checked_at < 2:
            return
        self._checked_at = time.monotonic()
        self._promoted_elsewhere()

    def _target_is_active(self) -> bool:
        """Whether the active index (as every process sees it) holds the configured model."""
        assert self.hooks is not None
        probe = self.hooks.open_index(False)
        try:
            stored = probe.stored_model()
        finally:
            probe.close()
        return stored is not None and stored.model_id == self.embedder.model_id

    def _promoted_elsewhere(self) -> bool:
        """Whether another process promoted the shadow index; if so, use it from now on."""
        if self.switch is None or self.hooks is None or not self._target_is_active():
            return False
        with self.lock:
            if self.switch is None:
                return True
            active = self.hooks.open_index(False)
            active.open(self.embedder.model_id, self.embedder.dim, self.spec)
            self.active.close()
            self.switch.shadow.close()
            self.active, self.switch = active, None
        return True

    def answering_model(self) -> str:
        """The id of the model whose vectors answer searches now (the old one during a
        switch, unless it could not be loaded and shares no space with the new one)."""
        with self.lock:
            sw = self.switch
            if sw is not None and sw.shared_space:
                return sw.old_model_id
        return self.query_space()[0].model_id

    def progress(self, indexed_count: int, tenant: str | None = None) -> SwitchProgress | None:
        """How far the current switch has come (for one tenant's images, or all), or None.

        `indexed_count` is the number of indexed images of the same scope.
        """
        with self.lock:
            sw = self.switch
            if sw is None:
                return None
            return SwitchProgress(
                from_model=sw.old_model_id,
                to_model=self.embedder.model_id,
                done=min(sw.shadow.count(tenant), indexed_count),
                total=indexed_count,
            )

    def close(self) -> None:
        """Close every index."""
        for index in self.indexes():
            index.close()


def read_switch(
    active: VectorIndex,
    shadow: VectorIndex,
    indexed_count: int,
    loaded_id: Callable[[str], str | None],
    shares: Callable[[str], bool],
) -> tuple[str | None, SwitchProgress | None]:
    """(the model answering searches, the switch in progress) read from the indexes alone, as
    `VectorSpaces` would answer them: for a process that serves nothing (`viewfinder status`).

    `loaded_id(spec)` is the model id that an old model's setting loads here without a
    download (None: it doesn't load); `shares(model_id)` whether the configured model's
    queries search that model's vectors (`shares_space`). The model is None when nothing was
    ever indexed. Opens `shadow` when it holds a switch.
    """
    model, target = active.stored_model(), shadow.stored_model()
    if model is None:
        return None, None
    if target is None or (target.model_id, target.dim) == (model.model_id, model.dim):
        return model.model_id, None
    shadow.open(target.model_id, target.dim, target.spec)
    progress = SwitchProgress(
        from_model=model.model_id,
        to_model=target.model_id,
        done=min(shadow.count(), indexed_count),
        total=indexed_count,
    )
    # as `VectorSpaces.open`: an old setting that now loads another model is a model that
    # can't be loaded (a recipe bump of the built-in model)
    old_loads = bool(model.spec) and loaded_id(model.spec) == model.model_id
    if old_loads or shares(model.model_id):
        return model.model_id, progress
    return target.model_id, progress
