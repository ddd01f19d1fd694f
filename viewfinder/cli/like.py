"""`viewfinder search --like ID|PATH`: search by example, through either backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..client import SearchResult
    from .backend import Backend

LIKE_HELP = (
    "Search by example: one of your images (its id) or an image file (sent, not stored). "
    "With QUERY too, both count (rclip's text + image)."
)


def search_like(
    backend: Backend,
    like: str,
    query: str | None,
    *,
    max_results: int,
    threshold: float | None,
    include_self: bool,
    where: dict[str, Any] | None = None,
) -> list[SearchResult]:
    """The images like `like`: a file when such a file exists, else an image id."""
    path = Path(like).expanduser()
    if path.is_file():
        return backend.search_similar(
            path=path, query=query, max_results=max_results, threshold=threshold, filter=where
        )
    if "/" in like or "\\" in like:
        raise click.BadParameter(f"no such file: {like}", param_hint="--like")
    return backend.search_similar(
        like,
        query=query,
        max_results=max_results,
        threshold=threshold,
        include_self=include_self,
        filter=where,
    )
