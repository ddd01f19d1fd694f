"""Filters (domain/filters.py) compiled to SQL WHERE clauses, for SQLite and PostgreSQL.

Each condition is wrapped so that it is never NULL (a missing JSON key is simply false), so
`NOT` and `$ne` read as in the reference evaluator: they hold for images lacking the field.
Every value travels as a bound parameter; only fixed SQL text is formatted in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..domain.filters import And, Compare, Filter, Not, Or
from .image_meta_sql import side_table_path

Dialect = Literal["sqlite", "postgres"]

_SQL_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_COLUMNS = {"upload_timestamp": "upload_ts", "taken_at": "taken_at", "file_name": "file_name"}
# SQLite metadata that is not valid JSON reads as `{}`: one bad row never fails a listing
_SQLITE_METADATA = "(CASE WHEN json_valid(metadata) THEN metadata ELSE '{}' END)"
# PostgreSQL: the same, and the expression its GIN index is built on (stores/image_meta_sql.py)
_POSTGRES_METADATA = "viewfinder_metadata(metadata)"
SELECTIVE_ROWS = 5000
# counts the rows of a query (SQL, parameters), stopping at `limit`
Estimate = Callable[[str, list[Any]], int]
_SIDE_TABLE_OPS = ("$eq", "$in", "$gt", "$gte", "$lt", "$lte", "$exists")


_TRUE = "(1 = 1)"
_FALSE = "(1 = 0)"


class _Compiler:
    def __init__(
        self, dialect: Dialect, tenant: str | None, estimate: Estimate | None = None
    ) -> None:
        self.dialect = dialect
        self.tenant = tenant
        self.estimate = estimate
        self.indexed = False  # the last condition compiled is an id IN (few image_meta rows)
        self.params: list[Any] = []
        self.mark = "?" if dialect == "sqlite" else "%s"

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return self.mark

    def node(self, node: Filter) -> str:
        # An empty $and (the filter `{}`) holds for every image, an empty $or for none.
        if isinstance(node, And):
            return (
                "(" + " AND ".join(self.node(i) for i in node.items) + ")" if node.items else _TRUE
            )
        if isinstance(node, Or):
            return (
                "(" + " OR ".join(self.node(i) for i in node.items) + ")" if node.items else _FALSE
            )
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item)})"
        if self.bare(node):
            return f"({self.compare(node)})"
        return self.never_null(self.compare(node))

    def bare(self, node: Compare) -> bool:
        """Whether the condition, as compiled, is never NULL and is best left unwrapped: an
        index serves it (a column, SQLite's image_meta, PostgreSQL's metadata GIN index)."""
        if node.field.kind in _COLUMNS or self.side_table(node) is not None:
            return True
        postgres_metadata = self.dialect == "postgres" and node.field.kind == "metadata"
        return postgres_metadata and node.op in ("$eq", "$in")

    def side_table(self, node: Compare) -> str | None:
        """The `image_meta` path serving this condition (SQLite, tenant known), else None."""
        if self.dialect != "sqlite" or self.tenant is None or node.field.kind != "metadata":
            return None
        if node.op not in _SIDE_TABLE_OPS:
            return None
        return side_table_path(node.field.path)

    def never_null(self, sql: str) -> str:
        false = "0" if self.dialect == "sqlite" else "false"
        return f"COALESCE(({sql}), {false})"

    def compare(self, node: Compare) -> str:
        op, value = node.op, node.value
        if op in ("$ne", "$nin"):
            positive = Compare(node.field, "$eq" if op == "$ne" else "$in", value)
            return f"NOT {self.never_null(self.compare(positive))}"
        if op == "$in" and not value:
            return "1 = 0"
        path = self.side_table(node)
        if path is not None:
            return self.sqlite_side_table(path, op, value)
        if op == "$in":
            parts = [Compare(node.field, "$eq", v) for v in value]
            return " OR ".join(
                f"({self.compare(p) if self.bare(p) else self.never_null(self.compare(p))})"
                for p in parts
            )
        kind = node.field.kind
        if kind == "tags":
            return self.tags(op, value)
        if kind != "metadata":
            column = _COLUMNS[kind]
            if op == "$exists":
                return f"{column} IS {'NOT ' if value else ''}NULL"
            sql_op = "=" if op == "$eq" else _SQL_OPS[op]
            collate = ' COLLATE "C"' if self.dialect == "postgres" and kind == "file_name" else ""
            test = f"{column}{collate} {sql_op} {self.bind(value)}"
            if kind == "upload_timestamp":
                return test  # a NOT NULL column
            return f"{column} IS NOT NULL AND {test}"
        if self.dialect == "sqlite":
            return self.sqlite_json(node.field.path, op, value)
        return self.postgres_json(node.field.path, op, value)

    def tags(self, op: str, value: Any) -> str:
        if op == "$exists":
            has = (
                "json_array_length(COALESCE(tags, '[]')) > 0"
                if self.dialect == "sqlite"
                else "jsonb_array_length(COALESCE(tags, '[]')::jsonb) > 0"
            )
            return has if value else f"NOT ({has})"
        # $eq and $contains: a tag of that name
        if self.dialect == "sqlite":
            return (
                "EXISTS (SELECT 1 FROM json_each(COALESCE(tags, '[]')) "
                f"WHERE json_extract(value, '$.name') = {self.bind(value)})"
            )
        return f"COALESCE(tags, '[]')::jsonb @> {self.bind(json.dumps([{'name': value}]))}::jsonb"

    # SQLite, image_meta (stores/image_meta_sql.py): `txt` holds only strings and `num` only
    # numbers, so a comparison there holds between values of one type, as in the evaluator.
    # Few matching rows (counted, up to SELECTIVE_ROWS): the image id IN an uncorrelated
    # subquery, from which SQLite can start; many: a probe per image, so that a scan that
    # finds enough images early stops early.
    def sqlite_side_table(self, path: str, op: str, value: Any) -> str:
        tests: list[tuple[str, list[Any]]] = []
        if op == "$exists":
            tests.append(("1 = 1", []))
        else:
            sql_op = "=" if op in ("$eq", "$in") else _SQL_OPS[op]
            for v in value if op == "$in" else [value]:
                if isinstance(v, bool):
                    tests.append((f"vtype = '{'true' if v else 'false'}'", []))
                else:
                    tests.append((f"{'txt' if isinstance(v, str) else 'num'} {sql_op} ?", [v]))
        rows = " UNION ALL ".join(
            f"SELECT image_id FROM image_meta WHERE tenant = ? AND path = ? AND {t}"
            for t, _ in tests
        )
        params = [p for _, ps in tests for p in [self.tenant, path, *ps]]
        if self.estimate is not None and self.estimate(rows, params) < SELECTIVE_ROWS:
            self.params.extend(params)
            found = f"image_id IN ({rows})"
            self.indexed = op != "$exists" or bool(value)
        else:
            self.params.append(path)
            self.params.extend(p for _, ps in tests for p in ps)
            found = (
                "EXISTS (SELECT 1 FROM image_meta AS m WHERE m.image_id = images.image_id "
                f"AND m.path = ? AND ({' OR '.join(t for t, _ in tests)}))"
            )
        return found if op != "$exists" or value else f"NOT ({found})"

    # SQLite: json_type says the JSON type ('text', 'integer', 'real', 'true', ...), so a
    # comparison only holds between values of one type, as in the reference evaluator.
    def sqlite_json(self, path: tuple[str, ...], op: str, value: Any) -> str:
        json_path = "$" + "".join(f'."{p}"' for p in path)

        def kind() -> str:  # bound once per use: parameters are positional
            return f"json_type({_SQLITE_METADATA}, {self.bind(json_path)})"

        if op == "$exists":
            return f"{kind()} IS {'NOT ' if value else ''}NULL"
        if op == "$contains":
            array = kind()
            elements = f"json_each({_SQLITE_METADATA}, {self.bind(json_path)})"
            test = self.sqlite_typed(lambda: "type", lambda: "value", "=", value)
            return f"{array} = 'array' AND EXISTS (SELECT 1 FROM {elements} WHERE {test})"
        sql_op = "=" if op == "$eq" else _SQL_OPS[op]
        return self.sqlite_typed(
            kind,
            lambda: f"json_extract({_SQLITE_METADATA}, {self.bind(json_path)})",
            sql_op,
            value,
        )

    def sqlite_typed(
        self, kind: Callable[[], str], extract: Callable[[], str], sql_op: str, value: Any
    ) -> str:
        """The extracted value compares to `value`, and its JSON type is the value's. The
        comparison comes first: AND stops there for most rows, and each side parses the
        JSON again (SQLite before 3.45 keeps no parsed copy)."""
        if isinstance(value, bool):
            return f"{kind()} = '{'true' if value else 'false'}'"
        kinds = "= 'text'" if isinstance(value, str) else "IN ('integer', 'real')"
        return f"{extract()} {sql_op} {self.bind(value)} AND {kind()} {kinds}"

    def postgres_json(self, path: tuple[str, ...], op: str, value: Any) -> str:
        def target() -> str:  # bound once per use: parameters are positional
            return f"({_POSTGRES_METADATA} #> {self.bind(list(path))}::text[])"

        if op == "$exists":
            return f"{target()} IS {'NOT ' if value else ''}NULL"
        if op == "$contains":
            return f"{target()} @> {self.bind(json.dumps([value]))}::jsonb"
        if op == "$eq":
            # containment, which the GIN index answers, then jsonb equality (same type, numbers
            # compared as numbers), which alone decides: an array holding the value contains it
            document: Any = value
            for key in reversed(path):
                document = {key: document}
            contains = f"{_POSTGRES_METADATA} @> {self.bind(json.dumps(document))}::jsonb"
            equal = f"{target()} = {self.bind(json.dumps(value))}::jsonb"
            return f"{contains} AND {self.never_null(equal)}"
        sql_op = _SQL_OPS[op]
        if isinstance(value, str):
            return (
                f"jsonb_typeof({target()}) = 'string' AND "
                f"({target()} #>> '{{}}') COLLATE \"C\" {sql_op} {self.bind(value)}"
            )
        return (
            f"CASE WHEN jsonb_typeof({target()}) = 'number' THEN "
            f"({target()} #>> '{{}}')::numeric {sql_op} {self.bind(value)}::numeric "
            "ELSE false END"
        )


def compile_filter(
    node: Filter, dialect: Dialect, tenant: str | None = None
) -> tuple[str, list[Any]]:
    """A WHERE-clause fragment (never NULL) and its parameters, in order."""
    compiler = _Compiler(dialect, tenant)
    sql = compiler.node(node)
    return sql, compiler.params


@dataclass(frozen=True)
class SqliteFilter:
    sql: str
    params: list[Any]
    driven: bool  # a top-level condition picks few image ids: start from them


def compile_sqlite_filter(node: Filter, tenant: str, estimate: Estimate) -> SqliteFilter:
    """The filter for a query on `images` of one tenant, its metadata conditions read from
    `image_meta`. When `driven`, the query should write `+tenant` and `+status` so that
    SQLite starts from the few ids (without statistics it would rather walk an index of
    `images`)."""
    compiler = _Compiler("sqlite", tenant, estimate)
    driven = False
    top = node.items if isinstance(node, And) else (node,)
    parts = []
    for item in top:
        compiler.indexed = False
        parts.append(compiler.node(item))
        driven = driven or (
            isinstance(item, Compare) and item.op in _SIDE_TABLE_OPS and compiler.indexed
        )
    sql = "(" + " AND ".join(parts) + ")" if parts else _TRUE
    return SqliteFilter(sql, compiler.params, driven)
