"""Fuzz every operation of the app's own OpenAPI document with schemathesis, with a valid key.

Each generated request must get no 5xx, a status the document lists for the operation, a
documented media type and a body that matches the documented schema. The upload's `metadata`
field is a JSON-encoded string (`contentSchema` in the document, which schemathesis does not
read); a strategy built after that schema fills it, so generated uploads reach the upload
logic instead of stopping at "not valid JSON".

Bounded for CI (derandomised, a fixed number of examples per operation, roughly a minute in
all); VIEWFINDER_FUZZ_EXAMPLES=500 VIEWFINDER_FUZZ_RANDOM=1 explores further.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import png_bytes
from viewfinder.api.app import create_app
from viewfinder.api.openapi import OPERATIONS
from viewfinder.config import Settings
from viewfinder.domain.fetch import FetchPolicy, UrlFetcher
from viewfinder.domain.fetch_pool import FetchLimits, FetchPool
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService

pytestmark = pytest.mark.embedded_only  # the document is the same on every store

EXAMPLES = int(os.environ.get("VIEWFINDER_FUZZ_EXAMPLES", "100"))
RANDOM = os.environ.get("VIEWFINDER_FUZZ_RANDOM") == "1"  # new inputs each run, not CI's
METADATA_FORMAT = "viewfinder-upload-metadata"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    allow_header_conformance,
]


def no_dns(host: str, port: int) -> Sequence[str]:
    """Generated URLs never leave the machine: every name fails to resolve."""
    raise OSError(f"{host}: no DNS in this test")


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_request_item = st.fixed_dictionaries(
    {},
    optional={
        "indexing_config": st.fixed_dictionaries({}, optional={"index": st.booleans()}),
        "metadata": st.dictionaries(st.text(max_size=12), _json, max_size=4),
    },
)
_urls = st.sampled_from(
    ["http://images.example/a.png", "http://127.0.0.1/x.jpg", "ftp://example.com/a.png"]
) | st.text(max_size=30)
UPLOAD_METADATA: st.SearchStrategy[str] = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "requests": st.lists(_request_item, max_size=3),
            "image_urls": st.lists(_urls, max_size=2),
        },
    ).map(json.dumps),
    st.text(max_size=40),  # and now and then something that is not JSON at all
)
schemathesis.openapi.format(METADATA_FORMAT, UPLOAD_METADATA)


def with_metadata_format(document: dict[str, Any]) -> dict[str, Any]:
    """The document, its upload `metadata` string marked with the strategy's format."""
    for model in document["components"]["schemas"].values():
        field = model.get("properties", {}).get("metadata", {})
        if field.get("contentSchema") == {"$ref": "#/components/schemas/UploadMetadata"}:
            field["format"] = METADATA_FORMAT
            return document
    raise AssertionError("no upload metadata field with a contentSchema in the document")


@pytest.fixture
def fuzz_key(service: ImageService) -> str:
    """A valid key of the fuzzed tenant."""
    return KeyRing(service.metadata).create("fuzz").secret


@dataclass
class Fuzzed:
    schema: Any  # schemathesis' view of the served document, bound to the app
    image_id: str  # an image of the tenant, and its URL's signature
    signed: dict[str, str]


@pytest.fixture
def fuzzed(settings: Settings, service: ImageService, fuzz_key: str) -> Iterator[Fuzzed]:
    """The app's served schema and one real image of the tenant, so that the image and byte
    routes answer 200 with real bodies too, not only 4xx for generated ids."""
    service.fetches.close()  # generated URLs are refused without any DNS lookup
    service.fetches = FetchPool(
        lambda: UrlFetcher(FetchPolicy(timeout_s=1.0), resolver=no_dns), FetchLimits(deadline_s=2.0)
    )
    app = create_app(settings, service)
    with TestClient(app) as client:
        uploaded = client.post(
            "/v1/images/upload",
            headers={"X-Api-Key": fuzz_key},
            files=[("images", ("red.png", png_bytes((200, 0, 0)), "image/png"))],
        )
        assert uploaded.status_code == 200
        image = uploaded.json()["results"][0]
        document = client.get("/openapi.json").json()
        loaded = schemathesis.openapi.from_dict(with_metadata_format(document))
        loaded.app = app
        signed = dict(parse_qsl(urlsplit(image["image_url"]).query))
        yield Fuzzed(loaded, image["image_id"], signed)


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_every_operation(fuzzed: Fuzzed, fuzz_key: str, method: str, path: str) -> None:
    operation = fuzzed.schema[path][method.upper()]
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if "{image_id}" in path:  # and the real image, signed where the route wants a signature
        real = {"image_id": fuzzed.image_id}
        query = fuzzed.signed if path.startswith("/files/") else None
        strategies.append(operation.as_strategy(path_parameters=real, query=query))

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-Api-Key": fuzz_key}, checks=CHECKS)

    call()
