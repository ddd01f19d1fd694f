"""`viewfinder models list|pull|verify`: the known models and the local model cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigurationError, ViewfinderError
from .app import cli, data_dir_option, fail, settings_from


@cli.group()
def models() -> None:
    """Embedding models: list the known ones, pull one into the model cache, verify it."""


@models.command("list")
@data_dir_option
def list_models(data_dir: Path | None) -> None:
    """Show the known models, their size and dimension, and which are pulled (* = selected)."""
    from ..embedders.catalog import CATALOG, cached_models, model_cache_dir, model_status

    settings = settings_from(data_dir=data_dir)
    cache = model_cache_dir(settings.data_dir)
    rows = [("", "NAME", "DIM", "SIZE", "STATUS", "LANGUAGES", "NOTES")]
    listed: set[Path] = set()
    for model in CATALOG:
        mark = "*" if settings.model.strip() == model.name else ""
        if model.repo_id is None:
            rows.append(
                (mark, model.name, str(model.dim), "-", "bundled", model.languages, model.notes)
            )
            continue
        path = cache / model.name
        listed.add(path)
        status = model_status(path)
        size = _size_of(path) if status == "present" else f"~{_human(model.size_mb * 10**6)}"
        shown = "not pulled" if status == "absent" else status
        rows.append((mark, model.name, str(model.dim), size, shown, model.languages, model.notes))
    for name, path, manifest in cached_models(settings.data_dir):
        if path in listed:
            continue
        mark = "*" if settings.model.strip() in (name, path.name) else ""
        status = model_status(path)
        size = _size_of(path) if status == "present" else "-"
        source = f"from {manifest.repo_id}" if manifest else "not in the catalogue"
        rows.append((mark, name, _dim_of(path), size, status, "-", source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
    click.echo(
        f"\nModel cache: {cache.resolve()}\n"
        "Pull one with `viewfinder models pull NAME` (or any immich-layout repository by its "
        "id, owner/name); select it with VIEWFINDER_MODEL=NAME."
    )


@models.command()
@click.argument("name")
@data_dir_option
@click.option("--revision", default=None, help="Branch, tag or commit to pull [default main].")
@click.option("--force", is_flag=True, help="Download every file again.")
def pull(name: str, data_dir: Path | None, revision: str | None, force: bool) -> None:
    """Download model NAME into the model cache, resuming and verifying checksums."""
    from ..embedders.hub import pull_model

    settings = settings_from(data_dir=data_dir)
    bar = _Bar(name)
    try:
        result = pull_model(
            name,
            settings.data_dir,
            endpoint=settings.hf_endpoint,
            revision=revision,
            force=force,
            progress=bar,
        )
    except ViewfinderError as exc:
        bar.close()
        fail(exc)
    bar.close()
    if result.already_present:
        click.echo(f"{result.name} is already pulled and intact ({result.path}).")
    else:
        if result.repaired:
            click.echo(f"Fetched again, being damaged: {', '.join(result.repaired)}.", err=True)
        click.echo(
            f"Pulled {result.name} ({_human(result.size)}, revision {result.revision[:12]}) "
            f"into {result.path}; checksums verified."
        )
    click.echo(
        f"Use it with VIEWFINDER_MODEL={result.name}; a server that already holds images "
        "re-embeds them in the background (`viewfinder status` shows the progress)."
    )


@models.command()
@click.argument("name")
@data_dir_option
def verify(name: str, data_dir: Path | None) -> None:
    """Re-hash a pulled model's files against their recorded checksums and load it."""
    from ..embedders.catalog import Manifest, damaged_files, resolve_model
    from ..embedders.factory import providers
    from ..embedders.onnx_clip import OnnxClipEmbedder

    settings = settings_from(data_dir=data_dir)
    try:
        path = resolve_model(name, settings.data_dir)
        manifest = Manifest.load(path)
        if manifest is None:
            raise ConfigurationError(
                f"{path} was not pulled by viewfinder, so no checksums are recorded for it"
            )
        bad = damaged_files(path, manifest, hashes=True)
        if bad:
            raise ConfigurationError(
                f"{name} in {path} is damaged ({', '.join(bad)} differ from the pulled "
                f"files); run `viewfinder models pull {manifest.name}` to fetch them again"
            )
        embedder = OnnxClipEmbedder(path, providers=providers(settings))
    except ViewfinderError as exc:
        fail(exc)
    click.echo(
        f"{name}: {len(manifest.files)} files match their checksums; loads as "
        f"{embedder.model_id} ({embedder.family}, {embedder.dim}-d)."
    )


class _Bar:
    """A tqdm byte progress bar on stderr, opened on the first report."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                desc=self._name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=None,  # no bar when stderr is not a terminal
            )
        else:
            if total != self._bar.total:  # weight files the graphs name, found on the way
                self._bar.total = total
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _size_of(path: Path) -> str:
    from ..embedders.catalog import Manifest

    manifest = Manifest.load(path)
    return _human(manifest.size) if manifest else "-"


def _dim_of(path: Path) -> str:
    from ..embedders.model_dir import load_model_dir

    try:
        dim = load_model_dir(path).config.get("embed_dim")
    except ViewfinderError:
        return "-"
    return str(dim) if isinstance(dim, int) else "-"


def _human(n: int) -> str:
    if n >= 10**9:
        return f"{n / 10**9:.1f} GB"
    if n >= 10**6:
        return f"{n / 10**6:.0f} MB"
    return f"{n / 10**3:.0f} kB"
