"""Filters on images: the `filter` of search and list, parsed into a small typed tree.

The wire form is the operator style of MongoDB and Chroma:

    {"$and": [{"metadata.album": "trip"}, {"upload_timestamp": {"$gte": 1760000000}}]}

Fields: `metadata.<dotted.path>`, `upload_timestamp`, `exif.taken_at`, `file_name`, `tags`.
Operators: `$eq` (a bare value), `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`,
`$exists`, `$contains`; combined with `$and`, `$or`, `$not`. Semantics (every backend
compiles the same tree, and `matches` is the reference they are tested against):

- `$eq` holds when the field holds a value of the same JSON type that is equal (numbers
  compare as numbers; `true` never equals `1`). `$ne`, `$nin` and `$not` are negations, so
  they hold for images that lack the field, as in MongoDB.
- `$gt`, `$gte`, `$lt`, `$lte` take a number or a string and hold only for a field of that
  type (strings compare by code point).
- `$contains` holds for an array that has the value as an element; on `tags`, for an image
  with a tag of that name. On `tags`, `$eq`/`$ne`/`$in`/`$nin` read as "has (not) a tag".
- `$exists: true` holds when the field is present (JSON `null` counts; a `tags` list must be
  non-empty).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ValidationError
from .metadata_rules import valid_unicode
from .records import ImageRecord

SUMMARY = (
    "Only images that pass, MongoDB-style: fields metadata.<path>, upload_timestamp, "
    "exif.taken_at (Unix seconds), file_name, tags; operators $eq (or a bare value), $ne, $in, "
    '$nin, $gt, $gte, $lt, $lte, $exists, $contains (tags), $and, $or, $not. E.g. {"tags": '
    '{"$contains": "dog"}, "exif.taken_at": {"$gte": 1688169600}}.'
)
"""The filter language in one paragraph, for tool descriptions (MCP)."""

# Limits, so that one filter cannot make a query of unbounded size.
MAX_DEPTH = 8  # nesting of $and/$or/$not
MAX_CLAUSES = 64  # field conditions in one filter
MAX_IN = 256  # values in one $in/$nin
MAX_STRING = 1000  # characters in a value or a path
MAX_INT = 2**53  # exactly representable in every backend

Scalar = str | int | float | bool
FieldKind = Literal["metadata", "upload_timestamp", "taken_at", "file_name", "tags"]
CompareOp = Literal[
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$contains"
]

_COMPARE_OPS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$contains")
_ORDER_OPS = ("$gt", "$gte", "$lt", "$lte")
_FIELDS = ("metadata.<path>", "upload_timestamp", "exif.taken_at", "file_name", "tags")


@dataclass(frozen=True)
class Field:
    """What a condition looks at; `path` is the key path inside `metadata`."""

    kind: FieldKind
    path: tuple[str, ...] = ()

    @property
    def value_type(self) -> type | None:
        """The only type of value the field holds (None: any JSON value)."""
        if self.kind in ("upload_timestamp", "taken_at"):
            return float
        if self.kind in ("file_name", "tags"):
            return str
        return None


@dataclass(frozen=True)
class Compare:
    """One operator applied to one field. `value` is a list for $in/$nin, a bool for $exists."""

    field: Field
    op: CompareOp
    value: Any


@dataclass(frozen=True)
class And:
    """Every item holds (an empty And holds)."""

    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    """Some item holds."""

    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    """The item does not hold."""

    item: Filter


Filter = Compare | And | Or | Not


class _Parser:
    def __init__(self) -> None:
        self.clauses = 0

    def node(self, data: Any, param: str, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise ValidationError(f"filter nests deeper than {MAX_DEPTH} levels", param=param)
        if not isinstance(data, Mapping):
            raise ValidationError(
                'a filter is a JSON object such as {"metadata.album": "trip"}', param=param
            )
        items: list[Filter] = []
        for key, value in data.items():
            where = f"{param}.{key}"
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise ValidationError(f"{key} takes a non-empty list of filters", param=where)
                parts = tuple(self.node(v, f"{where}.{n}", depth + 1) for n, v in enumerate(value))
                items.append(And(parts) if key == "$and" else Or(parts))
            elif key == "$not":
                items.append(Not(self.node(value, where, depth + 1)))
            elif isinstance(key, str) and key.startswith("$"):
                raise ValidationError(
                    f"unknown operator {key!r} here: use a field name, $and, $or or $not",
                    param=where,
                )
            else:
                items.extend(self.conditions(_field(key, where), value, where))
        if len(items) == 1:
            return items[0]
        return And(tuple(items))

    def conditions(self, field: Field, value: Any, param: str) -> list[Filter]:
        if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
            found: list[Filter] = []
            for op, operand in value.items():
                found.append(self.compare(field, op, operand, f"{param}.{op}"))
            return found
        return [self.compare(field, "$eq", value, param)]

    def compare(self, field: Field, op: Any, value: Any, param: str) -> Compare:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise ValidationError(
                f"a filter may hold at most {MAX_CLAUSES} conditions", param=param
            )
        if op not in _COMPARE_OPS:
            raise ValidationError(
                f"unknown operator {op!r}: use one of {', '.join(_COMPARE_OPS)}", param=param
            )
        if op == "$exists":
            if not isinstance(value, bool):
                raise ValidationError("$exists takes true or false", param=param)
            return Compare(field, op, value)
        if op in ("$in", "$nin"):
            if not isinstance(value, list) or len(value) > MAX_IN:
                raise ValidationError(f"{op} takes a list of at most {MAX_IN} values", param=param)
            return Compare(
                field, op, [_scalar(field, v, f"{param}.{n}") for n, v in enumerate(value)]
            )
        if op == "$contains" and field.kind not in ("tags", "metadata"):
            raise ValidationError(
                "$contains applies to `tags` and to arrays in `metadata`", param=param
            )
        if op in _ORDER_OPS and field.kind == "tags":
            raise ValidationError(f"{op} does not apply to `tags`", param=param)
        scalar = _scalar(field, value, param)
        if op in _ORDER_OPS and isinstance(scalar, bool):
            raise ValidationError(f"{op} takes a number or a string", param=param)
        return Compare(field, op, scalar)


def _field(key: Any, param: str) -> Field:
    if not isinstance(key, str) or not key:
        raise ValidationError(f"a filter field is one of {', '.join(_FIELDS)}", param=param)
    if key == "upload_timestamp":
        return Field("upload_timestamp")
    if key == "exif.taken_at":
        return Field("taken_at")
    if key in ("file_name", "tags"):
        return Field(key)  # type: ignore[arg-type]
    if key.startswith("metadata."):
        path = tuple(key[len("metadata.") :].split("."))
        if any(not p for p in path) or len(key) > MAX_STRING or not _clean(key):
            raise ValidationError(
                "a metadata field is `metadata.` then a dotted key path, e.g. metadata.trip.city",
                param=param,
            )
        return Field("metadata", path)
    raise ValidationError(
        f"unknown filter field {key!r}: use one of {', '.join(_FIELDS)}", param=param
    )


def _clean(text: str) -> bool:
    return valid_unicode(text) and "\x00" not in text and '"' not in text


def _scalar(field: Field, value: Any, param: str) -> Scalar:
    """A comparison value, checked against what the field can hold."""
    if isinstance(value, bool):
        if field.value_type is not None:
            raise ValidationError(f"expected a {_type_name(field)} here", param=param)
        return value
    if isinstance(value, int | float):
        if field.value_type is str:
            raise ValidationError(f"expected a {_type_name(field)} here", param=param)
        if not math.isfinite(value) or abs(value) > MAX_INT:
            raise ValidationError(f"numbers in a filter lie within ±{MAX_INT}", param=param)
        return value
    if isinstance(value, str):
        if field.value_type is float:
            raise ValidationError(f"expected a {_type_name(field)} here", param=param)
        if len(value) > MAX_STRING or not valid_unicode(value) or "\x00" in value:
            raise ValidationError(
                f"strings in a filter are valid text of at most {MAX_STRING} characters",
                param=param,
            )
        return value
    raise ValidationError(
        "expected a string, a number or true/false here (null, arrays and objects are not "
        "compared: use $exists, $contains)",
        param=param,
    )


def _type_name(field: Field) -> str:
    return "number (Unix seconds)" if field.value_type is float else "string"


def parse_filter(data: Any, param: str = "filter") -> Filter:
    """Check a wire filter and turn it into a tree; ValidationError names the bad part."""
    return _Parser().node(data, param, 1)


# the reference evaluator ---------------------------------------------------------------------
_MISSING = object()


def _value_of(field: Field, record: ImageRecord) -> Any:
    if field.kind == "upload_timestamp":
        return record.upload_timestamp
    if field.kind == "taken_at":
        taken = None if record.exif is None else record.exif.taken_at
        return _MISSING if taken is None else taken
    if field.kind == "file_name":
        return _MISSING if record.file_name is None else record.file_name
    if field.kind == "tags":
        return [t.name for t in record.tags]
    current: Any = record.metadata
    for key in field.path:
        if not isinstance(current, Mapping) or key not in current:
            return _MISSING
        current = current[key]
    return current


def _same_type(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _equal(found: Any, wanted: Scalar) -> bool:
    return _same_type(found, wanted) and found == wanted


def _compare(node: Compare, record: ImageRecord) -> bool:
    found = _value_of(node.field, record)
    op, value = node.op, node.value
    if op == "$exists":
        present = found is not _MISSING and (node.field.kind != "tags" or bool(found))
        return present == value
    if node.field.kind == "tags":  # a list of names: "has a tag"
        if op in ("$eq", "$contains"):
            return value in found
        if op == "$ne":
            return value not in found
        if op == "$in":
            return any(v in found for v in value)
        return not any(v in found for v in value)  # $nin
    if op == "$eq":
        return _equal(found, value)
    if op == "$ne":
        return not _equal(found, value)
    if op == "$in":
        return any(_equal(found, v) for v in value)
    if op == "$nin":
        return not any(_equal(found, v) for v in value)
    if op == "$contains":
        return isinstance(found, list) and any(_equal(f, value) for f in found)
    if not _same_type(found, value):
        return False
    if op == "$gt":
        return bool(found > value)
    if op == "$gte":
        return bool(found >= value)
    if op == "$lt":
        return bool(found < value)
    return bool(found <= value)  # $lte


def matches(node: Filter, record: ImageRecord) -> bool:
    """Whether an image passes the filter (the reference semantics)."""
    if isinstance(node, Compare):
        return _compare(node, record)
    if isinstance(node, And):
        return all(matches(item, record) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, record) for item in node.items)
    return not matches(node.item, record)


MAX_FILTER_TEXT = 20000  # characters of a JSON-encoded filter (query parameter, form field)


def parse_filter_json(text: str, param: str = "filter") -> Filter:
    """`parse_filter` of a JSON-encoded filter (the `filter` query parameter of list)."""
    if len(text) > MAX_FILTER_TEXT:
        raise ValidationError(
            f"a filter is at most {MAX_FILTER_TEXT} characters of JSON", param=param
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ValidationError(
            'filter must be a JSON object, e.g. {"metadata.album": "trip"}', param=param
        ) from None
    return parse_filter(data, param)
