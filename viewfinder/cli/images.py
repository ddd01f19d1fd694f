"""`viewfinder images list|get|delete`: the stored images."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import AuthenticationError, ViewfinderError
from .app import cli
from .backend import backend_options, handles_errors, open_backend
from .filter_option import filter_option
from .output import clip, label, print_json, tag_list, taken, when

if TYPE_CHECKING:
    from ..client import Image


@cli.group()
def images() -> None:
    """List, show and delete stored images."""


def _images_table(rows: list[Image]) -> str:
    lines = [
        f"{'image_id':<36}  {'status':<7}  {'size':>9}  {'uploaded':<19}  {'taken':<10}  "
        f"{'tags':<30}  name"
    ]
    for im in rows:
        size = f"{im.width}x{im.height}" if im.width and im.height else "-"
        name = (im.file_name or label(im.metadata)) + (f" ({im.error})" if im.error else "")
        name = clip(name, 70)
        tags = clip(tag_list(im.tags), 30) or "-"
        lines.append(
            f"{im.image_id:<36}  {im.status:<7}  {size:>9}  {when(im.upload_timestamp)}  "
            f"{taken(im.exif):<10}  {tags:<30}  {name}"
        )
    return "\n".join(lines)


@images.command("list")
@backend_options
@click.option("--limit", default=100, show_default=True, help="How many (1..1000).")
@click.option("--offset", default=0, show_default=True, help="Skip this many (newest first).")
@filter_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@handles_errors
def images_list(
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    limit: int,
    offset: int,
    where: dict[str, Any] | None,
    as_json: bool,
) -> None:
    """List images, newest first."""
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        rows = backend.list_images(limit, offset, where)
    if as_json:
        print_json([asdict(im) for im in rows])
    elif rows:
        click.echo(_images_table(rows))
    else:
        click.echo("no images", err=True)


@images.command("get")
@click.argument("image_id")
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@handles_errors
def images_get(
    image_id: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    as_json: bool,
) -> None:
    """Show one image."""
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        im = backend.get_image(image_id)
    if as_json:
        print_json(asdict(im))
        return
    rows = [
        ("image_id", im.image_id),
        ("file_name", im.file_name or ""),
        ("status", f"{im.status} ({im.indexing_status})"),
        ("uploaded", when(im.upload_timestamp)),
        ("size", f"{im.width}x{im.height}, {im.size_bytes} bytes, {im.content_type}"),
        ("sha256", im.sha256 or ""),
        ("tags", tag_list(im.tags, confidences=True)),
        *_exif_rows(im),
        ("error", im.error or ""),
        ("image_url", im.image_url),
        ("metadata", json.dumps(im.metadata, ensure_ascii=False)),
    ]
    for name, value in rows:
        if value:
            click.echo(f"{name + ':':<11}{value}")


def _exif_rows(im: Image) -> list[tuple[str, str]]:
    """What `images get` shows of an image's EXIF."""
    exif = im.exif
    if exif is None:
        return []
    camera = " ".join(part for part in (exif.make, exif.model) if part)
    if exif.orientation is not None:
        camera += f" (orientation {exif.orientation})"
    gps = f"{exif.gps.lat:.6f}, {exif.gps.lon:.6f}" if exif.gps is not None else ""
    return [
        ("taken", taken(exif, full=True) if exif.taken_at is not None else ""),
        ("camera", camera.strip()),
        ("gps", gps),
    ]


@images.command("delete")
@click.argument("image_ids", nargs=-1, required=True)
@backend_options
@handles_errors
def images_delete(
    image_ids: tuple[str, ...],
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
) -> None:
    """Delete images from storage, listing and search."""
    missed = 0
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        for image_id in image_ids:
            try:
                backend.delete_image(image_id)
            except ViewfinderError as exc:
                if isinstance(exc, AuthenticationError):
                    raise  # no other id will fare better
                click.echo(f"error: {image_id}: {exc.message}", err=True)
                missed += 1
                continue
            click.echo(f"deleted {image_id}")
    if missed:  # the others were still tried
        sys.exit(2)
