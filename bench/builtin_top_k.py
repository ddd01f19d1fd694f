"""How many classes each image mixes (ConSE's top_k), on top of recipe 4, by 5-fold CV (issue 11).

Dev only. Scores as `bench/builtin_r1_experiments.py` does (each coco_mini photo embedded by a
projection trained on tiny_coco + the other folds, blend 0.3, colour block, hubness k 5 weight
0.3), on four fold seeds, for ConSE vectors made with other `top_k`, temperatures and centring.
Then tiny_coco's photos the other way round, and the InfoNCE map on top of the current recipe
(a minute and a half). Recipe 5 took top_k 100 from here.

    python bench/builtin_top_k.py

Writes bench/results/builtin_top_k.json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builtin_r1_experiments as x  # noqa: E402  (shares its feature cache and scoring)

from viewfinder.embedders.builtin import conse_vectors  # noqa: E402
from viewfinder.embedders.builtin import train_projection as tp  # noqa: E402
from viewfinder.embedders.builtin.vision import softmax  # noqa: E402

SETTINGS = [  # (temperature, top_k, image centring)
    (2.0, 50, 1.5),
    (2.0, 100, 1.5),
    (2.0, 150, 1.5),
    (2.0, 200, 1.5),
    (2.0, 1000, 1.5),
    (1.5, 100, 1.5),
    (2.5, 100, 1.5),
    (2.0, 100, 1.0),
    (2.0, 100, 2.0),
]


def other_way_round() -> None:
    """tiny_coco's photos searched by 5-fold CV (projection trained on coco_mini + the other
    folds of tiny_coco), with the shipped pipeline (train_projection.cross_validate)."""
    from viewfinder.evaluation import rank_metrics, subset_metrics

    shipped = x.emb.recipe
    for k in (50, 100, 200):
        object.__setattr__(x.emb, "recipe", replace(shipped, top_k=k))
        coco = tp.extract(x.emb, x.DATA / "coco_mini", x.cache)
        tiny = tp.extract(x.emb, x.DATA / "tiny_coco", x.cache)
        cv = tp.cross_validate(x.emb, tiny, [coco], with_bank=False)
        m = rank_metrics(cv.sims, tiny.owner)
        s = subset_metrics(cv.sims, tiny.owner, tiny.captions)
        x.rows.append(
            {
                "variant": f"tiny_coco by 5-fold CV, top_k {k}",
                "r1": m.recall_at_1,
                "r5": m.recall_at_5,
                "r10": m.recall_at_10,
                "colour_r1": s["colour"].recall_at_1,
                "person_r1": s["person"].recall_at_1,
            }
        )
        print(
            f"tiny_coco by 5-fold CV, top_k {k}: {m.recall_at_1:5.1f} {m.recall_at_5:5.1f} "
            f"{m.recall_at_10:5.1f} | colour {s['colour'].recall_at_1:5.1f}",
            flush=True,
        )
    object.__setattr__(x.emb, "recipe", shipped)


def infonce_on_top() -> None:
    """The InfoNCE map of builtin_r1_experiments.py (200 steps at 2e-4) on the current recipe."""
    for seed in (0, 1, 2, 3):
        x.fold = tp.fold_ids(len(x.coco.images), seed=seed)
        (p,) = x.cv_many(x.contrastive(1.0, "zero", lr=2e-4, steps=(200,)))
        x.r4(f"seed {seed}: current recipe + InfoNCE map, 200 steps", p)


def main() -> None:
    raw = np.load(x.cache / x.tp.cache_name(x.emb, x.DATA / "coco_mini"))["logits"]
    classes, mean = x.emb._class_table()
    shipped = x.coco.conse.copy()
    for seed in (0, 1, 2, 3):
        x.fold = tp.fold_ids(len(x.coco.images), seed=seed)
        projection = x.cv(x.ridge(0.3))
        for temperature, k, centring in SETTINGS:
            recipe = replace(
                x.emb.recipe, temperature=temperature, top_k=k, image_centering=centring
            )
            p = softmax(raw, temperature)
            keep = np.argsort(-p, 1)[:, :k]
            w = np.zeros_like(p)
            np.put_along_axis(w, keep, np.take_along_axis(p, keep, 1), 1)
            x.coco.conse = conse_vectors(recipe, w / w.sum(1, keepdims=True), classes, mean)
            x.r4(f"seed {seed}: T {temperature}, top_k {k}, centring {centring}", projection)
    x.coco.conse = shipped
    other_way_round()
    infonce_on_top()
    out = x.ROOT / "bench" / "results" / "builtin_top_k.json"
    out.write_text(json.dumps(x.rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
