"""`viewfinder serve` and `viewfinder reindex`."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ..config import Settings
from ..errors import ViewfinderError
from .app import cli, data_dir_option, fail, require_data, settings_from


@cli.command()
@click.option("--host", default=None, help="Listen address [default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default 8000].")
@data_dir_option
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Indexing worker threads (0: API only, with `viewfinder worker` processes indexing).",
)
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
    from ..bootstrap import blob_sweeper, build_service, warm_up, worker_options
    from ..domain.keys import KeyRing
    from ..indexing.worker import WorkerPool
    from ..stores.factory import is_multi_process

    settings = settings_from(host=host, port=port, data_dir=data_dir, model=model, workers=workers)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        service = build_service(settings)
        # on shared stores other processes hold leases: let them expire, never release them;
        # an API-only process there leaves reconciling to the workers (no id read at start)
        shared = is_multi_process(settings)
        service.start(single_process=not shared, repair=not shared or settings.workers > 0)
        # before the first request; on a machine's first start this builds the model, once
        warm_up(service.embedder)
    except ViewfinderError as exc:
        fail(exc)
    if is_multi_process(settings) and not settings.secret_key:
        click.echo(
            "warning: set the same VIEWFINDER_SECRET_KEY on every API process, or image URLs "
            "signed by one are refused by the others",
            err=True,
        )
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
        f"{settings.data_dir.resolve()}, model {service.embedder.model_id}; "
        "web page at /, API docs at /docs)",
        err=True,
    )
    sweeper = blob_sweeper(settings, service)
    sweeper.start()
    # uvicorn stops accepting on SIGTERM/SIGINT, finishes the requests in flight, then raises
    # the signal again for the handler it found: this one lets the cleanup below run and the
    # process exit 0, instead of dying by the default handler with the stores left open
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    finally:
        sweeper.stop()
        service.close()


def _stopped(signum: int, _frame: Any) -> None:
    """The signal uvicorn already shut down on: nothing left to do but the cleanup."""
    logging.getLogger(__name__).info("%s: stopped", signal.Signals(signum).name)


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


@cli.command()
@data_dir_option
@click.option(
    "--server",
    envvar="VIEWFINDER_SERVER",
    default=None,
    help="Ask a running server instead (its base URL) [env VIEWFINDER_SERVER].",
)
@click.option("--api-key", envvar="VIEWFINDER_API_KEY", default=None, help="Key for --server.")
def status(data_dir: Path | None, server: str | None, api_key: str | None) -> None:
    """Show the model, image counts and the progress of a model switch."""
    if server:
        import httpx

        r = httpx.get(f"{server.rstrip('/')}/v1/status", headers={"X-Api-Key": api_key or ""})
        if r.status_code != 200:
            click.echo(f"error: {r.json().get('error', {}).get('message', r.text)}", err=True)
            sys.exit(2)
        body = r.json()
    else:
        from dataclasses import asdict

        from ..domain.records import IndexingStatus
        from ..domain.spaces import read_switch
        from ..embedders.factory import model_id_without_loading, shares_space_without_loading
        from ..stores.factory import open_metadata, open_vectors

        settings = settings_from(data_dir=data_dir)
        require_data(settings)  # reads only: never creates a data directory
        try:
            store = open_metadata(settings.resolved_database_url(), settings)
            store.migrate()
            active = open_vectors(settings.resolved_vector_url(), settings=settings)
            shadow = open_vectors(settings.resolved_vector_url(), shadow=True, settings=settings)
        except ViewfinderError as exc:
            fail(exc)
        counts = {s.label: store.count_images(s) for s in IndexingStatus}
        # what a server on this data directory would answer, read without loading a model
        answering, progress = read_switch(
            active,
            shadow,
            counts["indexed"],
            lambda spec: model_id_without_loading(spec, settings.data_dir),
            lambda model_id: shares_space_without_loading(settings.model, model_id),
        )
        body = {
            "model_id": answering or settings.model,
            **counts,
            "switch": None if progress is None else asdict(progress),
        }
        for closable in (store, active, shadow):
            closable.close()
        disk = _disk_line(settings)
    click.echo(f"model    {body['model_id']}")
    for name in ("stored", "queued", "indexed", "failed"):
        click.echo(f"{name:<8} {body[name]}")
    sw = body.get("switch")
    if sw:
        pct = 100 * sw["done"] / sw["total"] if sw["total"] else 100
        using = (
            "searches use the old vectors until it completes"
            if body["model_id"] == sw["from_model"]
            else "the old model can't be loaded: searches see the images re-embedded so far"
        )
        click.echo(
            f"switch   {sw['from_model']} -> {sw['to_model']}: {sw['done']}/{sw['total']} "
            f"re-embedded ({pct:.0f}%); {using}"
        )
    if not server and disk:
        click.echo(disk)


def _disk_line(settings: Settings) -> str | None:
    """The least free space under the data directory's stores, and where uploads stop."""
    from ..stores.disk_reserve import DiskReserve
    from ..stores.factory import local_storage

    free = DiskReserve(local_storage(settings), settings.upload_reserve_bytes).free_bytes()
    if not free:
        return None  # every store on a server
    store, least = min(free.items(), key=lambda item: item[1])
    reserve = settings.upload_reserve_bytes
    stop = f"; uploads wait under {_size(reserve)}" if reserve else ""
    return f"disk     {_size(least)} free ({store} store){stop}"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
