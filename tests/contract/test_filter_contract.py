"""Filters compiled to SQL (SQLite, PostgreSQL) select exactly what the reference evaluator
(`filters.matches`) passes, on random filters over images holding every JSON type."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from viewfinder.domain.filters import matches, parse_filter
from viewfinder.domain.ports import MetadataStore
from viewfinder.domain.records import Exif, ImageRecord, IndexingStatus, Tag
from viewfinder.stores import filter_sql
from viewfinder.stores.filter_sql import compile_filter, compile_sqlite_filter
from viewfinder.stores.image_meta_sql import SQLITE_MIGRATION as IMAGE_META_MIGRATION
from viewfinder.stores.sqlite_metadata import MIGRATIONS, SqliteMetadataStore, _statements

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


def _sqlite_store(tmp_path: Path) -> SqliteMetadataStore:
    store = SqliteMetadataStore(tmp_path / "meta.db")
    store.migrate()
    return store


def test_sqlite_selective_metadata_filters_start_from_the_index(tmp_path: Path) -> None:
    store = _sqlite_store(tmp_path)
    store.insert_images(_records(random.Random(3), 30))
    where = parse_filter({"$and": [{"metadata.bucket": {"$lt": 3}}, {"metadata.x.y": "a"}]})
    compiled = compile_sqlite_filter(where, "t", store._count_rows)
    assert compiled.driven
    sql, params = store._where("t", where)
    plan = " ".join(
        str(tuple(r))
        for r in store._query(f"EXPLAIN QUERY PLAN SELECT image_id FROM images WHERE {sql}", params)
    )
    assert "image_meta_by_num" in plan and "image_meta_by_txt" in plan, plan
    assert "images_by_tenant" not in plan, plan
    store.close()


@pytest.mark.parametrize("selective_rows", [filter_sql.SELECTIVE_ROWS, 0])
def test_sqlite_index_follows_writes_and_survives_malformed_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selective_rows: int
) -> None:
    # with 0, every metadata condition takes the per-image probe (what unselective ones take)
    monkeypatch.setattr(filter_sql, "SELECTIVE_ROWS", selective_rows)
    rng = random.Random(11)
    records = _records(rng, 40)
    store = _sqlite_store(tmp_path)
    store.insert_images(records)
    for r in records[:10]:
        store.delete_image("t", r.image_id)
    kept = records[10:]
    # a row whose metadata is not JSON (written by hand: the API never stores one)
    with store._tx() as conn:
        conn.execute("UPDATE images SET metadata = '{not json' WHERE image_id = ?", ("img-039",))
    broken = next(r for r in kept if r.image_id == "img-039")
    kept = [r for r in kept if r is not broken] + [replace(broken, metadata={})]
    gone = [r.image_id for r in records[:10]]
    assert not store._query(
        f"SELECT 1 FROM image_meta WHERE image_id IN ({','.join('?' * len(gone))})", gone
    )
    for _ in range(150):
        wire = _filter(rng)
        where = parse_filter(wire)
        expected = {r.image_id for r in kept if matches(where, r)}
        assert {r.image_id for r in store.list_images("t", 1000, 0, where)} == expected, wire
        assert set(store.filtered_ids("t", where, 1000)) == expected, wire
    store.close()


def test_sqlite_migration_indexes_the_rows_already_stored(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path / "old.db")
    before = MIGRATIONS.index(IMAGE_META_MIGRATION)
    with store._tx() as conn:  # the schema as it was before image_meta
        for number in range(before):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {before}")
    rng = random.Random(5)
    records = _records(rng, 50)
    store.insert_images(records)
    store.migrate()
    for _ in range(150):
        wire = _filter(rng)
        where = parse_filter(wire)
        expected = {r.image_id for r in records if matches(where, r)}
        assert set(store.filtered_ids("t", where, 1000)) == expected, wire
    store.close()


def test_a_row_with_malformed_metadata_never_fails_a_filter(metadata_store: MetadataStore) -> None:
    rng = random.Random(13)
    records = _records(rng, 30)
    metadata_store.insert_images(records)
    with metadata_store._tx() as conn:  # type: ignore[attr-defined]  # the API never stores one
        conn.execute("UPDATE images SET metadata = '{not json' WHERE image_id = 'img-007'")
    seen = [replace(r, metadata={}) if r.image_id == "img-007" else r for r in records]
    for _ in range(100):
        wire = _filter(rng)
        where = parse_filter(wire)
        expected = {r.image_id for r in seen if matches(where, r)}
        listed = metadata_store.list_images("t", 1000, 0, where)
        assert {r.image_id for r in listed} == expected, wire
        assert set(metadata_store.filtered_ids("t", where, 1000)) == expected, wire


def test_postgres_metadata_equality_reads_the_gin_index(metadata_store: MetadataStore) -> None:
    if isinstance(metadata_store, SqliteMetadataStore):
        pytest.skip("PostgreSQL's index (SQLite's is tested above)")
    metadata_store.insert_images(_records(random.Random(3), 30))
    where = parse_filter({"$or": [{"metadata.k": "a"}, {"metadata.x.y": {"$in": [1, "b"]}}]})
    clause, params = compile_filter(where, "postgres")
    with metadata_store._tx() as cur:  # type: ignore[attr-defined]
        cur.execute("ANALYZE images")
        # a table this small is best read whole: only bitmap scans left, to see which index
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        cur.execute(
            f"EXPLAIN SELECT image_id FROM images WHERE tenant = %s AND {clause}", ["t", *params]
        )
        plan = " ".join(str(r) for r in cur.fetchall())
    assert "images_by_metadata" in plan, plan
