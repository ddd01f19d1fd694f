"""The `viewfinder` command line: the only module that prints or exits."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from .config import Settings
from .errors import ViewfinderError

log = logging.getLogger(__name__)


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with command-line options taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(exc: ViewfinderError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(2)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data directory [env VIEWFINDER_DATA_DIR; default ./viewfinder-data].",
)


@click.group()
@click.version_option(package_name="viewfinder")
def cli() -> None:
    """Viewfinder: self-hosted natural-language image search."""


@cli.command()
@click.option("--host", default=None, help="Listen address [default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default 8000].")
@data_dir_option
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
@click.option("--workers", type=int, default=None, help="Indexing worker threads.")
def serve(
    host: str | None, port: int | None, data_dir: Path | None, model: str | None, workers: int | None
) -> None:
    """Run the HTTP server with background indexing."""
    import uvicorn

    from .api.app import create_app
    from .bootstrap import build_service, worker_options
    from .domain.keys import KeyRing
    from .indexing.worker import WorkerPool

    settings = _settings(host=host, port=port, data_dir=data_dir, model=model, workers=workers)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        service = build_service(settings)
        service.start()
    except ViewfinderError as exc:
        _fail(exc)
    ring = KeyRing(service.metadata)
    if not service.metadata.list_keys():
        issued = ring.create("default")
        click.echo(
            "\n  No API keys existed, so one was made for tenant 'default' (shown only once):\n\n"
            f"      {issued.secret}\n\n"
            "  Use it as `X-Api-Key: <key>`. Make more with `viewfinder keys create TENANT`.\n",
            err=True,
        )
    pool = WorkerPool(service, worker_options(settings), settings.workers)
    app = create_app(settings, service, workers=pool)
    click.echo(
        f"Viewfinder on http://{settings.host}:{settings.port} (data in "
        f"{settings.data_dir.resolve()}, model {service.embedder.model_id}; API docs at /docs)",
        err=True,
    )
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    finally:
        service.close()


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _metadata(data_dir: Path | None) -> Any:
    from .stores.factory import open_metadata

    settings = _settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_metadata(settings.resolved_database_url())
    store.migrate()
    return store


@keys.command("create")
@click.argument("tenant")
@data_dir_option
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    metavar="ENDPOINT=N/UNIT",
    help="Limit this key, e.g. search=60/minute or '*=1000/hour' (repeatable).",
)
def keys_create(tenant: str, data_dir: Path | None, rate_limits: tuple[str, ...]) -> None:
    """Make a key for TENANT and print it (only the key, on stdout).

    Keys of the same tenant share its images; other tenants never see them.
    """
    from .api.ratelimit import parse_limit
    from .domain.keys import KeyRing

    limits: dict[str, str] = {}
    try:
        for spec in rate_limits:
            endpoint, sep, value = spec.partition("=")
            if not sep:
                raise click.BadParameter(f"{spec!r}: write ENDPOINT=N/UNIT", param_hint="--rate-limit")
            parse_limit(value)
            limits[endpoint.strip()] = value.strip()
        store = _metadata(data_dir)
        try:
            issued = KeyRing(store).create(tenant, limits)
        finally:
            store.close()
    except ViewfinderError as exc:
        _fail(exc)
    click.echo(issued.secret)


@keys.command("list")
@data_dir_option
def keys_list(data_dir: Path | None) -> None:
    """List key ids and their tenants (the secrets are not stored)."""
    store = _metadata(data_dir)
    try:
        for key in store.list_keys():
            limits = ",".join(f"{k}={v}" for k, v in key.rate_limits.items())
            click.echo(f"{key.key_id}\t{key.tenant}\t{limits}")
    finally:
        store.close()


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
def keys_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke a key by its id (from `viewfinder keys list`)."""
    store = _metadata(data_dir)
    try:
        if not store.revoke_key(key_id):
            click.echo(f"error: no key {key_id}; see `viewfinder keys list`", err=True)
            sys.exit(1)
    finally:
        store.close()
    click.echo(f"revoked {key_id}")


@cli.command()
@data_dir_option
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
def reindex(data_dir: Path | None, model: str | None) -> None:
    """Drop all vectors and queue every image to be embedded again (after a model change)."""
    from .bootstrap import build_service

    settings = _settings(data_dir=data_dir, model=model)
    try:
        service = build_service(settings)
        service.metadata.migrate()
        count = service.reindex_all()
    except ViewfinderError as exc:
        _fail(exc)
    service.close()
    click.echo(f"queued {count} images for re-embedding with {service.embedder.model_id}; "
               "`viewfinder serve` indexes them")


def main() -> None:
    """Entry point of the `viewfinder` script."""
    cli()


if __name__ == "__main__":
    main()
