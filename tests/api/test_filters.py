"""Extension `filter` on search and list: every operator and combinator, exact filtered top k."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import png_bytes
from viewfinder.domain.filters import matches, parse_filter
from viewfinder.domain.records import Exif, ImageRecord, IndexingStatus, Tag
from viewfinder.domain.service import ImageService

TENANT = "acme"  # the `auth` fixture's tenant


def _seed(service: ImageService, records: list[ImageRecord], vectors: np.ndarray) -> None:
    """Indexed images with the given vectors, written through the stores (fast)."""
    service.metadata.insert_images(records)
    service.vectors.upsert([r.image_id for r in records], [TENANT] * len(records), vectors)


def _record(image_id: str, ts: float, **fields: Any) -> ImageRecord:
    return ImageRecord(
        image_id=image_id, tenant=TENANT, status=IndexingStatus.INDEXED, upload_timestamp=ts,
        sha256="0" * 64, content_type="image/png", size_bytes=1, width=1, height=1, **fields,
    )  # fmt: skip


RECORDS = [
    _record(
        "a",
        1000.0,
        metadata={
            "album": "trip",
            "year": 2023,
            "rating": 4.5,
            "flag": True,
            "labels": ["x", "y"],
            "place": {"city": "Paris"},
        },
        exif=Exif(taken_at=500.0),
        file_name="a.jpg",
        tags=[Tag("red", 0.9), Tag("blue", 0.2)],
    ),
    _record(
        "b",
        2000.0,
        metadata={"album": "home", "year": 2024, "flag": False, "labels": ["y"]},
        file_name="b.png",
        tags=[Tag("green", 0.8)],
    ),
    _record(
        "c",
        3000.0,
        metadata={"album": "trip", "year": "2024", "place": {"city": "Rome"}},
        exif=Exif(taken_at=1500.0, make="Canon"),
    ),
    _record("d", 4000.0, metadata={"year": 1, "flag": 1}, file_name="d.jpg", tags=[Tag("red", 1)]),
]

CASES: list[tuple[dict[str, Any], str]] = [
    ({"metadata.album": "trip"}, "ac"),
    ({"metadata.album": {"$eq": "trip"}}, "ac"),
    ({"metadata.album": {"$ne": "trip"}}, "bd"),
    ({"metadata.album": {"$gt": "home"}}, "ac"),
    ({"metadata.year": {"$gte": 2024}}, "b"),  # c's year is a string
    ({"metadata.year": {"$lt": 2024}}, "ad"),
    ({"metadata.year": {"$lte": 2023.0}}, "ad"),
    ({"metadata.year": "2024"}, "c"),
    ({"metadata.year": {"$in": [2023, "2024"]}}, "ac"),
    ({"metadata.year": {"$nin": [2023, "2024"]}}, "bd"),
    ({"metadata.flag": True}, "a"),  # d's 1 is not true
    ({"metadata.flag": 1}, "d"),
    ({"metadata.rating": {"$gt": 4}}, "a"),
    ({"metadata.rating": 4.5}, "a"),
    ({"metadata.labels": {"$contains": "y"}}, "ab"),
    ({"metadata.place.city": "Rome"}, "c"),
    ({"metadata.place.city": {"$exists": True}}, "ac"),
    ({"metadata.place": {"$exists": False}}, "bd"),
    ({"upload_timestamp": {"$gte": 2000, "$lt": 4000}}, "bc"),
    ({"exif.taken_at": {"$lte": 1000}}, "a"),
    ({"exif.taken_at": {"$exists": False}}, "bd"),
    ({"file_name": "b.png"}, "b"),
    ({"file_name": {"$exists": False}}, "c"),
    ({"file_name": {"$in": ["a.jpg", "d.jpg"]}}, "ad"),
    ({"file_name": {"$gt": "b"}}, "bd"),
    ({"tags": {"$contains": "red"}}, "ad"),
    ({"tags": "green"}, "b"),
    ({"tags": {"$ne": "red"}}, "bc"),
    ({"tags": {"$in": ["blue", "green"]}}, "ab"),
    ({"tags": {"$nin": ["red", "green"]}}, "c"),
    ({"tags": {"$exists": False}}, "c"),
    ({"$or": [{"metadata.album": "home"}, {"tags": "blue"}]}, "ab"),
    ({"$and": [{"metadata.album": "trip"}, {"upload_timestamp": {"$gte": 2000}}]}, "c"),
    ({"$not": {"metadata.album": "trip"}}, "bd"),
    ({"$not": {"$or": [{"tags": "red"}, {"file_name": {"$exists": False}}]}}, "b"),
    ({"metadata.album": "trip", "tags": "red"}, "a"),
    ({"metadata.missing": {"$in": []}}, ""),
    ({}, "abcd"),  # no condition: every image (the fuzz found `{}` compiled to broken SQL)
    ({"$not": {}}, ""),
    ({"metadata.album": "trip", "$or": [{}, {"tags": "red"}]}, "ac"),
]


def test_every_operator_filters_list_and_search_alike(
    client: TestClient, auth: dict[str, str], service: ImageService
) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(RECORDS), service.embedder.dim)).astype(np.float32)
    _seed(service, RECORDS, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    for wire, expected in CASES:
        where = parse_filter(wire)  # the reference evaluator agrees with the table...
        assert "".join(r.image_id for r in RECORDS if matches(where, r)) == expected, wire
        listed = client.get("/v1/images", headers=auth, params={"filter": json.dumps(wire)})
        assert listed.status_code == 200, (wire, listed.text)
        # ...and so do the SQL backends; list stays newest first
        assert [i["image_id"] for i in listed.json()["results"]] == sorted(expected)[::-1], wire
        found = client.post(
            "/v1/images/search",
            headers=auth,
            json={"query": "red", "max_results": 200, "filter": wire},
        )
        assert found.status_code == 200, (wire, found.text)
        assert sorted(h["image_id"] for h in found.json()["results"]) == sorted(expected), wire


@pytest.mark.parametrize("scan_limit", [20000, 0, 5])
def test_filtered_search_is_the_exact_top_k_among_what_passes(
    client: TestClient, auth: dict[str, str], service: ImageService, scan_limit: int
) -> None:
    # 300 images: the 2 that pass rank last, so a post-filtered top 10 would be empty.
    # scan_limit picks the path: ids scored by subset (20000), unfiltered rounds that run out
    # (0), unfiltered rounds that find enough (5, with the broad filter below).
    service.filter_scan_limit = scan_limit
    query = service.embedder.embed_texts(["red"])[0]
    rng = np.random.default_rng(1)
    n = 300
    noise = rng.normal(scale=0.05, size=(n, len(query))).astype(np.float32)
    vectors = np.where(np.arange(n)[:, None] < 2, -query, query) + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [
        _record(f"img-{i:03d}", 1000.0 + i, metadata={"keep": i < 2, "half": i % 2})
        for i in range(n)
    ]
    _seed(service, records, vectors)
    body = {"query": "red", "max_results": 10, "filter": {"metadata.keep": True}}
    hits = client.post("/v1/images/search", headers=auth, json=body).json()["results"]
    scores = vectors[:2] @ query
    assert [h["image_id"] for h in hits] == [f"img-{i:03d}" for i in np.argsort(-scores)]

    joined = {**body, "search_mode": "joined"}  # its wide shortlist is filtered too
    hits = client.post("/v1/images/search", headers=auth, json=joined).json()["results"]
    assert {h["image_id"] for h in hits} == {"img-000", "img-001"}
    # by example too: one of the images, or an image sent along (the form's JSON field)
    like = {"image_id": "img-299", "filter": {"metadata.keep": True}}
    hits = client.post("/v1/images/search", headers=auth, json=like).json()["results"]
    order = np.argsort(-(vectors[:2] @ vectors[299]))
    assert [h["image_id"] for h in hits] == [f"img-{i:03d}" for i in order]
    sent = client.post(
        "/v1/images/search/image",
        headers=auth,
        files={"image": ("red.png", png_bytes((255, 0, 0)), "image/png")},
        data={"filter": json.dumps({"metadata.keep": True})},
    )
    assert sent.status_code == 200, sent.text
    assert {h["image_id"] for h in sent.json()["results"]} == {"img-000", "img-001"}

    body["filter"] = {"metadata.half": 1}  # half of them pass: the exact top 10 of those
    hits = client.post("/v1/images/search", headers=auth, json=body).json()["results"]
    odd = np.arange(1, n, 2)
    best = odd[np.argsort(-(vectors[odd] @ query), kind="stable")[:10]]
    assert [h["image_id"] for h in hits] == [f"img-{i:03d}" for i in best]
    unfiltered = client.post("/v1/images/search", headers=auth, json={"query": "red"})
    assert {h["image_id"] for h in unfiltered.json()["results"]} != {h["image_id"] for h in hits}


@pytest.mark.embedded_only  # checked before any store is asked
@pytest.mark.parametrize(
    ("wire", "param"),
    [
        ([1], "filter"),
        ({"$and": [{"metadata.a": 1}, {"upload_timestamp": "yesterday"}]}, "filter.$and.1.upload_timestamp"),  # noqa: E501
        ({"$and": []}, "filter.$and"),
        ({"$nor": []}, "filter.$nor"),
        ({"colour": "red"}, "filter.colour"),
        ({"metadata.": 1}, "filter.metadata."),
        ({"metadata.a": {"$regex": "x"}}, "filter.metadata.a.$regex"),
        ({"metadata.a": {"$in": "x"}}, "filter.metadata.a.$in"),
        ({"metadata.a": {"$in": [1, [2]]}}, "filter.metadata.a.$in.1"),
        ({"metadata.a": {"$in": list(range(300))}}, "filter.metadata.a.$in"),
        ({"metadata.a": {"$exists": 1}}, "filter.metadata.a.$exists"),
        ({"metadata.a": {"$gt": True}}, "filter.metadata.a.$gt"),
        ({"metadata.a": None}, "filter.metadata.a"),
        ({"metadata.a": 1e300}, "filter.metadata.a"),
        ({"file_name": 3}, "filter.file_name"),
        ({"file_name": {"$contains": "a"}}, "filter.file_name.$contains"),
        ({"tags": {"$gt": "a"}}, "filter.tags.$gt"),
        ({"$or": [{"metadata.a": i} for i in range(70)]}, "filter.$or.64.metadata.a"),
        ({"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {}}}}}}}}},
         "filter.$not.$not.$not.$not.$not.$not.$not.$not"),
    ],
)  # fmt: skip
def test_bad_filters_name_the_bad_part(
    client: TestClient, auth: dict[str, str], wire: Any, param: str
) -> None:
    body = {"query": "red", "filter": wire}
    r = client.post("/v1/images/search", headers=auth, json=body)
    if not isinstance(wire, dict):  # not an object: the body's own validation says so
        assert r.status_code in (400, 422) and r.json()["error"]["param"].startswith("filter")
    else:
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "validation_error"
        assert r.json()["error"]["param"] == param
    listed = client.get("/v1/images", headers=auth, params={"filter": json.dumps(wire)})
    assert listed.status_code == 400, listed.text
    assert listed.json()["error"]["param"] == param


@pytest.mark.embedded_only
def test_list_filter_must_be_json(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/images", headers=auth, params={"filter": "{album: trip"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "validation_error",
        "message": 'filter must be a JSON object, e.g. {"metadata.album": "trip"}',
        "param": "filter",
    }
