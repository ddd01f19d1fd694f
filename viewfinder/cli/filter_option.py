"""`--filter JSON`: the filter option of `viewfinder search` and `viewfinder images list`."""

from __future__ import annotations

import json
from typing import Any

import click

FILTER_HELP = (
    'Only images that pass this JSON filter, e.g. \'{"metadata.album": "trip"}\' or '
    '\'{"exif.taken_at": {"$gte": 1688169600}}\' (fields and operators: README, Filters).'
)


class FilterJson(click.ParamType):
    """A JSON object given on the command line."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dict):
            return value
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            self.fail(f"not JSON: {value!r}", param, ctx)
        if not isinstance(data, dict):
            self.fail('a filter is a JSON object such as {"metadata.album": "trip"}', param, ctx)
        return data


filter_option = click.option("--filter", "where", type=FilterJson(), default=None, help=FILTER_HELP)
