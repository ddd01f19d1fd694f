"""How commands print images and results: labels, clipped columns, JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import click

if TYPE_CHECKING:
    from ..client import Exif, SearchResult, Tag


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


def taken(exif: Exif | None, *, full: bool = False) -> str:
    """An EXIF capture time, as the date (`full`: date and time) in UTC, or "-".

    UTC, because a time without an offset in the file is the camera's clock read as UTC: so
    it shows as the camera showed it."""
    if exif is None or exif.taken_at is None:
        return "-"
    moment = datetime.fromtimestamp(exif.taken_at, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if full else "%Y-%m-%d")


def tag_list(tags: list[Tag], *, confidences: bool = False) -> str:
    """Tag names, best first, comma-separated (with confidences when asked)."""
    if confidences:
        return ", ".join(f"{t.name} {t.confidence:.2f}" for t in tags)
    return ", ".join(t.name for t in tags)


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
