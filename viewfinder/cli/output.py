"""How commands print images and results: labels, clipped columns, JSON."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click


def label(metadata: dict[str, Any]) -> str:
    """A name for an image: its file name, path or caption, else its metadata as JSON."""
    for key in ("file_name", "path", "caption", "name", "title"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return json.dumps(metadata, ensure_ascii=False) if metadata else ""


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def print_json(value: Any) -> None:
    """Print `value` as indented JSON."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def when(ts: float) -> str:
    """A timestamp as local date and time."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
