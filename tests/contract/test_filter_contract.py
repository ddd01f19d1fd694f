"""Filters compiled to SQL (SQLite, PostgreSQL) select exactly what the reference evaluator
(`filters.matches`) passes, on random filters over images holding every JSON type."""

from __future__ import annotations

import random
from typing import Any

from viewfinder.domain.filters import matches, parse_filter
from viewfinder.domain.ports import MetadataStore
from viewfinder.domain.records import Exif, ImageRecord, IndexingStatus, Tag

# values of every JSON type, some equal across types (1, 1.0, true, "1"), odd strings included
VALUES: list[Any] = [
    0, 1, 1.0, 2.5, -3, 10**12, True, False, None, "1", "a", "B", "é", "it's", "%s", "a\\b",
    "", [1, "a"], ["b"], [], {"x": 1}, {},
]  # fmt: skip
SCALARS = [v for v in VALUES if isinstance(v, str | int | float) and v is not None]
KEYS = ["k", "n", "it's", "a b", "x.y"]
TAGS = ["red", "blue", "it's"]


def _records(rng: random.Random, n: int) -> list[ImageRecord]:
    records = []
    for i in range(n):
        metadata: dict[str, Any] = {}
        for key in rng.sample(["k", "n", "it's", "a b"], rng.randint(0, 4)):
            metadata[key] = rng.choice(VALUES)
        if rng.random() < 0.5:
            metadata["x"] = {"y": rng.choice(VALUES)}
        records.append(
            ImageRecord(
                image_id=f"img-{i:03d}",
                tenant="t",
                status=IndexingStatus.INDEXED,
                upload_timestamp=float(rng.randint(0, 20)),
                metadata=metadata,
                sha256="0" * 64,
                file_name=rng.choice([None, "a.jpg", "b.png", "é.gif"]),
                tags=[Tag(t, 0.5) for t in rng.sample(TAGS, rng.randint(0, 2))],
                exif=rng.choice([None, Exif(taken_at=float(rng.randint(0, 20)))]),
            )
        )
    return records


def _leaf(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["metadata", "metadata", "metadata", "ts", "taken", "name", "tags"])
    if field == "tags":
        op = rng.choice(["$eq", "$ne", "$in", "$nin", "$exists", "$contains"])
        pool: list[Any] = TAGS + ["green"]
        key = "tags"
    elif field in ("ts", "taken"):
        op = rng.choice(["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"])
        pool = [0, 5, 10.5, 20]
        key = "upload_timestamp" if field == "ts" else "exif.taken_at"
    elif field == "name":
        op = rng.choice(["$eq", "$ne", "$in", "$nin", "$gt", "$lt", "$exists"])
        pool = ["a.jpg", "b", "é.gif", "z"]
        key = "file_name"
    else:
        op = rng.choice(
            ["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$contains"]
        )
        pool = SCALARS
        key = "metadata." + rng.choice(KEYS)
    if op == "$exists":
        return {key: {op: rng.random() < 0.5}}
    if op in ("$in", "$nin"):
        return {key: {op: rng.sample(pool, rng.randint(0, 3))}}
    value = rng.choice(pool)
    if op in ("$gt", "$gte", "$lt", "$lte") and isinstance(value, bool):
        value = 1
    if op == "$eq" and rng.random() < 0.5:
        return {key: value}
    return {key: {op: value}}


def _filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 3 or roll < 0.5:
        return _leaf(rng)
    if roll < 0.65:
        return {"$not": _filter(rng, depth + 1)}
    items = [_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return {rng.choice(["$and", "$or"]): items}


def test_sql_filters_agree_with_the_reference(metadata_store: MetadataStore) -> None:
    rng = random.Random(7)
    records = _records(rng, 60)
    metadata_store.insert_images(records)
    for _ in range(250):
        wire = _filter(rng)
        where = parse_filter(wire)
        expected = {r.image_id for r in records if matches(where, r)}
        listed = metadata_store.list_images("t", 1000, 0, where)
        assert {r.image_id for r in listed} == expected, wire
        assert set(metadata_store.filtered_ids("t", where, 1000)) == expected, wire
        assert metadata_store.list_images("other", 1000, 0, where) == []
