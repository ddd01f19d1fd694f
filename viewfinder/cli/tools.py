"""`viewfinder index`, `search` and `images list|get|delete`, on a server or a data directory.

With `--server URL --api-key KEY` (or VIEWFINDER_SERVER / VIEWFINDER_API_KEY) the commands
talk to a running server through `viewfinder.Client`; without, they open the data directory
in this process (`LocalClient`) and act for one tenant (`--tenant`, default `default`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import click

from ..errors import AuthenticationError, ViewfinderError
from .app import cli, data_dir_option, fail, settings_from

if TYPE_CHECKING:
    from ..client import Client, Image, SearchResult
    from ..local_client import LocalClient

    Backend = Union[Client, LocalClient]  # noqa: UP007

# What a folder walk picks up; a file named on the command line is sent whatever its name.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}

_F = TypeVar("_F", bound=Callable[..., Any])


def backend_options(fn: _F) -> _F:
    """--server/--api-key for a server; --data-dir/--tenant/--model for a local directory."""
    options = [
        click.option(
            "--server",
            envvar="VIEWFINDER_SERVER",
            metavar="URL",
            help="Use this server, e.g. http://127.0.0.1:8000 [env VIEWFINDER_SERVER]; "
            "without it, the data directory is used directly.",
        ),
        click.option(
            "--api-key",
            envvar="VIEWFINDER_API_KEY",
            metavar="KEY",
            help="API key for --server [env VIEWFINDER_API_KEY].",
        ),
        data_dir_option,
        click.option(
            "--tenant",
            default="default",
            show_default=True,
            help="Tenant whose images a local data directory holds (no --server).",
        ),
        click.option(
            "--model", default=None, help="Embedding model, local only [env VIEWFINDER_MODEL]."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@contextmanager
def open_backend(
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    *,
    background: bool = False,
    must_exist: bool = False,
) -> Iterator[Backend]:
    """A `Client` for --server, else a `LocalClient` over the data directory (indexing in
    background threads when `background`; refusing one that holds nothing yet when
    `must_exist`, as a mistyped --data-dir would otherwise read as an empty library)."""
    if server:
        if not api_key:
            raise click.UsageError(
                "--server needs --api-key (or VIEWFINDER_API_KEY); on the server make one with "
                "`viewfinder keys create TENANT`"
            )
        if data_dir is not None or model is not None:
            raise click.UsageError(
                "--data-dir and --model are for local use; they do not go with --server "
                "(or VIEWFINDER_SERVER)"
            )
        from ..client import Client

        with Client(server, api_key) as client:
            yield client
        return
    if api_key:
        raise click.UsageError(
            "--api-key needs --server URL (or VIEWFINDER_SERVER); without a server the data "
            "directory is used directly and needs no key"
        )
    from ..local_client import LocalClient

    settings = settings_from(data_dir=data_dir, model=model)
    database = settings.data_dir / "viewfinder.db"
    if must_exist and settings.database_url is None and not database.is_file():
        raise click.UsageError(
            f"no Viewfinder data in {settings.data_dir.resolve()}: index images there first "
            "(`viewfinder index PATH`), pass the right --data-dir (or VIEWFINDER_DATA_DIR), "
            "or ask a server with --server URL"
        )
    with LocalClient(settings, tenant, background=background) as local:
        yield local


def _explain(exc: ViewfinderError) -> ViewfinderError:
    if isinstance(exc, AuthenticationError):
        exc.message += "; check --api-key / VIEWFINDER_API_KEY (`viewfinder keys create TENANT`)"
    return exc


def handles_errors(fn: _F) -> _F:
    """Turn library errors into `error: ...` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ViewfinderError as exc:
            fail(_explain(exc))

    return wrapper  # type: ignore[return-value]


# index
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


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
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
    with _progress(queued, "indexing", progress) as bar:
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
) -> None:
    """Upload and index the images in PATHS (files or folders, recursively).

    Incremental: a file whose content is already stored (same SHA-256) is skipped, so a
    re-run after an interruption continues where it stopped. Exits 1 when an image failed.
    """
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    files = image_files(paths)
    started = time.monotonic()
    local = not server
    waited = local or wait
    with open_backend(server, api_key, data_dir, tenant, model) as backend:
        run = _IndexRun(backend)
        try:
            with _progress(len(files), "indexing" if local else "uploading", progress) as bar:
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


# search
def _label(metadata: dict[str, Any]) -> str:
    for key in ("file_name", "path", "caption", "name", "title"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return json.dumps(metadata, ensure_ascii=False) if metadata else ""


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _search_table(results: list[SearchResult]) -> str:
    lines = [f"{'score':>6}  {'image_id':<36}  name"]
    for hit in results:
        lines.append(
            f"{hit.score:6.3f}  {hit.image_id:<36}  {_clip(_label(hit.image_metadata), 60)}"
        )
    return "\n".join(lines)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@cli.command()
@click.argument("query")
@backend_options
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@handles_errors
def search(
    query: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    max_results: int,
    threshold: float | None,
    mode: str,
    as_json: bool,
) -> None:
    """Find images matching a description, best first."""
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        results = backend.search(
            query, max_results=max_results, threshold=threshold, search_mode=mode
        )
    if as_json:
        _print_json([asdict(r) for r in results])
    elif results:
        click.echo(_search_table(results))
    else:
        hint = " (try a lower --threshold)" if threshold else ""
        click.echo(f"no matches{hint}", err=True)


# images
@cli.group()
def images() -> None:
    """List, show and delete stored images."""


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _images_table(rows: list[Image]) -> str:
    lines = [f"{'image_id':<36}  {'status':<7}  {'size':>9}  {'uploaded':<19}  name"]
    for im in rows:
        size = f"{im.width}x{im.height}" if im.width and im.height else "-"
        name = _label(im.metadata) + (f" ({im.error})" if im.error else "")
        name = _clip(name, 70)
        lines.append(
            f"{im.image_id:<36}  {im.status:<7}  {size:>9}  {_when(im.upload_timestamp)}  {name}"
        )
    return "\n".join(lines)


@images.command("list")
@backend_options
@click.option("--limit", default=100, show_default=True, help="How many (1..1000).")
@click.option("--offset", default=0, show_default=True, help="Skip this many (newest first).")
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
    as_json: bool,
) -> None:
    """List images, newest first."""
    with open_backend(server, api_key, data_dir, tenant, model, must_exist=True) as backend:
        rows = backend.list_images(limit, offset)
    if as_json:
        _print_json([asdict(im) for im in rows])
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
        _print_json(asdict(im))
        return
    rows = [
        ("image_id", im.image_id),
        ("status", f"{im.status} ({im.indexing_status})"),
        ("uploaded", _when(im.upload_timestamp)),
        ("size", f"{im.width}x{im.height}, {im.size_bytes} bytes, {im.content_type}"),
        ("sha256", im.sha256 or ""),
        ("error", im.error or ""),
        ("image_url", im.image_url),
        ("metadata", json.dumps(im.metadata, ensure_ascii=False)),
    ]
    for name, value in rows:
        if value:
            click.echo(f"{name + ':':<11}{value}")


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
