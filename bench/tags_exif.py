"""What tags and EXIF cost, and what the built-in model's tags look like on real photos.

    python bench/tags_exif.py [--photos 60] [--batch 16]

- built-in model on coco_mini photos: seconds per image of `embed_images` against
  `embed_and_tag` (the worker's call: the same forward pass plus a softmax and a sort), how many
  tags an image gets under the default limits, its top tag's confidence, and how often a COCO
  label of the photo is among its tag names (a crude relevance figure: ImageNet's names rarely
  equal COCO's, e.g. "zebra" and "pizza" do, "dog" never: ImageNet names breeds);
- a CLIP-family model (the tiny test CLIP: its figures are about cost, not quality): the
  one-time embedding of the 1000 class prompts and the per-batch cost of zero-shot tagging;
- EXIF: `inspect_image` on a JPEG with a full EXIF block against the same JPEG without one.

CPU seconds are what the work costs (the machine is shared; wall times vary with its load).
Prints the figures and writes bench/results/tags_exif.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.exif_images import jpeg_with_exif  # noqa: E402
from viewfinder.config import Settings  # noqa: E402
from viewfinder.domain.ingest import IngestLimits, inspect_image  # noqa: E402
from viewfinder.embedders.builtin import BuiltinEmbedder, ModelCache  # noqa: E402
from viewfinder.embedders.onnx_clip import OnnxClipEmbedder  # noqa: E402
from viewfinder.embedders.tags import TagLimits  # noqa: E402
from viewfinder.testing import build_tiny_clip  # noqa: E402

COCO = ROOT.parent / "shared" / "data" / "coco_mini"


def cpu_seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    out = fn()
    return time.process_time() - started, out


def builtin_figures(photos: int, batch: int) -> dict[str, Any]:
    rows = [json.loads(line) for line in (COCO / "captions.jsonl").open()][:photos]
    images = [Image.open(COCO / "images" / r["image"]).convert("RGB") for r in rows]
    settings = Settings()
    embedder = BuiltinEmbedder(ModelCache(settings.resolved_cache_dir() / "builtin"))
    embedder.warm_up()
    embedder.embed_images(images[:2])
    limits = TagLimits(settings.max_tags, settings.min_tag_confidence)
    plain = tagged = 0.0
    tags: list[Any] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        plain += cpu_seconds(lambda c=chunk: embedder.embed_images(c))[0]
        spent, (_, got) = cpu_seconds(lambda c=chunk: embedder.embed_and_tag(c, limits))
        tagged += spent
        tags.extend(got)
    counts = [len(t) for t in tags]
    hits = sum(
        any(label in {t.name.lower() for t in row} for label in r.get("labels", []))
        for r, row in zip(rows, tags, strict=True)
    )
    return {
        "photos": len(images),
        "limits": {"max_tags": limits.max_tags, "min_confidence": limits.min_confidence},
        "embed_images_cpu_s_per_image": plain / len(images),
        "embed_and_tag_cpu_s_per_image": tagged / len(images),
        "tags_per_image_mean": statistics.mean(counts),
        "images_without_tags": sum(c == 0 for c in counts),
        "top_confidence_median": statistics.median(t[0].confidence for t in tags if t),
        "images_with_a_coco_label_among_tags": hits,
        "examples": {
            r["image"]: [(t.name, t.confidence) for t in row]
            for r, row in list(zip(rows, tags, strict=True))[:5]
        },
    }


def clip_figures(batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        clip = OnnxClipEmbedder(build_tiny_clip(Path(tmp) / "m"))
        images = [Image.new("RGB", (64, 64), (n * 15, 80, 200 - n * 10)) for n in range(batch)]
        vectors = clip.embed_images(images)
        first, _ = cpu_seconds(lambda: clip.embed_and_tag(images, TagLimits()))
        plain, _ = cpu_seconds(lambda: clip.embed_images(images))
        again, _ = cpu_seconds(lambda: clip.embed_and_tag(images, TagLimits()))
    return {
        "model": "tiny test CLIP (cost only)",
        "dim": int(vectors.shape[1]),
        "first_batch_extra_cpu_s": first - plain,  # the 1000 prompts, once per process
        "later_batch_extra_cpu_s_per_image": (again - plain) / batch,
    }


def exif_figures(repeat: int = 300) -> dict[str, Any]:
    limits = IngestLimits()
    with_exif = jpeg_with_exif(size=(640, 480))
    buf = io.BytesIO()
    Image.open(io.BytesIO(with_exif)).save(buf, "JPEG")  # the same pixels, no EXIF
    without = buf.getvalue()
    spent = {}
    for name, data in (("with_exif", with_exif), ("without_exif", without)):
        spent[name], _ = cpu_seconds(
            lambda d=data: [inspect_image(d, limits) for _ in range(repeat)]
        )
    return {
        "inspect_image_ms_with_exif": 1000 * spent["with_exif"] / repeat,
        "inspect_image_ms_without_exif": 1000 * spent["without_exif"] / repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    results: dict[str, Any] = {"exif": exif_figures(), "clip_zero_shot": clip_figures(args.batch)}
    if COCO.is_dir():
        results["builtin"] = builtin_figures(args.photos, args.batch)
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "tags_exif.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
