"""The three store protocols the domain is written against, and which the stores implement.

They belong to the domain: concrete backends live in `viewfinder.stores`, and only
`stores.factory` knows them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .filters import Filter
from .records import ApiKey, ImageRecord, IndexingStatus, Job, Tag


@dataclass(frozen=True)
class KeyRow:
    """An API key as stored, hash included: what `viewfinder migrate` copies."""

    key_id: str
    key_hash: str
    tenant: str
    created_at: float
    rate_limits: dict[str, str]


@dataclass(frozen=True)
class JobRow:
    """A queue entry as stored: what `viewfinder migrate` copies."""

    image_id: str
    attempts: int
    available_at: float
    enqueued_at: float
    last_error: str | None = None


@dataclass(frozen=True)
class InPlaceFile:
    """Where the bytes of an image indexed in place live: the user's file, as last seen."""

    image_id: str
    tenant: str
    path: str  # absolute
    sha256: str
    size_bytes: int
    mtime: float


class MetadataStore(Protocol):
    """Images, API keys and the indexing queue, committed transactionally."""

    def migrate(self) -> None:
        """Create or upgrade the schema."""

    def ping(self, timeout_s: float) -> None:
        """Raise `Unavailable` unless the store answers a trivial query within `timeout_s`."""

    def close(self) -> None: ...

    # keys
    def create_key(
        self, key_id: str, key_hash: str, tenant: str, rate_limits: dict[str, str]
    ) -> ApiKey: ...
    def find_key(self, key_hash: str) -> ApiKey | None: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str) -> bool: ...

    # images
    def insert_images(self, records: Sequence[ImageRecord], *, held: bool = False) -> None:
        """Insert records atomically; those with status QUEUED are enqueued in the same commit.

        `held`: every record with bytes was held by its image id (`hold_blob`) before the bytes
        were stored; the holds are released in the same commit. When the sweeper took one of
        them meanwhile, nothing is inserted and `BlobHoldLost` names those records.
        """

    def get_image(self, tenant: str, image_id: str) -> ImageRecord | None: ...
    def find_image(self, image_id: str) -> ImageRecord | None:
        """An image by id, whatever its tenant (for signed URLs only)."""

    def get_images(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]: ...
    def list_images(
        self, tenant: str, limit: int, offset: int, where: Filter | None = None
    ) -> list[ImageRecord]:
        """The tenant's images that pass `where` (all when None), newest first."""

    def filtered_ids(self, tenant: str, where: Filter, limit: int) -> list[str]:
        """Up to `limit` ids of the tenant's indexed images that pass `where` (any order)."""

    def delete_image(
        self, tenant: str, image_id: str, now: float | None = None
    ) -> ImageRecord | None:
        """Delete one image (and its queue entry); return what was deleted.

        Its bytes are never removed here: the same commit marks them for the sweeper as
        possibly unreferenced since `now` (default: the current time).
        """

    def existing_image_ids(self, image_ids: Sequence[str]) -> set[str]:
        """Those of `image_ids` whose image row exists, whatever the tenant, in one read."""

    def sha_in_use(self, sha256: str) -> bool: ...
    def image_with_sha256(self, tenant: str, sha256: str) -> ImageRecord | None:
        """The tenant's oldest image whose bytes hash to `sha256` (exact duplicates)."""

    def count_images(
        self, status: IndexingStatus | None = None, tenant: str | None = None
    ) -> int: ...
    def image_ids_with_status(self, status: IndexingStatus) -> set[str]: ...

    # queue
    def claim_jobs(self, limit: int, lease_s: float, now: float) -> list[Job]:
        """Lease up to `limit` ready jobs, oldest first."""

    def complete_jobs(
        self, image_ids: Sequence[str], tags: Mapping[str, Sequence[Tag]] | None = None
    ) -> set[str]:
        """Mark images indexed and drop their jobs; return the ids that still existed.

        `tags`: the tags the model gave each image (by id), stored in the same commit; the
        tags of images not named there are left as they are.
        """

    def set_tags(self, tags: Mapping[str, Sequence[Tag]]) -> None:
        """Replace the tags of the images named (by id) that exist, whatever their status
        (a model switch re-embeds indexed images: their tags follow the new model)."""

    def fail_job(self, image_id: str, error: str, max_attempts: int, retry_at: float) -> bool:
        """Record a failed attempt; return True when the image is now marked failed for good."""

    def release_leases(self) -> int:
        """Make every leased job claimable again (single-process start-up)."""

    def release_jobs(self, image_ids: Sequence[str], lease_until: float) -> int:
        """Make claimable again the jobs of `image_ids` still leased until exactly
        `lease_until` (those the caller claimed and nobody took over); return how many."""

    def oldest_queued_at(self) -> float | None:
        """When the longest-waiting queued image was queued (None: the queue is empty)."""

    def requeue(self, image_ids: Iterable[str], now: float) -> int:
        """Put images back on the queue (status QUEUED)."""

    # blob references: "bytes are needed" and "bytes may go" decided under one transaction
    def hold_blob(self, image_id: str, sha256: str, now: float) -> None:
        """Record that an upload of `image_id` is about to store bytes `sha256`, before it does.

        The hold protects the bytes from the sweeper until the image row is committed
        (`insert_images(..., held=True)` releases it) or, for an upload that died, until the
        grace period has passed. It also takes back a sweep mark the bytes may carry.
        """

    def blob_sweep_candidates(self, cutoff: float, limit: int) -> list[str]:
        """Hashes marked for sweeping (deleted images) or held (uploads) since before `cutoff`."""

    def sweep_blob(self, sha256: str, cutoff: float, remove: Callable[[str], None]) -> bool:
        """In one transaction: unless an image refers to `sha256` or it was held or marked
        after `cutoff`, call `remove(sha256)` and drop its marks; return whether it was removed.

        Marks from before `cutoff` go either way. A failing `remove` rolls everything back.
        """

    # images indexed in place: the user's files, referred to where they are
    def add_in_place_files(self, files: Sequence[InPlaceFile]) -> None:
        """Record or update (by image id) the files of images indexed in place, and keep
        their images' file names; written before the images, so a row whose image never
        came (or is gone) is ignored by the reads below and dropped by the purge."""

    def in_place_files(self, tenant: str) -> list[InPlaceFile]:
        """The tenant's files indexed in place, of images that exist."""

    def in_place_files_with_sha(self, sha256: str) -> list[InPlaceFile]:
        """Files indexed in place that held bytes `sha256`, of images that exist."""

    def purge_in_place_files(self) -> int:
        """Forget the files of images that no longer exist; return how many."""

    # copying between stores (`viewfinder migrate`)
    def export_keys(self) -> list[KeyRow]: ...
    def iter_images(
        self, batch_size: int = 500
    ) -> Iterator[tuple[list[ImageRecord], list[JobRow]]]:
        """Every image in insertion order, in batches, each with its queue entries."""

    def import_keys(self, keys: Sequence[KeyRow]) -> int:
        """Insert the keys not present yet (by id); return how many were new."""

    def import_images(self, records: Sequence[ImageRecord], jobs: Sequence[JobRow]) -> int:
        """Insert the images not present yet (by id) with their jobs, unleased; return how
        many were new."""


class BlobStore(Protocol):
    """Content-addressed image bytes."""

    def put(self, sha256: str, data: bytes) -> None:
        """Store bytes under their hash; idempotent; never leaves a half-written object."""

    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def sweep_partial(self, before: float) -> int:
        """Remove what interrupted writes begun before `before` (epoch seconds) left behind;
        return how many."""

    def ping(self, timeout_s: float) -> None:
        """Raise `Unavailable` unless the store answers within about `timeout_s`."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredModel:
    """Which model built a vector index: its id, dimension and how to load it again."""

    model_id: str
    dim: int
    spec: str = ""  # the VIEWFINDER_MODEL value that loads it ("" when unknown)


class VectorIndex(Protocol):
    """Unit-length float32 vectors keyed by image id, partitioned by tenant."""

    def stored_model(self) -> StoredModel | None:
        """The model recorded in the index, without loading its vectors (None when new)."""

    def open(self, model_id: str, dim: int, spec: str = "") -> None:
        """Load the index; refuse (ConfigurationError) vectors from another model."""

    @property
    def model_id(self) -> str | None: ...

    @property
    def dim(self) -> int | None: ...

    def upsert(self, ids: Sequence[str], tenants: Sequence[str], vectors: np.ndarray) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def search(self, tenant: str, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Return up to k (id, dot product) pairs of the tenant, best first."""

    def search_subset(
        self, tenant: str, query: np.ndarray, k: int, ids: Sequence[str]
    ) -> list[tuple[str, float]]:
        """The exact top k (id, dot product) pairs among `ids` of the tenant, best first
        (ids the tenant has no vector for are ignored): filtered search's selective path."""

    def vectors_of(self, tenant: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those of `ids` the tenant has in the index."""

    def ids(self) -> set[str]: ...
    def count(self, tenant: str | None = None) -> int:
        """How many vectors (of one tenant, or of all)."""

    def iter_vectors(
        self, batch_size: int = 1000
    ) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        """Every vector, as (ids, tenants, vectors) batches (for `viewfinder migrate`)."""

    def reset(self, model_id: str, dim: int, spec: str = "") -> None:
        """Drop every vector and record a new model."""

    def closed_cleanly(self) -> bool:
        """Whether whoever used this index before `open` closed it, so that no crash can have
        left it out of step with the metadata (False when it can't tell)."""

    def ping(self, timeout_s: float) -> None:
        """Raise `Unavailable` unless the index is open, reachable and loaded for searches."""

    def close(self) -> None: ...
