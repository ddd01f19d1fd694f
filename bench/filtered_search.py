"""Filtered search benchmark: latency and exactness at 100k vectors, embedded stores.

    python bench/filtered_search.py [--n 100000] [--queries 50] [--ann-threshold 20000]

Seeds one tenant of the embedded stores (SQLite metadata, the memory-mapped vector index
with its HNSW graph above `--ann-threshold`) with `n` indexed images of 384-d clustered unit
vectors and a `metadata.bucket` integer in 0..9999, then times `filtered_top_k` (what a
filtered search runs: the metadata store picks the passing ids, the index scores them) for
filters that keep 50%, 1% and 0.01% of the images, next to an unfiltered search. Every
filtered answer is compared with the exact top 10 among the passing images (numpy over all
their vectors): `exact_rate` is the share of queries answered exactly, `recall10` the mean
overlap. Prints the figures and writes bench/results/filtered_search.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.domain.filtered_search import DEFAULT_SCAN_LIMIT, filtered_top_k  # noqa: E402
from viewfinder.domain.filters import matches, parse_filter  # noqa: E402
from viewfinder.domain.records import ImageRecord, IndexingStatus  # noqa: E402
from viewfinder.embedders.base import l2_normalize  # noqa: E402
from viewfinder.stores.exact_vectors import ExactVectorIndex  # noqa: E402
from viewfinder.stores.sqlite_metadata import SqliteMetadataStore  # noqa: E402

DIM = 384
BUCKETS = 10_000
TENANT = "bench"
FILTERS: dict[str, dict[str, Any]] = {
    "50%": {"metadata.bucket": {"$lt": 5000}},
    "1%": {"metadata.bucket": {"$lt": 100}},
    "0.01%": {"metadata.bucket": 7},
    "1% upload_timestamp": {"upload_timestamp": {"$lt": 1_700_000_000 + 0.01 * 100_000}},
}


def seed(root: Path, n: int, ann_threshold: int) -> tuple[Any, ExactVectorIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = l2_normalize(rng.standard_normal((max(1, n // 200), DIM)).astype(np.float32))
    vectors = l2_normalize(
        centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIM)) / 19.6
    ).astype(np.float32)
    buckets = rng.permutation(np.arange(n) % BUCKETS)
    metadata = SqliteMetadataStore(root / "viewfinder.db")
    metadata.migrate()
    index = ExactVectorIndex(root / "vectors", ann_threshold=ann_threshold, background=False)
    index.open("bench-384", DIM)
    start = time.perf_counter()
    for lo in range(0, n, 10_000):
        hi = min(n, lo + 10_000)
        records = [
            ImageRecord(
                image_id=f"img-{i:07d}",
                tenant=TENANT,
                status=IndexingStatus.INDEXED,
                upload_timestamp=1_700_000_000 + float(i),
                metadata={"bucket": int(buckets[i]), "caption": f"image {i}"},
                sha256=f"{i:064x}",
            )
            for i in range(lo, hi)
        ]
        metadata.insert_images(records)
        index.upsert([r.image_id for r in records], [TENANT] * len(records), vectors[lo:hi])
    index.wait_for_builds()
    print(f"seeded {n} images in {time.perf_counter() - start:.1f} s", flush=True)
    return metadata, index, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ann-threshold", type=int, default=20_000)
    parser.add_argument("--scan-limit", type=int, default=DEFAULT_SCAN_LIMIT)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "filtered_search.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        metadata, index, vectors = seed(Path(tmp), args.n, args.ann_threshold)
        records = metadata.list_images(TENANT, args.n, 0)
        by_id = {r.image_id: r for r in records}
        rng = np.random.default_rng(1)
        queries = l2_normalize(
            vectors[rng.integers(0, args.n, args.queries)]
            + 0.02 * rng.standard_normal((args.queries, DIM))
        ).astype(np.float32)
        results: dict[str, Any] = {}

        def timed(fn: Any) -> tuple[list[float], list[list[str]]]:
            fn(queries[0])  # warm
            times, answers = [], []
            for q in queries:
                t0 = time.perf_counter()
                answers.append([i for i, _ in fn(q)])
                times.append((time.perf_counter() - t0) * 1000)
            return times, answers

        times, answers = timed(lambda q: index.search(TENANT, q, args.k))
        truths = [np.argsort(-(vectors @ q))[: args.k] for q in queries]
        overlap = [
            len({f"img-{i:07d}" for i in t} & set(a)) / args.k
            for t, a in zip(truths, answers, strict=True)
        ]
        # the unfiltered search's own recall: the HNSW graph's, the bar filtered search meets
        results["unfiltered"] = {**summary(times), "recall10": round(float(np.mean(overlap)), 4)}
        print(
            f"unfiltered: p50 {results['unfiltered']['p50_ms']:.1f} ms, "
            f"recall@10 {results['unfiltered']['recall10']}",
            flush=True,
        )
        ids = np.array([f"img-{i:07d}" for i in range(args.n)])
        for name, wire in FILTERS.items():
            where = parse_filter(wire)
            passing = np.array([matches(where, by_id[i]) for i in ids])
            rows = np.flatnonzero(passing)
            times, answers = timed(
                lambda q, where=where: filtered_top_k(
                    metadata, index, TENANT, q, args.k, where, args.scan_limit
                )
            )
            metadata_times, _ = timed(
                lambda q, where=where: [
                    (i, 0.0) for i in metadata.filtered_ids(TENANT, where, args.scan_limit + 1)
                ]
            )
            exact_hits, overlap = 0, 0.0
            for q, got in zip(queries, answers, strict=True):
                truth = ids[rows[np.argsort(-(vectors[rows] @ q), kind="stable")[: args.k]]]
                exact_hits += list(truth) == got
                overlap += len(set(truth) & set(got)) / max(1, len(truth))
            results[name] = {
                "filter": wire,
                "passing": int(len(rows)),
                "share": round(len(rows) / args.n, 6),
                **summary(times),
                "metadata_p50_ms": summary(metadata_times)["p50_ms"],
                "exact_rate": exact_hits / len(queries),
                "recall10": round(overlap / len(queries), 4),
            }
            r = results[name]
            print(
                f"{name:>20}: {r['passing']:6d} pass, p50 {r['p50_ms']:.1f} ms, "
                f"p95 {r['p95_ms']:.1f} ms (metadata {r['metadata_p50_ms']:.1f} ms), "
                f"exact {r['exact_rate']:.2f}, recall@10 {r['recall10']}",
                flush=True,
            )
        index.close()
        metadata.close()
    out = {
        "n": args.n,
        "dim": DIM,
        "k": args.k,
        "queries": args.queries,
        "ann_threshold": args.ann_threshold,
        "scan_limit": args.scan_limit,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
    }


if __name__ == "__main__":
    main()
