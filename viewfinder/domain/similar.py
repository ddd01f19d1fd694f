"""Search by example: an image (stored, or sent with the search) as the query, alone or
with text, as rclip's "text + image" queries.

The query vector of an image is its stored vector (or, for an image not indexed yet and for
an image sent with the search, the model's vector of its bytes, decoded under the same
limits as an upload). Text and image together: the unit vectors are mixed by their weights
and normalised, a shortlist is ranked by that vector, and each hit's score is the weighted
mean of its calibrated text score and its calibrated image score, so a score still reads as
a confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..embedders.base import Embedder, l2_normalize, min_image_side
from ..embedders.image_calibration import calibrate_image
from ..errors import NotFound, ValidationError
from .ingest import IngestLimits, decode_for_model, inspect_image
from .ports import BlobStore, MetadataStore, VectorIndex

SHORTLIST = 100  # text + image: candidates ranked by the mixed vector before rescoring


@dataclass(frozen=True)
class ImageQuery:
    """The image half of a search: its vector, and the stored image it came from (if any)."""

    vector: np.ndarray
    image_id: str | None = None


@dataclass(frozen=True)
class Ranked:
    """Image ids best first, with their calibrated scores."""

    ids: list[str]
    scores: np.ndarray


def stored_image_query(
    metadata: MetadataStore,
    blobs: BlobStore,
    index: VectorIndex,
    embedder: Embedder,
    limits: IngestLimits,
    tenant: str,
    image_id: str,
) -> ImageQuery:
    """The query of one of the tenant's images (NotFound for any other id)."""
    record = metadata.get_image(tenant, image_id)
    if record is None:
        raise NotFound(f"image {image_id} not found", param="image_id")
    vector = index.vectors_of(tenant, [image_id]).get(image_id)
    if vector is None:  # not indexed (yet), or indexed by the model being switched away from
        if record.sha256 is None:
            raise ValidationError(
                f"image {image_id} has no stored bytes to search with ({record.error})",
                param="image_id",
            )
        vector = embed_image_bytes(embedder, blobs.get(record.sha256), limits)
    return ImageQuery(vector=np.asarray(vector, np.float32), image_id=image_id)


def embed_image_bytes(embedder: Embedder, data: bytes, limits: IngestLimits) -> np.ndarray:
    """The model's vector of image bytes, checked and decoded as an upload would be."""
    inspect_image(data, limits)
    # decoded as the indexing worker decodes: the same picture gives the same vector whether
    # it was indexed or sent with a search
    image = decode_for_model(data, limits, min_image_side(embedder))
    return embedder.embed_images([image])[0]


def weights(text_weight: float | None, image_weight: float | None) -> tuple[float, float]:
    """(text, image) weights normalised to sum 1 (default: equal)."""
    t = 1.0 if text_weight is None else float(text_weight)
    i = 1.0 if image_weight is None else float(image_weight)
    if t < 0 or i < 0 or t + i <= 0:
        raise ValidationError(
            "image_weight and text_weight must be >= 0 and not both 0", param="image_weight"
        )
    return t / (t + i), i / (t + i)


def rank_by_image(
    embedder: Embedder,
    index: VectorIndex,
    tenant: str,
    query: ImageQuery,
    k: int,
    *,
    include_self: bool = False,
) -> Ranked:
    """The k images nearest the query image, scored by the image-to-image calibration."""
    skip = query.image_id if not include_self else None
    found = index.search(tenant, query.vector, k + (skip is not None))
    found = [(i, s) for i, s in found if i != skip][:k]
    sims = np.array([s for _, s in found], dtype=np.float32)
    return Ranked([i for i, _ in found], calibrate_image(embedder, sims))


def rank_by_text_and_image(
    embedder: Embedder,
    index: VectorIndex,
    tenant: str,
    text_vector: np.ndarray,
    query: ImageQuery,
    k: int,
    text_weight: float,
    image_weight: float,
    *,
    include_self: bool = False,
) -> Ranked:
    """The k best images for a text and an image together (weights summing to 1)."""
    mixed = l2_normalize(text_weight * text_vector + image_weight * query.vector)
    skip = query.image_id if not include_self else None
    found = index.search(tenant, mixed, max(k * 5, SHORTLIST))
    ids = [i for i, _ in found if i != skip]
    stored = index.vectors_of(tenant, ids)
    ids = [i for i in ids if i in stored]  # deleted since the search
    if not ids:
        return Ranked([], np.zeros(0, np.float32))
    matrix = np.stack([stored[i] for i in ids])
    scores = text_weight * embedder.calibrate(
        matrix @ text_vector, text_vector
    ) + image_weight * calibrate_image(embedder, matrix @ query.vector)
    order = np.argsort(-scores, kind="stable")[:k]
    return Ranked([ids[n] for n in order], scores[order].astype(np.float32))


def check_query_parts(query: str, image_id: str | None, has_image: bool) -> None:
    """A search needs a text, an image, or both; never two images."""
    if image_id is not None and has_image:
        raise ValidationError("send either `image_id` or an image, not both", param="image_id")
    if not query.strip() and image_id is None and not has_image:
        raise ValidationError("query must not be empty (or send `image_id`)", param="query")
