"""The three store protocols the domain is written against, and which the stores implement.

They belong to the domain: concrete backends live in `viewfinder.stores`, and only
`stores.factory` knows them by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .records import ApiKey, ImageRecord, IndexingStatus, Job


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


class MetadataStore(Protocol):
    """Images, API keys and the indexing queue, committed transactionally."""

    def migrate(self) -> None:
        """Create or upgrade the schema."""

    def close(self) -> None: ...

    # keys
    def create_key(
        self, key_id: str, key_hash: str, tenant: str, rate_limits: dict[str, str]
    ) -> ApiKey: ...
    def find_key(self, key_hash: str) -> ApiKey | None: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str) -> bool: ...

    # images
    def insert_images(self, records: Sequence[ImageRecord]) -> None:
        """Insert records atomically; those with status QUEUED are enqueued in the same commit."""

    def get_image(self, tenant: str, image_id: str) -> ImageRecord | None: ...
    def find_image(self, image_id: str) -> ImageRecord | None:
        """An image by id, whatever its tenant (for signed URLs only)."""

    def get_images(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]: ...
    def list_images(self, tenant: str, limit: int, offset: int) -> list[ImageRecord]: ...
    def delete_image(self, tenant: str, image_id: str) -> ImageRecord | None:
        """Delete one image (and its queue entry); return what was deleted."""

    def sha_in_use(self, sha256: str) -> bool: ...
    def count_images(
        self, status: IndexingStatus | None = None, tenant: str | None = None
    ) -> int: ...
    def image_ids_with_status(self, status: IndexingStatus) -> set[str]: ...

    # queue
    def claim_jobs(self, limit: int, lease_s: float, now: float) -> list[Job]:
        """Lease up to `limit` ready jobs, oldest first."""

    def complete_jobs(self, image_ids: Sequence[str]) -> set[str]:
        """Mark images indexed and drop their jobs; return the ids that still existed."""

    def fail_job(self, image_id: str, error: str, max_attempts: int, retry_at: float) -> bool:
        """Record a failed attempt; return True when the image is now marked failed for good."""

    def release_leases(self) -> int:
        """Make every leased job claimable again (single-process start-up)."""

    def requeue(self, image_ids: Iterable[str], now: float) -> int:
        """Put images back on the queue (status QUEUED)."""

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

    def ids(self) -> set[str]: ...
    def count(self, tenant: str | None = None) -> int:
        """How many vectors (of one tenant, or of all)."""

    def iter_vectors(
        self, batch_size: int = 1000
    ) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        """Every vector, as (ids, tenants, vectors) batches (for `viewfinder migrate`)."""

    def reset(self, model_id: str, dim: int, spec: str = "") -> None:
        """Drop every vector and record a new model."""

    def close(self) -> None: ...
