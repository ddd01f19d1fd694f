"""Retrieval evaluation on a captioned image folder: loading, ranking metrics, calibration.

Pure functions over numpy arrays; no HTTP, no model. A captioned folder is::

    DIR/images/<file>          the photos
    DIR/captions.jsonl         one {"image": "<file>", "captions": ["...", ...]} per line

Every caption is a text query whose one relevant image is the image it describes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ValidationError

logger = logging.getLogger(__name__)

CAPTIONS_FILE = "captions.jsonl"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class CaptionedImage:
    """One image of a captioned folder and the captions that describe it."""

    path: Path
    captions: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class RetrievalMetrics:
    """Text-to-image retrieval figures; recalls are percentages, ranks start at 1."""

    n_queries: int
    n_images: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    median_rank: float
    mean_rank: float


@dataclass(frozen=True)
class CalibrationRow:
    """Precision and recall of "score >= threshold" as a relevance decision."""

    threshold: float
    precision: float | None  # None when nothing reaches the threshold
    recall: float
    predicted: int
    relevant: int


def _bad(path: Path, message: str) -> ValidationError:
    return ValidationError(f"{path}: {message}", param="path")


def load_captioned_folder(path: Path | str) -> list[CaptionedImage]:
    """Read `images/` and `captions.jsonl` of a captioned folder, checking both."""
    root = Path(path)
    images, captions_file = root / IMAGES_DIR, root / CAPTIONS_FILE
    if not root.is_dir():
        raise _bad(root, "not a directory")
    if not images.is_dir():
        raise _bad(root, f"no {IMAGES_DIR}/ directory (expected {IMAGES_DIR}/ and {CAPTIONS_FILE})")
    if not captions_file.is_file():
        raise _bad(root, f"no {CAPTIONS_FILE} (one JSON object per line)")
    items: list[CaptionedImage] = []
    seen: set[str] = set()
    with captions_file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{CAPTIONS_FILE} line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _bad(root, f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise _bad(root, f"{where}: expected an object")
            image, caps = row.get("image"), row.get("captions")
            if not isinstance(image, str) or not image or Path(image).name != image:
                raise _bad(root, f'{where}: "image" must be a file name inside {IMAGES_DIR}/')
            if (
                not isinstance(caps, list)
                or not caps
                or not all(isinstance(c, str) and c.strip() for c in caps)
            ):
                raise _bad(root, f'{where}: "captions" must be a non-empty list of strings')
            if image in seen:
                raise _bad(root, f"{where}: image {image!r} listed twice")
            if not (images / image).is_file():
                raise _bad(root, f"{where}: {IMAGES_DIR}/{image} does not exist")
            seen.add(image)
            items.append(CaptionedImage(images / image, tuple(caps)))
    if not items:
        raise _bad(root, f"{CAPTIONS_FILE} lists no images")
    logger.debug("loaded %d captioned images from %s", len(items), root)
    return items


def caption_queries(items: Sequence[CaptionedImage]) -> tuple[list[str], np.ndarray]:
    """Every caption as a query, with the index of its image as the target."""
    texts = [c for item in items for c in item.captions]
    targets = np.array([i for i, item in enumerate(items) for _ in item.captions], dtype=np.int64)
    return texts, targets


def _rank_stats(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: images scored strictly above the target, and other images tied with it."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError("scores must be (n_queries, n_images) and targets (n_queries,)")
    if targets.size and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError("a target is not a valid image index")
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    greater = (scores > target_scores).sum(axis=1)
    ties = (scores == target_scores).sum(axis=1) - 1
    return greater, ties


def recall_at(greater: np.ndarray, ties: np.ndarray, k: int) -> float:
    """Percent of queries whose target lands in the top k, ties broken uniformly at random."""
    if greater.size == 0:
        return 0.0
    # the target's rank is uniform on greater+1 .. greater+ties+1
    p = np.clip((k - greater) / (ties + 1.0), 0.0, 1.0)
    return float(100.0 * p.mean())


def rank_metrics(scores: np.ndarray, targets: np.ndarray) -> RetrievalMetrics:
    """Recall@1/5/10 and median rank of each query's target image, ties counted fairly."""
    greater, ties = _rank_stats(scores, targets)
    expected_rank = 1.0 + greater + ties / 2.0
    n = int(greater.size)
    return RetrievalMetrics(
        n_queries=n,
        n_images=int(np.asarray(scores).shape[1]),
        recall_at_1=recall_at(greater, ties, 1),
        recall_at_5=recall_at(greater, ties, 5),
        recall_at_10=recall_at(greater, ties, 10),
        median_rank=float(np.median(expected_rank)) if n else math.nan,
        mean_rank=float(expected_rank.mean()) if n else math.nan,
    )


def caption_subsets(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean masks of the queries that name a colour ("colour") or a person ("person")."""
    from .embedders.builtin.colours import names_colour
    from .embedders.builtin.people import names_person

    return {
        "colour": np.array([names_colour(t) for t in texts], dtype=bool),
        "person": np.array([names_person(t) for t in texts], dtype=bool),
    }


def subset_metrics(
    scores: np.ndarray, targets: np.ndarray, texts: Sequence[str]
) -> dict[str, RetrievalMetrics]:
    """`rank_metrics` over the colour-caption and the person-caption queries separately."""
    s, t = np.asarray(scores), np.asarray(targets)
    return {name: rank_metrics(s[m], t[m]) for name, m in caption_subsets(texts).items()}


def relevance_matrix(targets: np.ndarray, n_images: int) -> np.ndarray:
    """Boolean (n_queries, n_images): True where the image is the query's target."""
    targets = np.asarray(targets, dtype=np.int64)
    rel = np.zeros((targets.size, n_images), dtype=bool)
    rel[np.arange(targets.size), targets] = True
    return rel


def calibration_table(
    scores: np.ndarray, relevant: np.ndarray, thresholds: Sequence[float] = (0.3, 0.5, 0.7)
) -> list[CalibrationRow]:
    """Precision/recall of treating `score >= threshold` as "relevant", per threshold."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    r = np.asarray(relevant, dtype=bool).ravel()
    if s.shape != r.shape:
        raise ValueError("scores and relevant must have the same shape")
    n_rel = int(r.sum())
    rows = []
    for t in thresholds:
        hit = s >= t
        predicted, true_pos = int(hit.sum()), int((hit & r).sum())
        rows.append(
            CalibrationRow(
                threshold=float(t),
                precision=true_pos / predicted if predicted else None,
                recall=true_pos / n_rel if n_rel else 0.0,
                predicted=predicted,
                relevant=n_rel,
            )
        )
    return rows


def fit_logistic(
    similarities: np.ndarray,
    relevant: np.ndarray,
    *,
    balanced: bool = False,
    iterations: int = 100,
) -> tuple[float, float]:
    """Fit P(relevant) = 1 / (1 + exp(-slope * (s - center))) by Newton's method.

    `balanced` weighs the relevant and the irrelevant pairs equally in total, so that the
    fitted 0.5 is where a similarity is as likely to come from a match as from a non-match
    (likelihood ratio 1), however rare matches are: how the built-in model is calibrated.
    Returns (center, slope) for `viewfinder.embedders.base.logistic`.
    """
    s = np.asarray(similarities, dtype=np.float64).ravel()
    y = np.asarray(relevant, dtype=np.float64).ravel()
    if s.shape != y.shape or not (0 < y.sum() < y.size):
        raise ValueError("need matching arrays with both relevant and irrelevant pairs")
    if balanced:
        weight = np.where(y > 0, 0.5 / y.sum(), 0.5 / (y.size - y.sum())) * y.size
    else:
        weight = np.ones_like(y)
    a, b = 0.0, 0.0  # logit = a * s + b
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * s + b)))
        w = weight * p * (1.0 - p) + 1e-12
        g = np.array([(weight * (p - y) * s).sum(), (weight * (p - y)).sum()])
        h = np.array([[(w * s * s).sum(), (w * s).sum()], [(w * s).sum(), w.sum()]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(-b / a), float(a)
