"""Run a retrieval evaluation through the server's own code path (upload, worker, index)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Settings
from .domain.records import IndexingStatus, UploadItem
from .embedders.base import Embedder
from .evaluation import (
    CalibrationRow,
    RetrievalMetrics,
    calibration_table,
    caption_queries,
    load_captioned_folder,
    rank_metrics,
    relevance_matrix,
    subset_metrics,
)

EVAL_TENANT = "eval"


@dataclass(frozen=True)
class EvalReport:
    """Everything `viewfinder eval` prints."""

    model_id: str
    metrics: RetrievalMetrics
    images_per_s: float  # indexing only: loading (or building) the model is `load_s`
    query_ms: float
    failed: int
    calibration: list[CalibrationRow]
    load_s: float = 0.0  # loading the model (building it, on a machine's first run)
    # the same figures over the queries that name a colour ("colour") or a person ("person")
    subsets: dict[str, RetrievalMetrics] = field(default_factory=dict)


def run_eval(folder: Path, settings: Settings, embedder: Embedder | None = None) -> EvalReport:
    """Index a captioned folder into the data dir of `settings`, then query every caption."""
    from .bootstrap import build_service, warm_up, worker_options
    from .indexing.worker import IndexingWorker

    items = load_captioned_folder(folder)
    service = build_service(settings, embedder)
    try:
        service.start()
        load_s = warm_up(service.embedder)
        worker = IndexingWorker(service, worker_options(settings))
        started = time.perf_counter()
        records = service.upload(
            EVAL_TENANT,
            [UploadItem(data=i.path.read_bytes(), metadata={"file": i.name}) for i in items],
        )
        worker.drain(timeout_s=24 * 3600)
        worker.close()
        elapsed = time.perf_counter() - started
        ids = [r.image_id for r in records]
        column = {image_id: n for n, image_id in enumerate(ids)}
        failed = sum(service.get(EVAL_TENANT, i).status != IndexingStatus.INDEXED for i in ids)
        texts, targets = caption_queries(items)
        sims = np.full((len(texts), len(ids)), -np.inf, dtype=np.float32)
        scores = np.zeros_like(sims)
        query_started = time.perf_counter()
        qvecs = []
        for row, text in enumerate(texts):
            qvec = service.embedder.embed_texts([text])[0]
            qvecs.append(qvec)
            for image_id, sim in service.vectors.search(EVAL_TENANT, qvec, len(ids)):
                sims[row, column[image_id]] = sim
        query_ms = 1000 * (time.perf_counter() - query_started) / max(1, len(texts))
        for row, qvec in enumerate(qvecs):  # per query, as a search calibrates
            found = np.where(np.isfinite(sims[row]), sims[row], -1.0)
            scores[row] = service.embedder.calibrate(found, qvec)
        return EvalReport(
            model_id=service.embedder.model_id,
            metrics=rank_metrics(sims, targets),
            images_per_s=len(ids) / elapsed if elapsed else float("inf"),
            query_ms=query_ms,
            failed=failed,
            calibration=calibration_table(scores, relevance_matrix(targets, len(ids))),
            load_s=load_s,
            subsets=subset_metrics(sims, targets, texts),
        )
    finally:
        service.close()
