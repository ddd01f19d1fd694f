"""How commands print images and results: labels, clipped columns, JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import click

if TYPE_CHECKING:
    from ..client import SearchResult


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


def hit_path(hit: SearchResult) -> str:
    """Where a result can be opened: the file it was indexed from when it is still there,
    else the local file of its bytes (in place: the user's file), else its URL."""
    indexed_from = hit.image_metadata.get("path")
    if isinstance(indexed_from, str) and Path(indexed_from).is_file():
        return indexed_from
    if hit.image_url.startswith("file://"):
        return url2pathname(urlparse(hit.image_url).path)
    return hit.image_url


def progress_bar(total: int, desc: str, enabled: bool | None) -> Any:
    """A tqdm progress bar on stderr (rate and ETA); `enabled` None: only on a terminal."""
    from tqdm import tqdm

    # tqdm shows the rate and the ETA; None means "only on a terminal".
    return tqdm(
        total=total,
        desc=desc,
        unit="img",
        file=sys.stderr,
        disable=None if enabled is None else not enabled,
        dynamic_ncols=True,
    )
