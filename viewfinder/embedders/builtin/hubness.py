"""Hubness correction: a photo that is close to every query is pushed down a little.

In a cross-modal space some image vectors sit near many queries (a "hub": a busy street
scene, a generic indoor photo) and take the first place for queries written for other
photos. CSLS (Lample et al., 2018, "Word translation without parallel data") scores a pair
by its cosine minus how close each side is to its own nearest neighbours on the other side.
The query's part is the same for every photo of a search, so only the image's part matters:
`offset` = the mean cosine of the image to its `k` nearest captions of a fixed bank of
reference queries shipped with the model (the training photos' captions). The embedder
subtracts `weight * (offset - mean offset)` from every cosine through one extra dimension,
so each image stays one unit vector that any vector backend can search:

    image: [sqrt(1 - e^2) * v, e],  e = -weight * (offset - centre) / gain
    query: normalise([q, gain])

and their dot product is (up to the query's uniform norm) sqrt(1 - e^2) q.v - weight *
(offset - centre), with e small (|e| < 0.2 on the shipped bank) so the first factor stays ~1.
"""

from __future__ import annotations

import numpy as np

from ..base import l2_normalize


def hub_offsets(vectors: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """(n,) mean cosine of each image vector to its `k` nearest reference queries."""
    # einsum, not BLAS: a few rows do not pay for BLAS's threads (see projection.py)
    sims = np.einsum("ij,kj->ik", np.asarray(vectors, np.float32), bank)
    k = min(k, sims.shape[1])
    top = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k :]
    return top.mean(axis=1)


def with_hub_dimension(
    vectors: np.ndarray, offsets: np.ndarray, centre: float, weight: float, gain: float
) -> np.ndarray:
    """Unit image vectors with the extra dimension that subtracts their hub offset."""
    e = np.clip(-weight * (np.asarray(offsets, np.float64) - centre) / gain, -0.9, 0.9)
    scaled = np.sqrt(1.0 - e * e)[:, None] * vectors
    return np.concatenate([scaled, e[:, None]], axis=1).astype(np.float32)


def query_hub_dimension(queries: np.ndarray, gain: float) -> np.ndarray:
    """Unit query vectors with the constant extra dimension `gain` (before normalising)."""
    column = np.full((len(queries), 1), gain, dtype=np.float32)
    return l2_normalize(np.concatenate([queries, column], axis=1)).astype(np.float32)
