"""`viewfinder index --in-place`: index files where they are, and report what changed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .output import progress_bar

if TYPE_CHECKING:
    from ..domain.in_place import InPlaceReport
    from ..local_client import LocalClient


def index_in_place(
    backend: LocalClient, files: list[Path], paths: tuple[Path, ...], progress: bool | None
) -> int:
    """Index `files` (found under `paths`) in place; print a summary; return the exit status."""
    started = time.monotonic()
    try:
        with progress_bar(len(files), "indexing in place", progress) as bar:

            def step(done: int) -> None:
                backend.process_queue()  # index each batch as it is recorded
                bar.update(done)

            report = backend.index_in_place(files, [p.resolve() for p in paths], step)
            backend.process_queue()
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted; run the same command again to continue (what was recorded is kept)",
            err=True,
        )
        return 130
    failures = report.failures + _indexing_failures(backend, report)
    for path, reason in failures:
        click.echo(f"failed: {path}: {reason}", err=True)
    elapsed = time.monotonic() - started
    indexed = len(report.queued) - (len(failures) - len(report.failures))
    rate = f", {indexed / elapsed:.1f} images/s" if indexed > 0 and elapsed > 0 else ""
    click.echo(
        f"{len(files)} files in place: {len(report.new)} new, {len(report.changed)} changed, "
        f"{len(report.moved)} moved, {len(report.removed)} removed (deleted files), "
        f"{report.unchanged} unchanged, {report.duplicates} duplicates (skipped), "
        f"{len(failures)} failed in {elapsed:.1f} s{rate}"
    )
    return 1 if failures else 0


def _indexing_failures(backend: LocalClient, report: InPlaceReport) -> list[tuple[str, str]]:
    """The files whose images were recorded but failed to index."""
    failed: list[tuple[str, str]] = []
    for image_id, path in report.queued.items():
        image = backend.get_image(image_id)
        if image.indexing_status == 3:
            failed.append((path, image.error or "indexing failed"))
    return failed
