"""`viewfinder index`: upload and index the images of files and folders, incrementally."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .app import cli, settings_from
from .backend import backend_options, handles_errors, open_backend
from .output import progress_bar

if TYPE_CHECKING:
    from ..client import Client
    from ..local_client import LocalClient
    from .backend import Backend

# What a folder walk picks up; a file named on the command line is sent whatever its name.
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
}


def image_files(paths: tuple[Path, ...]) -> list[Path]:
    """Files named, plus the images under folders named (recursive, hidden ones skipped)."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in p.relative_to(path).parts)
                if p.suffix.lower() in IMAGE_SUFFIXES and not hidden and p.is_file():
                    found[p.resolve()] = None
        else:
            raise click.BadParameter(f"{path}: no such file or folder", param_hint="PATH")
    return list(found)


class _IndexRun:
    """One `viewfinder index`: what is stored already, what was sent, what failed."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.new: dict[str, Path] = {}  # image id -> file
        self.failures: list[tuple[Path, str]] = []
        self.skipped = 0
        self.refused_before = 0
        # By content: the server's sha256 field, else the hash this command keeps in the
        # metadata (for servers without the field, and for uploads refused before).
        self.known: dict[str, bool] = {}  # sha256 -> stored (False: refused before)
        for im in backend.iter_images():
            sha = im.sha256 or im.metadata.get("sha256")
            if isinstance(sha, str):
                self.known[sha] = self.known.get(sha, False) or im.indexing_status != 3

    def _unseen(self, paths: list[Path]) -> list[tuple[Path, bytes, str]]:
        batch = []
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                self.failures.append((path, f"cannot read: {exc.strerror or exc}"))
                continue
            sha = hashlib.sha256(data).hexdigest()
            if sha in self.known:
                self.skipped += 1
                self.refused_before += not self.known[sha]
                continue
            self.known[sha] = True
            batch.append((path, data, sha))
        return batch

    def send(self, paths: list[Path]) -> None:
        """Upload the files of one batch that are not stored yet."""
        batch = self._unseen(paths)
        if not batch:
            return
        results = self.backend.upload(
            [(path.name, data) for path, data, _ in batch],
            metadata=[
                {"file_name": path.name, "path": str(path), "sha256": sha} for path, _, sha in batch
            ],
        )
        for (path, _, _), result in zip(batch, results, strict=True):
            if result.failed:
                self.failures.append((path, result.error or "refused"))
            else:
                self.new[result.image_id] = path

    def collect_indexing_failures(self) -> None:
        """Move images that failed to index from `new` to `failures`."""
        if not self.new:
            return
        for im in self.backend.iter_images():
            if im.image_id in self.new and im.indexing_status == 3:
                self.failures.append((self.new.pop(im.image_id), im.error or "indexing failed"))


def _wait_for_server(backend: Client, progress: bool | None) -> None:
    queued = backend.status().queued
    if not queued:
        return
    with progress_bar(queued, "indexing", progress) as bar:
        while queued:
            time.sleep(0.5)
            now = backend.status().queued
            bar.update(max(0, queued - now))
            queued = now


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@backend_options
@click.option("--batch-size", default=16, show_default=True, help="Images per upload request.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="With --server: wait until the server has indexed what was sent.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar [default: when stderr is a terminal].",
)
@click.option(
    "--in-place/--copy",
    "in_place",
    default=None,
    help="Index the files where they are instead of copying them into the data directory "
    "(local only); nothing is written in their folders, and moved, changed and deleted "
    "files are noticed on the next run [default: setting VIEWFINDER_IN_PLACE, else --copy].",
)
@handles_errors
def index(
    paths: tuple[Path, ...],
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    batch_size: int,
    wait: bool,
    progress: bool | None,
    in_place: bool | None,
) -> None:
    """Upload and index the images in PATHS (files or folders, recursively).

    Incremental: a file whose content is already stored (same SHA-256) is skipped, so a
    re-run after an interruption continues where it stopped. Exits 1 when an image failed.
    With --in-place the files stay where they are and the index refers to them.
    """
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    if in_place and server:
        raise click.UsageError(
            "--in-place indexes files for a local data directory; a server keeps copies of "
            "what it is sent (drop --server / VIEWFINDER_SERVER, or --in-place)"
        )
    if in_place is None:
        in_place = not server and settings_from(data_dir=data_dir).in_place
    files = image_files(paths)
    if in_place:
        from .in_place import index_in_place

        with open_backend(None, api_key, data_dir, tenant, model) as here:
            _load_model(here)  # type: ignore[arg-type]
            status = index_in_place(here, files, paths, progress)  # type: ignore[arg-type]
        if status:
            sys.exit(status)
        return
    local = not server
    waited = local or wait
    with open_backend(server, api_key, data_dir, tenant, model) as backend:
        if local:
            _load_model(backend)  # type: ignore[arg-type]
        started = time.monotonic()  # the rate counts indexing, not loading the model
        run = _IndexRun(backend)
        try:
            with progress_bar(len(files), "indexing" if local else "uploading", progress) as bar:
                for start in range(0, len(files), batch_size):
                    chunk = files[start : start + batch_size]
                    run.send(chunk)
                    if local:
                        # Also picks up what an interrupted run stored but did not index.
                        backend.process_queue()  # type: ignore[union-attr]
                    bar.set_postfix(
                        new=len(run.new),
                        skipped=run.skipped,
                        failed=len(run.failures),
                        refresh=False,
                    )
                    bar.update(len(chunk))  # redraws, with the counts of this batch
            if local:
                backend.process_queue()  # type: ignore[union-attr]
            elif wait:
                _wait_for_server(backend, progress)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            click.echo(
                f"\ninterrupted after {len(run.new)} new images; run the same command again "
                "to continue (what was stored is skipped)",
                err=True,
            )
            sys.exit(130)
        if waited:
            run.collect_indexing_failures()
    _summarise(run, len(files), waited, time.monotonic() - started)


def _load_model(backend: LocalClient) -> None:
    from ..bootstrap import warm_up

    load_s = warm_up(backend.service.embedder)
    if load_s >= 1.0:  # a machine's first run builds the built-in model, once
        click.echo(f"model ready in {load_s:.1f} s", err=True)


def _summarise(run: _IndexRun, files: int, waited: bool, elapsed: float) -> None:
    for path, reason in run.failures:
        click.echo(f"failed: {path}: {reason}", err=True)
    done = "indexed" if waited else "uploaded (the server indexes them)"
    rate = f", {len(run.new) / elapsed:.1f} images/s" if run.new and elapsed > 0 else ""
    click.echo(
        f"{files} files: {len(run.new)} {done}, {run.skipped} already stored (skipped), "
        f"{len(run.failures)} failed in {elapsed:.1f} s{rate}"
    )
    if run.refused_before:
        click.echo(
            f"{run.refused_before} of the skipped files were refused before (`viewfinder images "
            "list` says why; delete those entries to try them again)",
            err=True,
        )
    if run.failures:
        sys.exit(1)
