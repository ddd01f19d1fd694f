"""`viewfinder search`: find images matching a description."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .app import cli
from .backend import backend_options, handles_errors, open_backend
from .filter_option import filter_option
from .like import LIKE_HELP, search_like
from .output import clip, hit_path, label, print_json, tag_list, taken

if TYPE_CHECKING:
    from ..client import SearchResult


def _search_table(results: list[SearchResult]) -> str:
    lines = [f"{'score':>6}  {'image_id':<36}  {'taken':<10}  {'tags':<30}  name"]
    for hit in results:
        name = clip(hit.file_name or label(hit.image_metadata), 60)
        tags = clip(tag_list(hit.tags), 30) or "-"
        lines.append(
            f"{hit.score:6.3f}  {hit.image_id:<36}  {taken(hit.exif):<10}  {tags:<30}  {name}"
        )
    return "\n".join(lines)


@cli.command()
@click.argument("query", required=False)
@backend_options
@click.option("--like", metavar="ID|PATH", default=None, help=LIKE_HELP)
@click.option(
    "--include-self", is_flag=True, help="With --like ID: keep that image among the results."
)
@click.option("--max-results", "-n", default=10, show_default=True, help="How many (1..200).")
@click.option(
    "--threshold", "-t", type=float, default=None, help="Drop results scoring below this (0..1)."
)
@click.option(
    "--mode",
    type=click.Choice(["vision", "joined"]),
    default="vision",
    show_default=True,
    help="joined: also match the query against captions and metadata.",
)
@filter_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option(
    "--paths",
    "-f",
    "as_paths",
    is_flag=True,
    help="Print only the results' file paths (URLs when there is no local file), one a line, "
    "for piping.",
)
@click.option(
    "--open", "open_results", is_flag=True, help="Open the results in the default image viewer."
)
@handles_errors
def search(
    query: str | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    max_results: int,
    threshold: float | None,
    mode: str,
    where: dict[str, Any] | None,
    as_json: bool,
    as_paths: bool,
    open_results: bool,
    like: str | None,
    include_self: bool,
) -> None:
    """Find images matching a description (or like an image: --like), best first."""
    if like is None and not query:
        raise click.UsageError("give a QUERY, --like ID|PATH, or both")
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        if like is not None:
            results = search_like(
                backend,
                like,
                query,
                max_results=max_results,
                threshold=threshold,
                include_self=include_self,
                where=where,
            )
        else:
            results = backend.search(
                query or "",
                max_results=max_results,
                threshold=threshold,
                search_mode=mode,
                filter=where,
            )
    if as_json:
        print_json([asdict(r) for r in results])
    elif as_paths:
        for hit in results:
            click.echo(hit_path(hit))
    elif results:
        click.echo(_search_table(results))
    else:
        hint = " (try a lower --threshold)" if threshold else ""
        click.echo(f"no matches{hint}", err=True)
    if open_results:
        for hit in results:
            click.launch(hit_path(hit))
