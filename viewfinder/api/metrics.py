"""Prometheus metrics of one process (`VIEWFINDER_METRICS=true`), served at `/metrics`.

Each app gets a registry of its own (never the library's global one), so several apps in one
process (tests) count apart. Counters and histograms are fed as things happen (requests by
the middleware, model calls by the inference pool, indexed images by the workers); the
gauges of what the stores hold (images per status, queue lag, vectors) are read from the
stores when Prometheus scrapes, from counts the stores keep (no table scan).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..disk_usage import disk_usage
from ..domain.records import IndexingStatus
from ..domain.service import ImageService
from ..embedders.pool import InferencePool
from ..errors import ViewfinderError

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _StoreCollector(Collector):
    """Gauges read from the stores at scrape time."""

    def __init__(
        self,
        service: ImageService,
        last_batch_at: Callable[[], float | None] | None,
        storage: Mapping[str, Path],
    ) -> None:
        self.service = service
        self.last_batch_at = last_batch_at
        self.storage = storage

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        try:
            images = GaugeMetricFamily(
                "viewfinder_images", "Images by indexing status (all tenants).", labels=["status"]
            )
            for status in IndexingStatus:
                images.add_metric([status.label], svc.metadata.count_images(status))
            yield images
            oldest = svc.metadata.oldest_queued_at()
            yield GaugeMetricFamily(
                "viewfinder_queue_lag_seconds",
                "Age of the longest-waiting queued image (0: the queue is empty).",
                value=0.0 if oldest is None else max(0.0, time.time() - oldest),
            )
        except ViewfinderError as exc:
            log.info("metrics: the metadata store did not answer: %s", exc.message)
        try:
            yield GaugeMetricFamily(
                "viewfinder_vectors", "Vectors in the active index.", value=svc.vectors.count()
            )
        except ViewfinderError as exc:
            log.info("metrics: the vector index did not answer: %s", exc.message)
        yield from self._storage()
        if self.last_batch_at is not None:
            at = self.last_batch_at()
            if at is not None:
                yield GaugeMetricFamily(
                    "viewfinder_last_batch_timestamp_seconds",
                    "When this process's workers last committed a batch (Unix time).",
                    value=at,
                )

    def _storage(self) -> Iterator[Metric]:
        """Free and total bytes of the file system under each store on this machine's disk,
        so that an alert can fire before a full disk turns writes into 503s."""
        free = GaugeMetricFamily(
            "viewfinder_storage_free_bytes",
            "Bytes free to this process on the file system of each store on a local disk.",
            labels=["store"],
        )
        size = GaugeMetricFamily(
            "viewfinder_storage_capacity_bytes",
            "Size of the file system of each store on a local disk.",
            labels=["store"],
        )
        for store, path in self.storage.items():
            usage = disk_usage(path)
            if usage is not None:
                free.add_metric([store], usage.free)
                size.add_metric([store], usage.total)
        yield free
        yield size


class Metrics:
    """The metrics of one process, in a registry of its own."""

    def __init__(
        self,
        service: ImageService,
        *,
        last_batch_at: Callable[[], float | None] | None = None,
        storage: Mapping[str, Path] | None = None,
    ) -> None:
        """`storage`: the local paths of the stores (`stores.factory.local_storage`), whose
        file systems' free space is reported."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "viewfinder_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "viewfinder_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.indexed = Counter(
            "viewfinder_images_indexed",
            "Images this process's workers indexed (rate: indexing throughput).",
            registry=self.registry,
        )
        self.inference = Histogram(
            "viewfinder_inference_duration_seconds",
            "Time of one model call (an image batch or query texts), slot wait excluded.",
            ["kind"],
            buckets=_INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.inference_items = Counter(
            "viewfinder_inference_items",
            "Images or texts embedded, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(service, last_batch_at, storage or {}))
        self._unobserve: Callable[[], None] | None = None
        pool = getattr(service.embedder, "pool", None)  # the BoundedEmbedder's InferencePool
        if isinstance(pool, InferencePool):
            self._unobserve = pool.observe(self.model_call)

    def model_call(self, kind: str, count: int, seconds: float) -> None:
        """Record one model call (an InferencePool observer)."""
        self.inference.labels(kind).observe(seconds)
        self.inference_items.labels(kind).inc(count)

    def batch_indexed(self, images: int) -> None:
        """Record a committed batch (an IndexingWorker observer)."""
        self.indexed.inc(images)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered HTTP request."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop observing the model."""
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (not its path: ids would
    make a series per image); requests no route matched count as `unmatched`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.request(
                scope.get("method", ""),
                route_template(scope),
                status,
                time.perf_counter() - started,
            )


_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/v1/images/{image_id}`), or `unmatched`.

    A route of a router included under a prefix may know only its own part of the template
    (`/images/{image_id}`); the prefix is what the request's path has before that part.
    """
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    params = scope.get("path_params") or {}
    rendered = _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)
    path: str = scope.get("path", "")
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + template
    return template
