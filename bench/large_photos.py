"""Phone-sized photos: decoding them no larger than the model needs (`decode_for_model`).

A phone photo is about 12 megapixels (4032 x 3024). Before, the indexing worker decoded every
photo to at most 1024 px on its long side (libjpeg at 1/2 scale for such a photo, then a
bicubic resize); now it decodes no larger than the model needs on the shorter side
(`min_image_side`: 520 px for the built-in model, libjpeg at 1/4 scale). This measures both
paths on the same photos:

- CPU time an image of decode + embed (with tags, as the worker does), in batches of 16, the
  two paths interleaved over several rounds (medians), one process;
- how alike the two paths' vectors are (cosine), and retrieval on coco_mini's captions with
  each (in-sample for the built-in model, whose projection saw coco_mini: compare the two
  columns, not the level).

There are no phone photos in the team's data, so coco_mini's 640 x 480 photos are enlarged to
4032 x 3024 (bicubic) and saved as JPEG at quality 90, about 1 MB each like a phone's: their
fine detail is blurred, but decoding cost depends on their pixel count and entropy coding.

    python bench/large_photos.py [--photos 239] [--rounds 3]

Writes bench/results/large_photos.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.domain.ingest import IngestLimits, decode_for_model  # noqa: E402
from viewfinder.embedders.base import min_image_side  # noqa: E402
from viewfinder.embedders.builtin import BuiltinEmbedder  # noqa: E402
from viewfinder.embedders.tags import TagLimits, embed_and_tag  # noqa: E402
from viewfinder.evaluation import load_captioned_folder, rank_metrics  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "coco_mini"
PHONE = (4032, 3024)


def enlarge(path: Path) -> bytes:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    size = PHONE if rgb.width >= rgb.height else PHONE[::-1]
    buf = io.BytesIO()
    rgb.resize(size, Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def run(
    embedder: BuiltinEmbedder, photos: list[bytes], min_side: int | None
) -> tuple[np.ndarray, float]:
    """Vectors and CPU seconds an image of decode + embed + tags, in batches of 16."""
    limits = IngestLimits()
    vectors = []
    cpu = time.process_time()
    for start in range(0, len(photos), 16):
        images = [decode_for_model(b, limits, min_side) for b in photos[start : start + 16]]
        vectors.append(embed_and_tag(embedder, images, TagLimits())[0])
    return np.concatenate(vectors), (time.process_time() - cpu) / len(photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=239)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the team's coco_mini at {DATA}")
    items = load_captioned_folder(DATA)[: args.photos]
    started = time.perf_counter()
    photos = [enlarge(item.path) for item in items]
    print(
        f"{len(photos)} photos enlarged to {PHONE[0]}x{PHONE[1]}, "
        f"{statistics.mean(len(p) for p in photos) / 1e6:.2f} MB each on average "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    embedder = BuiltinEmbedder(Path(tempfile.gettempdir()) / "viewfinder-bench" / "builtin")
    embedder.embed_images([Image.new("RGB", (64, 64))])  # load the model
    need = min_image_side(embedder)
    paths: dict[str, Callable[[], tuple[np.ndarray, float]]] = {
        "long side 1024 (before)": lambda: run(embedder, photos, None),
        f"shorter side {need} (now)": lambda: run(embedder, photos, need),
    }
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    vectors: dict[str, np.ndarray] = {}
    for n in range(args.rounds):
        for name, go in paths.items():
            vectors[name], seconds = go()
            cpu[name].append(seconds)
            print(f"round {n + 1}: {name:<26} {1000 * seconds:6.1f} ms CPU an image", flush=True)
    before, now = (vectors[name] for name in paths)
    cosine = (before * now).sum(1)
    captions = [c for item in items for c in item.captions]
    owner = np.array([i for i, item in enumerate(items) for _ in item.captions])
    queries = embedder.embed_texts(captions)
    out: dict[str, object] = {
        "machine": f"{platform.machine()} {len(os.sched_getaffinity(0))} cores",
        "photos": len(photos),
        "photo_size": list(PHONE),
        "model": embedder.model_id,
        "min_image_side": need,
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
    }
    for name, vecs in vectors.items():
        sims = queries @ vecs.T
        scores = np.stack([embedder.calibrate(sims[q], queries[q]) for q in range(len(captions))])
        m = rank_metrics(scores, owner)
        median_ms = 1000 * statistics.median(cpu[name])
        out[name] = {
            "cpu_ms_per_image_median": round(median_ms, 1),
            "cpu_ms_per_image_rounds": [round(1000 * s, 1) for s in cpu[name]],
            "r1": round(m.recall_at_1, 1),
            "r5": round(m.recall_at_5, 1),
            "r10": round(m.recall_at_10, 1),
        }
        print(
            f"{name:<26} median {median_ms:6.1f} ms CPU an image | "
            f"R@1/5/10 {m.recall_at_1:.1f} / {m.recall_at_5:.1f} / {m.recall_at_10:.1f}"
        )
    print(f"cosine between the paths' vectors: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    target = ROOT / "bench" / "results" / "large_photos.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
