"""The FastAPI app factory: wires the service, auth, limits and error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from ..domain.keys import KeyRing
from ..domain.metadata_rules import MetadataLimits
from ..domain.readiness import Readiness, service_checks
from ..domain.service import ImageService
from ..domain.signing import UrlSigner, load_or_create_secret
from ..indexing.worker import WorkerPool
from .deps import AppContext
from .docs import install_docs
from .errors import install_error_handlers
from .health import health_router
from .metrics import Metrics, MetricsMiddleware
from .middleware import EdgeMiddleware
from .openapi import install_openapi
from .ratelimit import rate_limiter
from .routes import files_router, router
from .upload_form import REQUEST_IN_MEMORY, UploadRules, form_limits, spool_file_parts_to_disk
from .upload_memory import UploadMemoryMiddleware
from .web import install_web

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    service: ImageService,
    *,
    workers: WorkerPool | None = None,
) -> FastAPI:
    """Build the ASGI app over a started service; `workers` run for the app's lifetime."""
    readiness = Readiness(
        service_checks(service, settings.readiness_timeout_s), settings.readiness_timeout_s
    )
    metrics = None
    if settings.metrics:
        from ..stores.factory import local_storage  # the stores' URLs: which are on this disk

        last_batch = (lambda: workers.last_batch_at) if workers is not None else None
        metrics = Metrics(service, last_batch_at=last_batch, storage=local_storage(settings))
        if workers is not None:
            workers.observe(metrics.batch_indexed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if workers is not None:
            workers.start()
        try:
            yield
        finally:
            if workers is not None:
                workers.stop()
            readiness.close()
            if metrics is not None:
                metrics.close()

    uploads = UploadRules(
        max_images=settings.max_images_per_request,
        max_field_bytes=settings.max_upload_metadata_bytes,
        metadata=MetadataLimits(max_bytes=settings.max_metadata_bytes),
    )
    app = FastAPI(
        title="Viewfinder",
        version=__version__,
        description="Self-hosted natural-language image search; a drop-in for the image "
        "endpoints of the Reka Vision API.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from local copies, not from CDNs
        redoc_url=None,
        form_limits=form_limits(uploads),  # type: ignore[arg-type]  # a _FormLimits TypedDict
    )
    spool_file_parts_to_disk()
    secret = settings.secret_key or load_or_create_secret(settings.data_dir / "secret_key")
    app.state.ctx = AppContext(
        service=service,
        keys=KeyRing(service.metadata),
        limiter=rate_limiter(settings.rate_limits, service.metadata, settings.shared_rate_limits),
        signer=UrlSigner(secret, settings.url_ttl_s),
        public_url=settings.public_url,
        max_images_per_request=settings.max_images_per_request,
        uploads=uploads,
    )
    install_error_handlers(app)
    app.include_router(health_router(readiness, metrics))
    app.include_router(router, prefix="/v1")
    # The hosted API once served the same routes without /v1.
    app.include_router(router, include_in_schema=False)
    app.include_router(files_router)
    install_web(app, settings)
    install_docs(app)
    install_openapi(app)

    app.add_middleware(
        UploadMemoryMiddleware,
        budget_bytes=settings.upload_memory_bytes,
        per_request_bytes=REQUEST_IN_MEMORY,
    )
    app.add_middleware(
        EdgeMiddleware,
        max_request_bytes=settings.max_request_bytes,
        max_json_body_bytes=settings.max_json_body_bytes,
    )
    if metrics is not None:  # outermost: it sees every answer, the edge's 413s and 500s too
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
