"""`viewfinder worker` (indexing processes beside the API ones) and `viewfinder migrate`."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import Settings
from ..errors import ConfigurationError, NotFound, ViewfinderError
from .app import cli, data_dir_option, fail, settings_from

# Chatty at DEBUG and INFO (every request, every pooled connection): kept to warnings so that
# `VIEWFINDER_LOG_LEVEL=debug` shows Viewfinder's own decisions.
_NOISY = ("botocore", "boto3", "s3transfer", "urllib3", "psycopg", "pymilvus", "grpc", "PIL")


def _configure_logging(settings: Settings) -> None:
    level = settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level == "DEBUG":
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.WARNING)


@cli.command()
@data_dir_option
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Indexing worker threads in this process [env VIEWFINDER_WORKERS; default 1].",
)
@click.option(
    "--health-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve /healthz, /readyz (with the queue lag) and, with VIEWFINDER_METRICS=true, "
    "/metrics on this port, at VIEWFINDER_HOST [default: no HTTP at all].",
)
def worker(
    data_dir: Path | None, model: str | None, workers: int | None, health_port: int | None
) -> None:
    """Index queued images, without serving the API, beside `viewfinder serve --workers 0`.

    Needs shared stores (VIEWFINDER_DATABASE_URL=postgresql://..., VIEWFINDER_VECTOR_URL=
    milvus://...). SIGTERM or Ctrl-C finishes the batch in hand, gives back the images
    claimed ahead and exits 0; a worker that dies instead loses nothing: its images are
    claimed again once their lease (VIEWFINDER_LEASE_S) runs out.
    """
    from ..bootstrap import blob_sweeper, build_service, warm_up, worker_options
    from ..indexing.worker import WorkerPool
    from ..stores.factory import is_multi_process

    settings = settings_from(data_dir=data_dir, model=model, workers=workers)
    _configure_logging(settings)
    if not is_multi_process(settings):
        fail(
            ConfigurationError(
                "`viewfinder worker` runs beside API processes on shared stores: set "
                "VIEWFINDER_DATABASE_URL=postgresql://... and VIEWFINDER_VECTOR_URL=milvus://... "
                "(with embedded stores, `viewfinder serve` indexes in its own process)"
            )
        )
    try:
        service = build_service(settings)
    except ViewfinderError as exc:
        fail(exc)
    pool = WorkerPool(service, worker_options(settings), max(1, settings.workers))
    # probes answer from here on: /readyz says what is still starting (the model's first
    # load can take a while)
    health = _health_server(settings, service, pool, health_port) if health_port else None
    try:
        service.start(single_process=False)
        warm_up(service.embedder)  # before claiming: a lease must not wait for a model build
    except ViewfinderError as exc:
        fail(exc)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping after the current batch", err=True)
        stop.set()
        # a second signal stops at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pool.start()
    sweeper = blob_sweeper(settings, service)
    sweeper.start()
    click.echo(
        f"Viewfinder worker: {len(pool.workers)} indexing threads, model "
        f"{service.embedder.model_id}",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sweeper.stop()
        pool.stop(timeout_s=max(30.0, settings.lease_s))
        if health is not None:
            health.stop()
        service.close()
    click.echo("worker stopped", err=True)


def _health_server(settings: Settings, service: Any, pool: Any, port: int) -> Any:
    """The worker's probe server (`--health-port`), started."""
    from ..api.health import HealthServer, worker_app
    from ..api.metrics import Metrics
    from ..domain.readiness import Readiness, service_checks
    from ..stores.factory import local_storage

    def indexing() -> None:
        if pool.alive() < len(pool.workers):
            raise ConfigurationError(
                f"{pool.alive()} of {len(pool.workers)} indexing threads are running"
            )

    checks = {**service_checks(service, settings.readiness_timeout_s), "indexing": indexing}
    metrics = None
    if settings.metrics:
        metrics = Metrics(
            service,
            last_batch_at=lambda: pool.last_batch_at,
            storage=local_storage(settings),
        )
        pool.observe(metrics.batch_indexed)
    app = worker_app(
        Readiness(checks, settings.readiness_timeout_s),
        metrics,
        last_batch_at=lambda: pool.last_batch_at,
        oldest_queued_at=service.metadata.oldest_queued_at,
    )
    server = HealthServer(app, settings.host, port)
    try:
        server.start()
    except OSError as exc:
        fail(ConfigurationError(f"cannot serve --health-port {port} on {settings.host}: {exc}"))
    click.echo(f"health probes on http://{settings.host}:{port}/readyz", err=True)
    return server


@dataclass
class _Copied:
    keys: int = 0
    images: int = 0
    images_seen: int = 0
    bytes_copied: int = 0
    bytes_missing: int = 0
    in_place_left: int = 0  # images indexed in place whose bytes were not copied
    vectors: int = 0


@cli.command()
@data_dir_option
@click.option("--to-database-url", default=None, help="Copy keys, images and the queue here.")
@click.option("--to-blob-url", default=None, help="Copy image bytes here.")
@click.option("--to-vector-url", default=None, help="Copy vectors here.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
def migrate(
    data_dir: Path | None,
    to_database_url: str | None,
    to_blob_url: str | None,
    to_vector_url: str | None,
    batch_size: int,
) -> None:
    """Copy the configured stores (e.g. the embedded ones) to other stores.

    The source is what VIEWFINDER_DATABASE_URL, _BLOB_URL and _VECTOR_URL (or --data-dir)
    name; each --to-* option names a target, and only stores with a target are copied. S3 and
    Milvus targets use the VIEWFINDER_S3_* and VIEWFINDER_MILVUS_* settings. Stop the server
    first. Running it again is safe: what a target already holds is skipped.
    """
    if not (to_database_url or to_blob_url or to_vector_url):
        raise click.UsageError("name a target: --to-database-url, --to-blob-url, --to-vector-url")
    settings = settings_from(data_dir=data_dir)
    _configure_logging(settings)
    try:
        copied = _migrate(settings, to_database_url, to_blob_url, to_vector_url, batch_size)
    except ViewfinderError as exc:
        fail(exc)
    click.echo(
        f"copied {copied.keys} keys, {copied.images} of {copied.images_seen} images, "
        f"{copied.bytes_copied} image files, {copied.vectors} vectors",
        err=True,
    )
    if copied.bytes_missing:
        click.echo(f"warning: {copied.bytes_missing} image files were missing", err=True)
    if copied.in_place_left:
        click.echo(
            f"warning: {copied.in_place_left} images are indexed in place, and their paths are "
            "not copied: add --to-blob-url to copy their bytes from the files",
            err=True,
        )
    click.echo(
        "Point VIEWFINDER_DATABASE_URL / _BLOB_URL / _VECTOR_URL at the targets, and give every "
        "API process the same VIEWFINDER_SECRET_KEY (the embedded server keeps it in "
        f"{settings.data_dir.resolve() / 'secret_key'}).",
        err=True,
    )


def _migrate(
    settings: Settings,
    to_database_url: str | None,
    to_blob_url: str | None,
    to_vector_url: str | None,
    batch_size: int,
) -> _Copied:
    from ..stores.factory import open_blobs, open_metadata

    copied = _Copied()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    source = open_metadata(settings.resolved_database_url(), settings)
    closing: list[Any] = [source]
    try:
        source.migrate()
        target = None
        if to_database_url:
            target = open_metadata(to_database_url, settings)
            closing.append(target)
            target.migrate()
            copied.keys = target.import_keys(source.export_keys())
        blobs = None
        if to_blob_url:
            from ..stores.in_place_blobs import InPlaceBlobStore

            # images indexed in place are copied from the user's files (checked against their
            # hash): the target keeps copies, as a server does of what it is sent
            src_blobs = InPlaceBlobStore(
                open_blobs(settings.resolved_blob_url(), settings),
                source.in_place_files_with_sha,
            )
            closing.append(src_blobs)
            dst_blobs = open_blobs(to_blob_url, settings)
            closing.append(dst_blobs)
            blobs = (src_blobs, dst_blobs)
        tenants: set[str] = set()
        if target is not None or blobs is not None:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="vf-copy") as pool:
                for records, jobs in source.iter_images(batch_size):
                    copied.images_seen += len(records)
                    tenants.update(r.tenant for r in records)
                    if blobs is not None:  # bytes before the rows that point at them
                        shas = sorted({r.sha256 for r in records if r.sha256})
                        for outcome in pool.map(lambda s: _copy_blob(s, *blobs), shas):
                            copied.bytes_copied += outcome == "copied"
                            copied.bytes_missing += outcome == "missing"
                    if target is not None:
                        copied.images += target.import_images(records, jobs)
                    logging.getLogger(__name__).info("%d images done", copied.images_seen)
        if target is not None and blobs is None:
            copied.in_place_left = sum(len(source.in_place_files(t)) for t in sorted(tenants))
        if to_vector_url:
            copied.vectors = _copy_vectors(settings, to_vector_url)
    finally:
        for store in reversed(closing):
            store.close()
    return copied


def _copy_blob(sha256: str, source: Any, target: Any) -> str:
    if target.exists(sha256):
        return "present"
    try:
        data = source.get(sha256)
    except NotFound:
        logging.getLogger(__name__).warning("image file %s is missing from the source", sha256)
        return "missing"
    target.put(sha256, data)
    return "copied"


def _copy_vectors(settings: Settings, to_vector_url: str) -> int:
    from ..stores.factory import open_vectors

    source = open_vectors(settings.resolved_vector_url(), settings=settings)
    try:
        stored = source.stored_model()
        if stored is None:
            return 0
        source.open(stored.model_id, stored.dim, stored.spec)
        target = open_vectors(to_vector_url, settings=settings)
        try:
            target.open(stored.model_id, stored.dim, stored.spec)  # refuses another model
            count = 0
            for ids, tenants, vectors in source.iter_vectors(1000):
                target.upsert(ids, tenants, vectors)
                count += len(ids)
            return count
        finally:
            target.close()
    finally:
        source.close()
