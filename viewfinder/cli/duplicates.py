"""`viewfinder duplicates`: near-duplicate images (re-encoded, resized, lightly cropped copies)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .app import cli
from .backend import backend_options, handles_errors, open_backend
from .output import clip, label, print_json, when

if TYPE_CHECKING:
    from ..client import Duplicate, DuplicateGroup, Image


def _name(image: Image) -> str:
    return clip(image.file_name or label(image.metadata), 60)


def groups_table(groups: list[DuplicateGroup]) -> str:
    """One block per group: its lowest similarity, then its images, oldest first."""
    lines = []
    for n, group in enumerate(groups, 1):
        lines.append(f"group {n}: {len(group.images)} images, similarity >= {group.similarity:.3f}")
        for image in group.images:
            lines.append(f"  {image.image_id:<36}  {when(image.upload_timestamp)}  {_name(image)}")
    return "\n".join(lines)


def matches_table(matches: list[Duplicate]) -> str:
    """One line per near-duplicate of an image, closest first."""
    lines = [f"{'similar':>7}  {'bits':>4}  {'image_id':<36}  name"]
    for d in matches:
        bits = "-" if d.hamming is None else str(d.hamming)
        lines.append(f"{d.similarity:7.3f}  {bits:>4}  {d.image_id:<36}  {_name(d)}")
    return "\n".join(lines)


@cli.command()
@click.argument("image_id", required=False)
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@handles_errors
def duplicates(
    image_id: str | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    as_json: bool,
) -> None:
    """Near-duplicate images: every group, or the copies of IMAGE_ID.

    Copies are images whose vectors are close and whose perceptual hashes agree
    (VIEWFINDER_DUPLICATE_SIMILARITY, VIEWFINDER_DUPLICATE_MAX_HAMMING).
    """
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        if image_id is not None:
            matches = backend.duplicates_of(image_id)
            if as_json:
                print_json([asdict(m) for m in matches])
            elif matches:
                click.echo(matches_table(matches))
            else:
                click.echo(f"no near-duplicates of {image_id}", err=True)
            return
        groups = backend.duplicates()
    if as_json:
        print_json([asdict(g) for g in groups])
    elif groups:
        click.echo(groups_table(groups))
    else:
        click.echo("no near-duplicates", err=True)
