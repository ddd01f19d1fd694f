"""Filtered search: the exact top k among the images that pass a filter, on any backend.

Two paths, picked by how many images pass (asked of the metadata store, bounded):
- few (at most `scan_limit`): their ids go to the vector index, which scores just those
  exactly (`search_subset`: a scan of their rows, or an id expression pushed down to Milvus);
- many: the index is searched unfiltered for a growing number of candidates, and the first k
  that pass win. So many images pass that few rounds are needed; should the rounds grow past
  a few times `scan_limit` candidates (images that pass lie far from the query) before k
  pass, the passing ids are scored exactly after all.

Both give the same answer as scoring every passing image, which a post-filtered top k does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from .filters import Filter, matches
from .ports import MetadataStore, VectorIndex
from .records import IndexingStatus

DEFAULT_SCAN_LIMIT = 2000  # passing images scored exactly by id, up to this many (bench)
_FIRST_ROUND = 4  # candidates per wanted result in the first unfiltered round
_GROWTH = 4
_MAX_ROUND = 8  # candidates per `scan_limit` after which the passing ids are scored instead


def filtered_top_k(
    metadata: MetadataStore,
    index: VectorIndex,
    tenant: str,
    query: np.ndarray,
    k: int,
    where: Filter,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
) -> list[tuple[str, float]]:
    """The k (id, dot product) pairs of the tenant's passing images nearest `query`."""
    if k <= 0:
        return []
    ids = metadata.filtered_ids(tenant, where, scan_limit + 1)
    if len(ids) <= scan_limit:
        return index.search_subset(tenant, query, k, ids)
    total = index.count(tenant)
    wanted = max(k * _FIRST_ROUND, k + 64)
    while True:
        found = index.search(tenant, query, wanted)
        records = metadata.get_images(tenant, [i for i, _ in found])
        passing = [
            (i, s)
            for i, s in found
            if i in records
            and records[i].status == IndexingStatus.INDEXED
            and matches(where, records[i])
        ]
        if len(passing) >= k:
            return passing[:k]
        if wanted >= total:  # every vector was a candidate (or should have been)
            break
        if wanted >= _MAX_ROUND * max(scan_limit, k):
            break  # the passing images lie far from the query: scoring them all is cheaper
        wanted = min(wanted * _GROWTH, total)
    # Rounds that ran out (or an approximate index that did not hand out every vector): score
    # the passing ids exactly.
    everyone = metadata.filtered_ids(tenant, where, max(total, 1) * 2)
    return index.search_subset(tenant, query, k, everyone)


class FilteredIndex:
    """A vector index seen through a filter: `search` answers `filtered_top_k`; everything
    else is the index's own (so by-example, joined and text search all filter the same way)."""

    def __init__(
        self,
        index: VectorIndex,
        metadata: MetadataStore,
        where: Filter,
        scan_limit: int = DEFAULT_SCAN_LIMIT,
    ) -> None:
        self._index = index
        self._metadata = metadata
        self._where = where
        self._scan_limit = scan_limit

    def search(self, tenant: str, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The exact top k among the tenant's images that pass the filter."""
        return filtered_top_k(
            self._metadata, self._index, tenant, query, k, self._where, self._scan_limit
        )

    def search_subset(
        self, tenant: str, query: np.ndarray, k: int, ids: Sequence[str]
    ) -> list[tuple[str, float]]:
        """`search_subset` of the index, over those of `ids` that pass the filter."""
        records = self._metadata.get_images(tenant, ids)
        passing = [i for i in ids if i in records and matches(self._where, records[i])]
        return self._index.search_subset(tenant, query, k, passing)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def as_index(self) -> VectorIndex:
        """This view, typed as the index it stands for."""
        return cast(VectorIndex, self)
