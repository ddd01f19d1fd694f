"""Probes for orchestrators and load balancers: `/healthz`, `/readyz`, and `/metrics`.

- `GET /healthz`: the process is alive and its event loop answers; touches no store.
- `GET /readyz`: the stores answer, the model is loaded and the vector index is loaded: 200,
  or 503 with the error envelope naming the parts that are not ready. Every part's answer is
  in `checks`.
- `GET /metrics` (only with `VIEWFINDER_METRICS=true`): Prometheus text.

None needs a key and none counts against a rate limit. `viewfinder worker --health-port`
serves the same on a small app of its own (`worker_app`), with the queue lag and the time of
the last committed batch added to `/readyz`, and `HealthServer` runs it on a thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ..domain.readiness import Readiness
from ..errors import ViewfinderError
from .metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

Details = Callable[[], dict[str, Any]]


def health_router(
    readiness: Readiness,
    metrics: Metrics | None = None,
    details: Details | None = None,
) -> APIRouter:
    """The probe routes; `details` adds fields to `/readyz` (a worker's queue lag)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = await run_in_threadpool(readiness.run)
        body: dict[str, Any] = {
            "status": "ready",
            "checks": {
                r.name: {"ok": r.ok, "ms": r.ms, **({"error": r.error} if r.error else {})}
                for r in results
            },
        }
        if details is not None:
            try:
                body.update(await run_in_threadpool(details))
            except ViewfinderError as exc:  # extra facts only: readiness is the checks'
                log.info("readiness details unavailable: %s", exc.message)
        failing = [r for r in results if not r.ok]
        status = 200
        if failing:
            status = 503
            body["status"] = "not ready"
            body["error"] = {
                "type": "server_error",
                "message": "not ready: " + "; ".join(f"{r.name}: {r.error}" for r in failing),
            }
        return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})

    if metrics is not None:

        @router.get("/metrics")
        async def metrics_text() -> Response:
            body = await run_in_threadpool(metrics.render)
            return Response(body, media_type=CONTENT_TYPE)

    return router


def worker_app(
    readiness: Readiness,
    metrics: Metrics | None,
    last_batch_at: Callable[[], float | None],
    oldest_queued_at: Callable[[], float | None],
) -> FastAPI:
    """The probe app of a `viewfinder worker` process."""

    def details() -> dict[str, Any]:
        now = time.time()
        last = last_batch_at()
        oldest = oldest_queued_at()
        return {
            "queue_lag_s": 0.0 if oldest is None else round(max(0.0, now - oldest), 3),
            "last_batch_at": last,
            "last_batch_age_s": None if last is None else round(now - last, 3),
        }

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(health_router(readiness, metrics, details))
    return app


class HealthServer:
    """Serves an ASGI app on `host:port` from a daemon thread (uvicorn, no signal handlers:
    the process's own handlers stay in charge)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="vf-health", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit:  # uvicorn exits when it can't bind; `start` says so
            log.debug("the health server could not start")

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; returns once the port listens (raises if it can't)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the health port could not be opened (in use?)")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(5)
