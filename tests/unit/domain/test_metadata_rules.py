from __future__ import annotations

import json
import math

import pytest

from tests.conftest import png_bytes
from viewfinder.domain.metadata_rules import (
    MAX_DEPTH,
    MetadataLimits,
    check_metadata,
    load_stored_metadata,
    parse_json,
    servable_metadata,
    servable_text,
)
from viewfinder.domain.records import UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.errors import ValidationError

LIMITS = MetadataLimits()


def nested(levels: int) -> dict[str, object]:
    """A metadata object `levels` deep, itself included."""
    node: object = 1
    for _ in range(levels - 1):
        node = [node]
    return {"k": node} if levels > 1 else {}


def test_depth_limit_is_exact() -> None:
    assert check_metadata(nested(MAX_DEPTH), "m", LIMITS)
    with pytest.raises(ValidationError, match="nest at most"):
        check_metadata(nested(MAX_DEPTH + 1), "m", LIMITS)


def test_parse_json_refuses_what_would_exhaust_the_parser() -> None:
    with pytest.raises(ValidationError, match="nested too deeply") as err:
        parse_json("[" * 100_000 + "]" * 100_000, "metadata")
    assert err.value.param == "metadata"
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_json("{", "metadata")
    big = parse_json('{"a": ' + "1" * 5000 + "}", "metadata")  # no int built: reported later
    with pytest.raises(ValidationError, match="2\\*\\*53-1") as err:
        check_metadata(big, "metadata", LIMITS)
    assert err.value.param == "metadata.a"


def test_size_limit_counts_utf8_bytes() -> None:
    limits = MetadataLimits(max_bytes=20)
    assert check_metadata({"a": "é" * 6}, "m", limits)  # {"a":"éééééé"} = 20 bytes
    with pytest.raises(ValidationError, match="21 bytes"):
        check_metadata({"a": "é" * 6 + "x"}, "m", limits)


def test_non_json_values_from_python_callers_are_refused() -> None:
    with pytest.raises(ValidationError, match="keys must be text"):
        check_metadata({1: "a"}, "m", LIMITS)
    with pytest.raises(ValidationError, match="values must be"):
        check_metadata({"a": object()}, "m", LIMITS)


def test_good_metadata_is_served_as_the_same_object() -> None:
    metadata = {"a": ["x", 1, 2.5, None, True, {"b": "ü"}]}
    assert servable_metadata(metadata) is metadata


def test_servable_metadata_degrades_each_bad_value_alone() -> None:
    served = servable_metadata(
        {"s": "\ud83c\udf0d and \udc00", "f": [math.inf, 1.0], "d": nested(MAX_DEPTH + 5)["k"]}
    )
    assert served["s"] == "🌍 and \ufffd"
    assert served["f"] == [None, 1.0]
    json.dumps(served, allow_nan=False).encode()  # now always encodable
    assert servable_metadata(["not", "an", "object"]) == {}
    assert servable_text("ok") == "ok"


def test_a_stored_row_always_loads() -> None:
    assert load_stored_metadata('{"a": "\\ud800", "n": NaN}') == {"a": "\ufffd", "n": None}
    assert load_stored_metadata("[" * 100_000 + "]" * 100_000) == {}
    assert load_stored_metadata("{not json") == {}
    assert load_stored_metadata('{"a": ' + "1" * 5000 + "}") == {}  # past Python's int limit
    assert load_stored_metadata('{"ok": [1, "x"]}') == {"ok": [1, "x"]}


def test_the_service_applies_the_rules_to_every_caller(service: ImageService) -> None:
    # the local client, MCP and CLI call the service directly, not through HTTP
    good = UploadItem(data=png_bytes((1, 2, 3)), metadata={"ok": 1})
    bad = UploadItem(data=png_bytes((4, 5, 6)), metadata={"c": "\ud800"})
    with pytest.raises(ValidationError) as err:
        service.upload("acme", [good, bad])
    assert err.value.param == "metadata.requests.1.metadata.c"
    assert service.list_images("acme") == []  # nothing of the refused upload was stored
