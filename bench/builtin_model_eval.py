"""Evaluate the built-in model on a captioned folder (default: ../shared/data/coco_mini).

Embeds the images directly with BuiltinEmbedder (no server), every caption as a query, and
prints Recall@1/5/10, median rank, images/s (open + decode + preprocess + inference, batched),
per-query text-embedding latency, the fitted logistic calibration and precision/recall of the
calibrated score at 0.3/0.5/0.7. Writes the figures to bench/results/builtin_model_*.json.

    python bench/builtin_model_eval.py [--variant lite2] [--text-model minilm] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.embedders.blas import limit_blas_threads  # noqa: E402
from viewfinder.embedders.builtin import BuiltinEmbedder  # noqa: E402
from viewfinder.evaluation import (  # noqa: E402
    calibration_table,
    caption_queries,
    fit_logistic,
    load_captioned_folder,
    rank_metrics,
    relevance_matrix,
    subset_metrics,
)

BATCH = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "coco_mini")
    parser.add_argument("--variant", default="lite2")
    parser.add_argument("--text-model", default="minilm")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: auto)")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="numpy's BLAS threads, as a process that loads a model sets them (0: its default)",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "viewfinder-bench" / "builtin"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--train-with",
        type=Path,
        nargs="*",
        default=[ROOT.parent / "shared" / "data" / "tiny_coco"],
        help="other folders the projection trains on in cross-validation",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    items = load_captioned_folder(args.data)
    texts, targets = caption_queries(items)

    limit_blas_threads(args.blas_threads)
    t0 = time.perf_counter()
    emb = BuiltinEmbedder(
        args.cache, variant=args.variant, text_model=args.text_model, intra_op_threads=args.threads
    )
    load_s = time.perf_counter() - t0
    emb.embed_images([Image.new("RGB", (64, 64))])  # warm-up outside the timing

    # Each batch is timed through recipe 3 (embed_images) and, right after it, through recipe
    # 2's path (class probabilities -> ConSE, no projection, no colour) with the same decoded
    # images, so that both see the same machine load.
    chunks = []
    image_s = recipe2_s = 0.0
    for start in range(0, len(items), BATCH):
        t0 = time.perf_counter()
        images = []
        for item in items[start : start + BATCH]:
            with Image.open(item.path) as im:
                images.append(im.convert("RGB"))
        decode_s = time.perf_counter() - t0
        chunks.append(emb.embed_images(images))
        image_s += time.perf_counter() - t0
        t1 = time.perf_counter()
        _recipe2_vectors(emb, images)
        recipe2_s += decode_s + time.perf_counter() - t1
    image_vecs = np.concatenate(chunks)

    emb.embed_texts(["warm up"])
    latencies = []
    for text in texts[:200]:
        t1 = time.perf_counter()
        emb.embed_texts([text])
        latencies.append(1000.0 * (time.perf_counter() - t1))
    query_vecs = emb.embed_texts(texts)

    sims = query_vecs @ image_vecs.T
    metrics = rank_metrics(sims, targets)
    relevant = relevance_matrix(targets, len(items))
    center, slope = fit_logistic(sims, relevant, balanced=True)
    calibrated = np.stack([emb.calibrate(sims[i], query_vecs[i]) for i in range(len(texts))])
    table = calibration_table(calibrated, relevant)

    result = {
        "model_id": emb.model_id,
        "data": str(args.data),
        "n_images": len(items),
        "n_queries": len(texts),
        "metrics": asdict(metrics),
        "images_per_s": len(items) / image_s,
        "images_per_s_recipe2_path": len(items) / recipe2_s,
        "query_ms_median": statistics.median(latencies),
        "query_ms_p90": float(np.percentile(latencies, 90)),
        "load_s": load_s,
        "threads": args.threads,
        "fitted_calibration": {"center": center, "slope": slope},
        "shipped_calibration": {
            "center": emb.recipe.calibration_center,
            "slope": emb.recipe.calibration_slope,
        },
        "calibration_table": [asdict(r) for r in table],
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
    }
    cv = _cross_validation(emb, args, texts, targets, relevant)
    result["cross_validation"] = cv
    m = metrics
    print(f"model            {emb.model_id}")
    print(f"queries/images   {len(texts)} / {len(items)}")
    if emb.shipped() is not None:
        print("(the shipped model's projection was trained on coco_mini: the next lines are")
        print(" in-sample; the cross-validated figures at the end are the ones to quote)")
    print(
        f"Recall@1/5/10    {m.recall_at_1:.1f} / {m.recall_at_5:.1f} / {m.recall_at_10:.1f}"
        f"   median rank {m.median_rank:g}   mean rank {m.mean_rank:.1f}"
    )
    print(
        f"images/s         {result['images_per_s']:.1f}  (open+decode+embed, batch {BATCH}; "
        f"recipe 2's path on the same batches {result['images_per_s_recipe2_path']:.1f})"
    )
    print(
        f"query ms         median {result['query_ms_median']:.2f}  p90 {result['query_ms_p90']:.2f}"
    )
    print(
        f"calibration fit  center {center:.4f} slope {slope:.2f} (balanced; shipped "
        f"{emb.recipe.calibration_center} / {emb.recipe.calibration_slope})"
    )
    for row in table:
        prec = "-" if row.precision is None else f"{row.precision:.3f}"
        print(
            f"score >= {row.threshold:.1f}   precision {prec}  recall {row.recall:.3f}"
            f"  ({row.predicted} pairs)"
        )
    _print_cv(cv)
    out = (
        args.out
        or ROOT / "bench" / "results" / f"builtin_model_{args.variant}_{args.text_model}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def _recipe2_vectors(emb: BuiltinEmbedder, images: list[Image.Image]) -> np.ndarray:
    """Recipe 2's image vectors: ConSE alone (for the speed comparison)."""
    from viewfinder.embedders.builtin import conse_vectors

    classes, mean = emb._class_table()
    return conse_vectors(emb.recipe, emb.class_weights(images), classes, mean)


def _cross_validation(
    emb: BuiltinEmbedder,
    args: argparse.Namespace,
    texts: list[str],
    targets: np.ndarray,
    relevant: np.ndarray,
) -> dict[str, object]:
    """k-fold figures: each photo embedded by a projection not trained on it (train_projection)."""
    from viewfinder.embedders.builtin import train_projection as tp

    if emb.shipped() is None:
        return {}
    cache = Path(tempfile.gettempdir()) / "viewfinder-train"
    target = tp.extract(emb, args.data, cache)
    others = [tp.extract(emb, d, cache) for d in args.train_with]
    folds = tp.cross_validate(emb, target, others)
    scores = tp.calibrate_out_of_fold(folds, relevant)
    out: dict[str, object] = {
        "folds": tp.FOLDS,
        "trained_with": [str(d) for d in args.train_with],
        "metrics": asdict(rank_metrics(folds.sims, targets)),
        "subsets": {k: asdict(v) for k, v in subset_metrics(folds.sims, targets, texts).items()},
        "recipe2_metrics": asdict(rank_metrics(folds.conse_sims, targets)),
        "recipe2_subsets": {
            k: asdict(v) for k, v in subset_metrics(folds.conse_sims, targets, texts).items()
        },
        "calibration_table": [asdict(r) for r in calibration_table(scores, relevant)],
        "others_kept": {str(t): float((scores[~relevant] >= t).mean()) for t in (0.3, 0.5, 0.7)},
    }
    return out


def _print_cv(cv: dict[str, object]) -> None:
    if not cv:
        return
    print(f"--- {cv['folds']}-fold cross-validation (every photo embedded out of fold) ---")
    rows = [("all", cv["metrics"], cv["recipe2_metrics"])]
    for name in ("colour", "person"):
        rows.append((name, cv["subsets"][name], cv["recipe2_subsets"][name]))  # type: ignore[index]
    for name, m, base in rows:
        print(
            f"{name:<7} R@1/5/10 {m['recall_at_1']:.1f} / {m['recall_at_5']:.1f} / "  # type: ignore[index]
            f"{m['recall_at_10']:.1f}  ({m['n_queries']} queries; ConSE alone: "  # type: ignore[index]
            f"{base['recall_at_1']:.1f} / {base['recall_at_5']:.1f} / {base['recall_at_10']:.1f})"  # type: ignore[index]
        )
    kept = cv["others_kept"]
    for row in cv["calibration_table"]:  # type: ignore[attr-defined]
        prec = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        print(
            f"score >= {row['threshold']:.1f}   precision {prec}  recall {row['recall']:.3f}  "
            f"others kept {100 * kept[str(row['threshold'])]:.1f}%"  # type: ignore[index]
        )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
