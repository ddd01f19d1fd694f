"""How far a colour signal can lift the built-in model's colour captions (issue 11), by 5-fold CV.

Dev only. Scores as `bench/builtin_r1_experiments.py` does (the current recipe: each coco_mini
photo embedded by a projection trained on tiny_coco + the other four folds, hubness k 5 weight
0.3, every caption searched against all 239 photos), with the colour block replaced by:

1. **an oracle**: for each photo, the colour words that the *other* captions of the photo use
   (the caption being searched is left out of its own photo's block). No image signal can know
   better which colours a person will name, so this bounds what any colour block over the same
   semantic part can reach;
2. **learned colour-naming models**: the chance that a caption names each colour, predicted
   from the photo's colour shares (subject, whole frame, the most coloured of 3 x 3 cells,
   background) and its pooled feature, trained on the training folds' captions; with the
   ranking quality (ROC AUC) of each signal for "the photo's captions name this colour";
3. the shipped block over white-balanced thumbnails.

    python bench/builtin_colour_ceiling.py

Writes bench/results/builtin_colour_ceiling.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builtin_r1_experiments as x  # noqa: E402  (shares its feature cache and folds)

from viewfinder.embedders.base import l2_normalize  # noqa: E402
from viewfinder.embedders.builtin import colours as c  # noqa: E402
from viewfinder.embedders.builtin import train_projection as tp  # noqa: E402
from viewfinder.evaluation import load_captioned_folder, rank_metrics, subset_metrics  # noqa: E402

coco, tiny = x.coco, x.tiny
rows: list[dict[str, object]] = []


def colour_inputs(folder: tp.Folder) -> dict[str, np.ndarray]:
    """Per photo (n, 11) colour shares: subject-weighted, whole frame, max cell, background."""
    path = x.cache / f"{folder.name}-colour-inputs-all.npz"
    if not path.is_file():
        items = load_captioned_folder(x.DATA / folder.name)
        thumbs, saliency = [], []
        for start in range(0, len(items), 16):
            batch = []
            for it in items[start : start + 16]:
                with Image.open(it.path) as im:
                    batch.append(im.convert("RGB"))
            out = x.emb._image_tower().forward(batch)
            thumbs.append(out.thumbnails)
            saliency.append(out.saliency)
        np.savez(path, thumbs=np.concatenate(thumbs), saliency=np.concatenate(saliency))
    d = np.load(path)
    member = c.pixel_terms(d["thumbs"])
    n, h, w, _ = member.shape
    subject = c.subject_weights(d["saliency"], (h, w))
    cells = np.zeros((n, len(c.TERMS)))
    for r in np.array_split(np.arange(h), 3):
        for q in np.array_split(np.arange(w), 3):
            cells = np.maximum(cells, member[:, r][:, :, q].mean((1, 2)))
    background = np.maximum(2.0 / (h * w) - subject, 0.0)
    background /= background.sum((1, 2), keepdims=True)
    return {
        "subject": np.einsum("nhwt,nhw->nt", member, subject),
        "whole": member.mean((1, 2)),
        "cell": cells,
        "background": np.einsum("nhwt,nhw->nt", member, background),
    }


def named(folder: tp.Folder) -> np.ndarray:
    """(photos, 11): the share of each photo's captions that name each colour term."""
    words = c.query_colours(folder.captions)
    n = len(folder.images)
    total = np.zeros((n, len(c.TERMS)))
    np.add.at(total, folder.owner, words)
    return total / np.bincount(folder.owner, minlength=n)[:, None]


def auc(signal: np.ndarray, target: np.ndarray) -> float:
    """Mean over colour terms named for 3+ photos of P(named photo ranks above an unnamed one)."""
    out = []
    for t in range(target.shape[1]):
        pos = target[:, t] > 0
        if pos.sum() >= 3:
            s = signal[:, t]
            above = (s[pos][:, None] > s[~pos][None]).mean()
            out.append(above + 0.5 * (s[pos][:, None] == s[~pos][None]).mean())
    return float(np.mean(out))


words = c.query_colours(x.texts)
semantic = x.blend((0.7, coco.conse), (0.3, x.cv(x.ridge(0.3))))
base = x.cap @ semantic.T - 0.3 * x.hub_offsets(x.images(semantic), "knn", k=5, cw=0.0)[None]
target = named(coco)


def score(name: str, bonus: np.ndarray, **extra: float) -> None:
    """Recipe 4's semantic similarities + `bonus` (queries x photos), as R@1/5/10 and subsets."""
    sims = base + bonus
    m = rank_metrics(sims, coco.owner)
    s = subset_metrics(sims, coco.owner, x.texts)
    row = {
        "variant": name,
        "r1": m.recall_at_1,
        "r5": m.recall_at_5,
        "r10": m.recall_at_10,
        "colour_r1": s["colour"].recall_at_1,
        **extra,
    }
    rows.append(row)
    print(
        f"{name:<62} {m.recall_at_1:5.1f} {m.recall_at_5:5.1f} {m.recall_at_10:5.1f}"
        f" | colour {s['colour'].recall_at_1:5.1f}"
        + "".join(f" | {k} {v:.3f}" for k, v in extra.items()),
        flush=True,
    )


def oracle() -> None:
    n = len(coco.images)
    total = np.zeros((n, len(c.TERMS)))
    np.add.at(total, coco.owner, words)
    count = np.bincount(coco.owner, minlength=n)
    own = (total[coco.owner] - words) / (count[coco.owner] - 1)[:, None]
    forms = {"share": lambda s: s, "sqrt share": np.sqrt, "named at all": lambda s: (s > 0) * 1.0}
    for form, f in forms.items():
        for cw in (0.1, 0.2, 0.3, 0.5):
            bonus = words @ f(total / count[:, None]).T
            bonus[np.arange(len(words)), coco.owner] = (words * f(own)).sum(1)
            score(f"oracle: other captions' colour words, {form}, cw {cw}", cw * bonus)


def fit_logistic_terms(features: np.ndarray, target: np.ndarray, lam: float) -> np.ndarray:
    """Newton steps of one logistic shared by all terms (features of the term + a bias per
    term), soft targets; `features` (photos, 11, p)."""
    a = with_term_bias(features)
    a, y = a.reshape(-1, a.shape[-1]), target.reshape(-1)
    w = np.zeros(a.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) / len(y) + lam * w
        hess = (a * (p * (1 - p))[:, None]).T @ a / len(y) + lam * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def with_term_bias(features: np.ndarray) -> np.ndarray:
    """(photos, 11, p) -> (photos, 11, p + 11): a one-hot of the term appended (its bias)."""
    return np.concatenate([features, np.broadcast_to(np.eye(11), (*features.shape[:2], 11))], -1)


def term_features(shares: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray:
    """(photos, 11, len(keys)): the log of each term's share under each weighting of `keys`."""
    return np.stack([np.log(shares[k] + 0.01) for k in keys], -1)


def ridge_fit(a: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, ...]:
    """Standardised ridge: mean, scale, coefficients, target mean."""
    mu, sd = a.mean(0), a.std(0) + 1e-6
    z = (a - mu) / sd
    coef = np.linalg.solve(z.T @ z + lam * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean(0)))
    return mu, sd, coef, y.mean(0)


def learned() -> None:
    inputs = {f.name: colour_inputs(f) for f in (coco, tiny)}
    for name in ("subject", "whole", "cell"):
        score(
            f"sqrt {name} share, cw 0.2",
            0.2 * words @ np.sqrt(inputs["coco_mini"][name]).T,
            auc=auc(inputs["coco_mini"][name], target),
        )
    tiny_target = named(tiny)
    for keys in (("subject",), ("subject", "whole"), ("subject", "whole", "cell", "background")):
        fc = term_features(inputs["coco_mini"], keys)
        ft = term_features(inputs["tiny_coco"], keys)
        for lam in (0.001, 0.01):
            p = np.zeros_like(target)
            for f in range(tp.FOLDS):
                train = x.fold != f
                w = fit_logistic_terms(
                    np.concatenate([fc[train], ft]),
                    np.concatenate([target[train], tiny_target]),
                    lam,
                )
                p[~train] = 1.0 / (1.0 + np.exp(-(with_term_bias(fc[~train]) @ w)))
            for cw in (0.02, 0.04):
                score(
                    f"logistic on log {'+'.join(keys)} shares ({lam}), log p, cw {cw}",
                    cw * words @ np.log(p).T,
                    auc=auc(p, target),
                )

    def design(folder: tp.Folder) -> np.ndarray:
        shares = [np.sqrt(inputs[folder.name][k]) for k in ("subject", "whole", "cell")]
        return np.concatenate([*shares, 0.3 * l2_normalize(folder.features)], 1)

    dc, dt = design(coco), design(tiny)
    for lam in (0.1, 1.0):
        p = np.zeros_like(target)
        for f in range(tp.FOLDS):
            train = x.fold != f
            mu, sd, coef, mean = ridge_fit(
                np.concatenate([dc[train], dt]), np.concatenate([target[train], tiny_target]), lam
            )
            p[~train] = (dc[~train] - mu) / sd @ coef + mean
        block = np.sqrt(np.maximum(p, 0.0))
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-6)
        score(
            f"ridge on shares + pooled feature ({lam}), sqrt p, cw 0.2",
            0.2 * words @ block.T,
            auc=auc(p, target),
        )


def white_balanced() -> None:
    """The shipped block over thumbnails white-balanced first (grey world: channel means made
    equal; white patch: channels' 97th percentiles made equal), at half or full strength."""
    d = np.load(x.cache / "coco_mini-colour-inputs-all.npz")
    thumbs, saliency = d["thumbs"].astype(np.float32), d["saliency"]
    pixels = thumbs.reshape(len(thumbs), -1, 3)
    refs = {
        "grey world": pixels.mean(1)[:, None, None, :],
        "white patch": np.percentile(pixels, 97, axis=1)[:, None, None, :],
    }
    for name, ref in refs.items():
        gain = ref.max(-1, keepdims=True) / np.maximum(ref, 1.0)
        for strength in (0.5, 1.0):
            balanced = np.clip(thumbs * gain**strength, 0, 255).astype(np.uint8)
            block = c.image_colours(balanced, saliency)
            score(
                f"{name} white balance, strength {strength}, cw 0.2",
                0.2 * words @ block.T,
                auc=auc(block, target),
            )


def main() -> None:
    score("shipped colour block (sqrt subject share, cw 0.2)", 0.2 * words @ coco.colours.T)
    score("no colour block", 0.0 * base)
    oracle()
    learned()
    white_balanced()
    out = x.ROOT / "bench" / "results" / "builtin_colour_ceiling.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
