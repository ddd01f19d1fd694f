"""Filters (domain/filters.py) compiled to SQL WHERE clauses, for SQLite and PostgreSQL.

Each condition is wrapped so that it is never NULL (a missing JSON key is simply false), so
`NOT` and `$ne` read as in the reference evaluator: they hold for images lacking the field.
Every value travels as a bound parameter; only fixed SQL text is formatted in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from ..domain.filters import And, Compare, Filter, Not, Or

Dialect = Literal["sqlite", "postgres"]

_SQL_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_COLUMNS = {"upload_timestamp": "upload_ts", "taken_at": "taken_at", "file_name": "file_name"}


class _Compiler:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.params: list[Any] = []
        self.mark = "?" if dialect == "sqlite" else "%s"

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return self.mark

    def node(self, node: Filter) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(i) for i in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(i) for i in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item)})"
        if node.field.kind in _COLUMNS:
            # never NULL as written; left bare so that an index on the column can serve it
            return f"({self.compare(node)})"
        return self.never_null(self.compare(node))

    def never_null(self, sql: str) -> str:
        false = "0" if self.dialect == "sqlite" else "false"
        return f"COALESCE(({sql}), {false})"

    def compare(self, node: Compare) -> str:
        op, value = node.op, node.value
        if op in ("$ne", "$nin"):
            positive = Compare(node.field, "$eq" if op == "$ne" else "$in", value)
            return f"NOT {self.never_null(self.compare(positive))}"
        if op == "$in":
            if not value:
                return "1 = 0"
            return " OR ".join(
                f"({self.never_null(self.compare(Compare(node.field, '$eq', v)))})" for v in value
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

    # SQLite: json_type says the JSON type ('text', 'integer', 'real', 'true', ...), so a
    # comparison only holds between values of one type, as in the reference evaluator.
    def sqlite_json(self, path: tuple[str, ...], op: str, value: Any) -> str:
        json_path = "$" + "".join(f'."{p}"' for p in path)

        def kind() -> str:  # bound once per use: parameters are positional
            return f"json_type(metadata, {self.bind(json_path)})"

        if op == "$exists":
            return f"{kind()} IS {'NOT ' if value else ''}NULL"
        if op == "$contains":
            array = kind()
            elements = f"json_each(metadata, {self.bind(json_path)})"
            test = self.sqlite_typed(lambda: "type", lambda: "value", "=", value)
            return f"{array} = 'array' AND EXISTS (SELECT 1 FROM {elements} WHERE {test})"
        sql_op = "=" if op == "$eq" else _SQL_OPS[op]
        return self.sqlite_typed(
            kind, lambda: f"json_extract(metadata, {self.bind(json_path)})", sql_op, value
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
            return f"(metadata::jsonb #> {self.bind(list(path))}::text[])"

        if op == "$exists":
            return f"{target()} IS {'NOT ' if value else ''}NULL"
        if op == "$contains":
            return f"{target()} @> {self.bind(json.dumps([value]))}::jsonb"
        if op == "$eq":  # jsonb equality: same type, numbers compared as numbers
            return f"{target()} = {self.bind(json.dumps(value))}::jsonb"
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


def compile_filter(node: Filter, dialect: Dialect) -> tuple[str, list[Any]]:
    """A WHERE-clause fragment (never NULL) and its parameters, in order."""
    compiler = _Compiler(dialect)
    sql = compiler.node(node)
    return sql, compiler.params
