"""`viewfinder serve` and `viewfinder reindex`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..errors import ViewfinderError
from .app import cli, data_dir_option, fail, settings_from


@cli.command()
@click.option("--host", default=None, help="Listen address [default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default 8000].")
@data_dir_option
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
@click.option("--workers", type=int, default=None, help="Indexing worker threads.")
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    model: str | None,
    workers: int | None,
) -> None:
    """Run the HTTP server with background indexing."""
    import uvicorn

    from ..api.app import create_app
    from ..bootstrap import build_service, worker_options
    from ..domain.keys import KeyRing
    from ..indexing.worker import WorkerPool

    settings = settings_from(host=host, port=port, data_dir=data_dir, model=model, workers=workers)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        service = build_service(settings)
        service.start()
    except ViewfinderError as exc:
        fail(exc)
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


@cli.command()
@data_dir_option
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
def reindex(data_dir: Path | None, model: str | None) -> None:
    """Drop all vectors and queue every image to be embedded again (after a model change)."""
    from ..bootstrap import build_service

    settings = settings_from(data_dir=data_dir, model=model)
    try:
        service = build_service(settings)
        service.metadata.migrate()
        count = service.reindex_all()
    except ViewfinderError as exc:
        fail(exc)
    service.close()
    click.echo(
        f"queued {count} images for re-embedding with {service.embedder.model_id}; "
        "`viewfinder serve` indexes them"
    )
