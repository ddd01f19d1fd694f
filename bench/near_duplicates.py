"""Near-duplicate groups on coco_mini copies: vectors alone vs vectors confirmed by a dHash.

Each coco_mini photo gets three copies: re-encoded as JPEG at quality 60, resized to half,
and cropped by 10% (5% off every side). The built-in model embeds all of them; duplicate
groups are formed the way `viewfinder.domain.duplicates` forms them (each image's nearest
neighbours above a cosine threshold, joined into groups), and scored by pair precision and
recall against the true groups (a photo and its copies). It also fits the image-to-image
calibration (`calibrate_image`): a balanced logistic on the cosine between distinct photos
whose COCO label sets overlap by half or more (Jaccard) against the other pairs.

    python bench/near_duplicates.py [--data ../shared/data/coco_mini] [--model builtin|fake]

Skips (exit 0) when the data folder is absent. Writes bench/results/near_duplicates.json.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.config import Settings  # noqa: E402
from viewfinder.domain.duplicates import DuplicateLimits, group_pairs, link  # noqa: E402
from viewfinder.domain.perceptual_hash import dhash, hamming_matrix  # noqa: E402
from viewfinder.domain.records import ImageRecord, IndexingStatus  # noqa: E402
from viewfinder.embedders.factory import load_embedder  # noqa: E402
from viewfinder.evaluation import fit_logistic  # noqa: E402

COPIES = ("jpeg_q60", "half_size", "crop_10pct")


def copies_of(image: Image.Image) -> list[Image.Image]:
    """The three altered copies of one photo."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=60)
    jpeg = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
    dx, dy = image.width // 20, image.height // 20
    crop = image.crop((dx, dy, image.width - dx, image.height - dy))
    return [jpeg, half, crop]


def pair_scores(pred: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    """Pair precision, recall and F1."""
    tp = len(pred & truth)
    precision = tp / len(pred) if pred else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(pred)}


def grouped_pairs(edges: list[tuple[int, int]], n: int) -> set[tuple[int, int]]:
    """Every pair inside the groups that `edges` join."""
    pairs: set[tuple[int, int]] = set()
    for group in group_pairs([(str(a), str(b)) for a, b in edges]):
        members = sorted(int(m) for m in group)
        pairs |= {(a, b) for i, a in enumerate(members) for b in members[i + 1 :]}
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "coco_mini")
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--k", type=int, default=10, help="neighbours looked at per image")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    captions = args.data / "captions.jsonl"
    if not captions.exists():
        print(f"skipped: {captions} not found")
        return
    rows = [json.loads(line) for line in captions.read_text().splitlines() if line.strip()]
    embedder = load_embedder(Settings(model=args.model))

    images, group_of, labels = [], [], []
    for g, row in enumerate(rows):
        with Image.open(args.data / "images" / row["image"]) as im:
            original = im.convert("RGB")
        for picture in [original, *copies_of(original)]:
            images.append(picture)
            group_of.append(g)
        labels.append(set(row.get("labels", [])))
    n = len(images)
    t0 = time.perf_counter()
    vectors = np.concatenate([embedder.embed_images(images[s : s + 16]) for s in range(0, n, 16)])
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hashes = np.array([dhash(im) for im in images], dtype=np.int64)
    hash_ms = 1000 * (time.perf_counter() - t0) / n
    sims = vectors @ vectors.T
    ham = hamming_matrix(hashes)
    groups = np.array(group_of)
    truth = {(a, b) for a in range(n) for b in range(a + 1, n) if groups[a] == groups[b]}

    # the k nearest neighbours of each image, as the vector index would give them
    order = np.argsort(-sims, axis=1)[:, 1 : args.k + 1]
    candidates = [(a, int(b)) for a in range(n) for b in order[a]]

    def edges(cos_min: float, ham_max: int | None) -> list[tuple[int, int]]:
        return [
            (a, b)
            for a, b in candidates
            if sims[a, b] >= cos_min and (ham_max is None or ham[a, b] <= ham_max)
        ]

    sweep_vec = {
        f"{t:.2f}": pair_scores(grouped_pairs(edges(t, None), n), truth)
        for t in np.arange(0.70, 1.0, 0.02)
    }
    sweep_hash = {
        f"{t:.2f}/{h}": pair_scores(grouped_pairs(edges(t, h), n), truth)
        for t in np.arange(0.50, 0.96, 0.05)
        for h in (6, 10, 14, 18)
    }
    # the shipped rule (domain/duplicates.py `link`) at the default settings
    defaults = DuplicateLimits()
    records = [
        ImageRecord(str(n), "bench", IndexingStatus.INDEXED, 0.0, phash=int(hashes[n]))
        for n in range(n)
    ]
    shipped = [
        (a, b)
        for a, b in candidates
        if link(records[a], records[b], float(sims[a, b]), defaults) is not None
    ]
    at_defaults = pair_scores(grouped_pairs(shipped, n), truth)
    best_vec = max(sweep_vec.items(), key=lambda kv: kv[1]["f1"])
    best_hash = max(sweep_hash.items(), key=lambda kv: kv[1]["f1"])

    # image-to-image calibration over distinct originals: related = labels overlap >= half
    originals = np.flatnonzero(np.arange(n) % 4 == 0)
    o_sims = sims[np.ix_(originals, originals)]
    related = np.zeros_like(o_sims, dtype=bool)
    for i in range(len(originals)):
        for j in range(len(originals)):
            a, b = labels[i], labels[j]
            related[i, j] = i != j and bool(a | b) and len(a & b) / len(a | b) >= 0.5
    mask = ~np.eye(len(originals), dtype=bool)
    center, slope = fit_logistic(o_sims[mask], related[mask], balanced=True)
    copy_cos = [float(sims[a, b]) for a, b in truth]
    other_cos = o_sims[mask]

    result = {
        "model_id": embedder.model_id,
        "data": str(args.data),
        "photos": len(rows),
        "images": n,
        "copies": list(COPIES),
        "k": args.k,
        "embed_images_per_s": n / embed_s,
        "dhash_ms_per_image": hash_ms,
        "copy_cosine": {
            "min": min(copy_cos),
            "p5": float(np.percentile(copy_cos, 5)),
            "median": float(np.median(copy_cos)),
        },
        "distinct_photo_cosine": {
            "max": float(other_cos.max()),
            "p99": float(np.percentile(other_cos, 99)),
            "median": float(np.median(other_cos)),
        },
        "copy_hamming": {
            "max": int(max(ham[a, b] for a, b in truth)),
            "p95": float(np.percentile([ham[a, b] for a, b in truth], 95)),
        },
        "distinct_photo_hamming_min": int(ham[np.ix_(originals, originals)][mask].min()),
        "at_defaults": {
            "similarity": defaults.similarity,
            "max_hamming": defaults.max_hamming,
            **at_defaults,
        },
        "vectors_alone": {"best_threshold": best_vec[0], **best_vec[1], "sweep": sweep_vec},
        "vectors_and_dhash": {"best": best_hash[0], **best_hash[1], "sweep": sweep_hash},
        "image_calibration": {
            "center": center,
            "slope": slope,
            "related_pairs": int(related[mask].sum()),
            "pairs": int(mask.sum()),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "near_duplicates.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"model {embedder.model_id}: {len(rows)} photos x 4 = {n} images, k={args.k}")
    print(f"copy cosine min/p5/median {result['copy_cosine']}")
    print(f"distinct photos cosine {result['distinct_photo_cosine']}")
    print(
        f"copy hamming {result['copy_hamming']}, distinct min "
        f"{result['distinct_photo_hamming_min']}"
    )
    for name, best in (("vectors alone", best_vec), ("vectors + dHash", best_hash)):
        s = best[1]
        print(
            f"{name:16s} best at {best[0]}: precision {s['precision']:.3f} "
            f"recall {s['recall']:.3f} F1 {s['f1']:.3f}"
        )
    print(
        f"shipped defaults (cosine >= {defaults.similarity}, dHash <= {defaults.max_hamming}): "
        f"precision {at_defaults['precision']:.3f} recall {at_defaults['recall']:.3f}"
    )
    print(f"image calibration: center {center:.4f} slope {slope:.2f}")


if __name__ == "__main__":
    main()
