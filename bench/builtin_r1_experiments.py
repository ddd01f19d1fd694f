"""Variants tried for the built-in model's Recall@1 and colour captions (issue 11), by 5-fold CV.

Dev only. Every variant is scored as `bench/builtin_model_eval.py` scores the model: each
coco_mini photo embedded by a model trained on tiny_coco + the other four folds, searched by
every caption against all 239 photos. Uses the feature cache of ``train_projection.extract``
(the first run passes the photos through the towers once).

    python bench/builtin_r1_experiments.py

Prints one line per variant (R@1/5/10, colour- and person-caption R@1) and writes
bench/results/builtin_r1_experiments.json.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.embedders.base import l2_normalize  # noqa: E402
from viewfinder.embedders.builtin import BuiltinEmbedder  # noqa: E402
from viewfinder.embedders.builtin import train_projection as tp  # noqa: E402
from viewfinder.embedders.builtin.colours import WORDS, query_colours  # noqa: E402
from viewfinder.embedders.builtin.projection import Projection, fit_projection  # noqa: E402
from viewfinder.evaluation import rank_metrics, subset_metrics  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
B = 0.3  # colour block share (recipe 3)
rows: list[dict[str, object]] = []

emb = BuiltinEmbedder(Path(tempfile.gettempdir()) / "viewfinder-bench" / "builtin")
if __name__ == "__main__":
    # the variants below were measured on recipe 4 (50 classes an image); scripts that import
    # this module (builtin_colour_ceiling.py, builtin_top_k.py) run on the current recipe
    emb.recipe = replace(emb.recipe, top_k=50)
cache = Path(tempfile.gettempdir()) / "viewfinder-train"
coco = tp.extract(emb, DATA / "coco_mini", cache)
tiny = tp.extract(emb, DATA / "tiny_coco", cache)
fold = tp.fold_ids(len(coco.images))
texts = coco.captions
cap = l2_normalize(coco.caption_emb)

Fn = Callable[[list[tp.Folder], tp.Folder], np.ndarray]


def cv(fn: Fn) -> np.ndarray:
    """Gallery semantic vectors, each fold's photos by `fn(training folders, fold photos)`."""
    g = np.zeros((len(coco.images), cap.shape[1]), np.float32)
    for f in range(tp.FOLDS):
        g[fold == f] = fn([tp._train_part(coco, fold != f), tiny], tp._subset(coco, fold == f))
    return g


def queries(emb_rows: np.ndarray, caps: list[str], cw: float) -> np.ndarray:
    gain = cw * np.sqrt(1 - B * B) / B
    return l2_normalize(np.concatenate([l2_normalize(emb_rows), gain * query_colours(caps)], 1))


def images(sem: np.ndarray) -> np.ndarray:
    return np.concatenate([np.sqrt(1 - B * B) * sem, B * coco.colours], 1)


def score(
    name: str,
    sem: np.ndarray,
    cw: float = 0.2,
    q: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    weight: float = 0.0,
) -> None:
    q = queries(cap, texts, cw) if q is None else q
    sims = q @ images(sem).T
    if offsets is not None:
        sims = sims - weight * offsets[None, :]
    m = rank_metrics(sims, coco.owner)
    s = subset_metrics(sims, coco.owner, texts)
    row = {
        "variant": name,
        "r1": m.recall_at_1,
        "r5": m.recall_at_5,
        "r10": m.recall_at_10,
        "colour_r1": s["colour"].recall_at_1,
        "person_r1": s["person"].recall_at_1,
    }
    rows.append(row)
    print(
        f"{name:<58} {m.recall_at_1:5.1f} {m.recall_at_5:5.1f} {m.recall_at_10:5.1f}"
        f" | colour {s['colour'].recall_at_1:5.1f} | person {s['person'].recall_at_1:5.1f}",
        flush=True,
    )


def blend(*parts: tuple[float, np.ndarray]) -> np.ndarray:
    return l2_normalize(sum(w * x for w, x in parts))


def ridge(r: float, extra: float = 0.0) -> Fn:
    """The projection; `extra` > 0 appends `extra` x the ConSE vector to the pooled feature."""

    def x(t: tp.Folder) -> np.ndarray:
        f = l2_normalize(t.features)
        return np.concatenate([f, extra * t.conse], 1) if extra else f

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        p = fit_projection(
            np.concatenate([x(t) for t in trn]), np.concatenate([t.targets() for t in trn]), r
        )
        return p.apply(x(test))

    return fn


def neighbours(k: int, tau: float) -> Fn:
    """Similarity-weighted mean caption embedding of the k nearest training photos."""

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        x = l2_normalize(np.concatenate([t.features for t in trn]))
        mu = x.mean(0)
        sims = l2_normalize(l2_normalize(test.features) - mu) @ l2_normalize(x - mu).T
        idx = np.argsort(-sims, 1)[:, :k]
        s = np.take_along_axis(sims, idx, 1)
        y = np.concatenate([t.targets() for t in trn])
        return l2_normalize(np.einsum("nk,nkd->nd", np.exp((s - s[:, :1]) / tau), y[idx]))

    return fn


def hub_offsets(
    img: np.ndarray,
    kind: str,
    k: int = 10,
    beta: float = 20.0,
    one_caption: bool = False,
    cw: float = 0.2,
) -> np.ndarray:
    """Per photo: closeness to the reference captions of its fold's training photos."""

    def firsts(owner: np.ndarray) -> np.ndarray:
        return np.unique(owner, return_index=True)[1]

    tq = queries(tiny.caption_emb, tiny.captions, cw)
    out = np.zeros(len(coco.images))
    for f in range(tp.FOLDS):
        rq = np.flatnonzero(fold[coco.owner] != f)
        t = tq
        if one_caption:
            rq, t = rq[firsts(coco.owner[rq])], tq[firsts(tiny.owner)]
        bank = np.concatenate([t, queries(coco.caption_emb[rq], [texts[i] for i in rq], cw)])
        s = bank @ img[fold == f].T
        if kind == "mean":
            out[fold == f] = s.mean(0)
        elif kind == "lse":
            mx = s.max(0)
            out[fold == f] = mx + np.log(np.exp(beta * (s - mx)).sum(0)) / beta
        else:
            out[fold == f] = -np.sort(-s, 0)[:k].mean(0)
    return out


def thumbnails() -> tuple[np.ndarray, np.ndarray]:
    """coco_mini's colour thumbnails and saliency maps (one pass of the tower, cached)."""
    path = cache / "coco_mini-colour-inputs.npz"
    if not path.is_file():
        from PIL import Image

        from viewfinder.evaluation import load_captioned_folder

        items = load_captioned_folder(DATA / "coco_mini")
        thumbs, saliency = [], []
        for start in range(0, len(items), 16):
            batch = []
            for it in items[start : start + 16]:
                with Image.open(it.path) as im:
                    batch.append(im.convert("RGB"))
            out = emb._image_tower().forward(batch)
            thumbs.append(out.thumbnails)
            saliency.append(out.saliency)
        np.savez(path, thumbs=np.concatenate(thumbs), saliency=np.concatenate(saliency))
    d = np.load(path)
    return d["thumbs"], d["saliency"]


def recipe4(r3: np.ndarray) -> None:
    """On top of the shipped choice (hubness k 5, weight 0.3): colour blocks, query centring."""
    from viewfinder.embedders.builtin import colours as c

    def hub_score(name: str, block: np.ndarray, cw: float = 0.2, q: np.ndarray | None = None):
        saved = coco.colours
        coco.colours = block.astype(np.float32)
        score(name, r3, cw=cw, q=q, offsets=hub_offsets(images(r3), "knn", k=5, cw=cw), weight=0.3)
        coco.colours = saved

    thumbs, saliency = thumbnails()
    member = c.pixel_terms(thumbs)
    n, h, w, _ = member.shape

    def spread(weights: np.ndarray) -> np.ndarray:
        weights = weights / weights.reshape(n, -1).sum(1)[:, None, None]
        return np.einsum("nhwt,nhw->nt", member, weights)

    y, x = (np.arange(h) + 0.5) / h - 0.5, (np.arange(w) + 0.5) / w - 0.5
    centre = np.exp(-(y[:, None] ** 2 + x[None] ** 2) / (2 * c.CENTRE_SIGMA**2))[None]
    subject = c.subject_weights(saliency, (h, w))
    for cw in (0.2, 0.3):
        hub_score(f"recipe 4, colour weight {cw}", coco.colours, cw)
        hub_score(
            f"recipe 4, colour of the whole frame, cw {cw}", np.sqrt(spread(np.ones((n, h, w)))), cw
        )
        hub_score(
            f"recipe 4, colour by the centre prior only, cw {cw}",
            np.sqrt(spread(centre.repeat(n, 0))),
            cw,
        )
        hub_score(
            f"recipe 4, colour by saliency only, cw {cw}", np.sqrt(spread(subject / centre)), cw
        )
    for g in (3, 4):
        cells = np.zeros((n, len(c.TERMS)))
        for rows_ in np.array_split(np.arange(h), g):
            for cols in np.array_split(np.arange(w), g):
                cells = np.maximum(cells, member[:, rows_][:, :, cols].mean((1, 2)))
        presence = cells / cells.sum(1, keepdims=True)
        for a in (0.5, 0.75):
            hub_score(
                f"recipe 4, colour = {a} subject + {1 - a} max over {g}x{g} cells",
                np.sqrt(a * spread(subject) + (1 - a) * presence),
            )
    for soft in (6.0, 20.0):
        saved_soft, c.SOFTNESS = c.SOFTNESS, soft
        c._term_table.cache_clear()
        hub_score(f"recipe 4, colour softness {soft}", c.image_colours(thumbs, saliency))
        c.SOFTNESS = saved_soft
        c._term_table.cache_clear()
    words = query_colours(texts)
    spread_t = tiny.colours.std(0)  # tiny_coco: photos disjoint from coco_mini
    for name, scale in [
        ("1/std", spread_t.mean() / spread_t),
        ("1/sqrt(std)", np.sqrt(spread_t.mean() / spread_t)),
    ]:
        for cw in (0.15, 0.2):
            gain = cw * np.sqrt(1 - B * B) / B
            q = l2_normalize(np.concatenate([cap, gain * words * scale[None]], 1))
            hub_score(
                f"recipe 4, colour words weighted {name} of the term, cw {cw}", coco.colours, cw, q
            )
    sims = queries(cap, texts, 0.2) @ images(r3).T
    sims -= 0.3 * hub_offsets(images(r3), "knn", k=5)[None, :]
    first = sims.argmax(1) == coco.owner
    for t, term in enumerate(c.TERMS):
        named = words[:, t] > 0
        if named.any():
            share = 100.0 * float(first[named].mean())
            rows.append(
                {"variant": f"recipe 4, captions naming {term}", "n": int(named.sum()), "r1": share}
            )
            print(f"recipe 4, captions naming {term:<8} {int(named.sum()):4d}  R@1 {share:5.1f}")
    mean_caption = l2_normalize(tiny.caption_emb).mean(0)
    for g in (0.25, 0.5, 1.0):
        hub_score(
            f"recipe 4, queries centred by {g} x tiny_coco's mean caption",
            coco.colours,
            q=queries(cap - g * mean_caption, texts, 0.2),
        )


# --- learned projections other than the ridge (contrastive, CCA/PLS, augmentation, ...) ---


def r4(name: str, proj: np.ndarray, w: float = 0.3, q: np.ndarray | None = None) -> None:
    """Score `proj` as recipe 4 does: blend w, colour block, hubness k 5 weight 0.3."""
    sem = blend((1 - w, coco.conse), (w, proj))
    score(name, sem, q=q, offsets=hub_offsets(images(sem), "knn", k=5), weight=0.3)


def _arrays(trn: list[tp.Folder]) -> tuple[np.ndarray, ...]:
    """Training features, mean-caption targets, unit captions, caption owners, ConSE."""
    x = np.concatenate([t.features for t in trn]).astype(np.float64)
    y = np.concatenate([t.targets() for t in trn])
    c = np.concatenate([l2_normalize(t.caption_emb) for t in trn]).astype(np.float64)
    start = np.cumsum([0] + [len(t.images) for t in trn])
    owner = np.concatenate([t.owner + o for t, o in zip(trn, start, strict=False)])
    return x, y, c, owner, np.concatenate([t.conse for t in trn]).astype(np.float64)


def _centred(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return l2_normalize(l2_normalize(x) - mean).astype(np.float64)


def infonce(
    xc: np.ndarray,
    c: np.ndarray,
    owner: np.ndarray,
    w: np.ndarray,
    anchor: np.ndarray,
    lam: float,
    checkpoints: tuple[int, ...],
    tau: float = 0.05,
    lr: float = 1e-3,
    conse: np.ndarray | None = None,
    share: float = 0.3,
) -> list[np.ndarray]:
    """Weights at each of `checkpoints` steps of Adam on the caption-to-photo softmax over the
    training photos (cosine / tau) + lam * |W - anchor|^2; with `conse`, the cosine is taken on
    the blend normalise((1 - share) * ConSE + share * projection), not the projection alone."""
    w = w.copy()
    hot = np.zeros((len(c), len(xc)))
    hot[np.arange(len(c)), owner] = 1.0
    m1, m2 = np.zeros_like(w), np.zeros_like(w)
    out = []
    for t in range(1, max(checkpoints) + 1):
        u = xc @ w
        un = np.linalg.norm(u, axis=1, keepdims=True)
        z = u / un
        e, vn = z, un
        if conse is not None:
            v = (1 - share) * conse + share * z
            vn = np.linalg.norm(v, axis=1, keepdims=True)
            e = v / vn
        s = c @ e.T / tau
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        de = ((p - hot) / len(c) / tau).T @ c
        if conse is not None:
            de = share * (de - e * (e * de).sum(1, keepdims=True)) / vn
        du = (de - z * (z * de).sum(1, keepdims=True)) / un
        g = xc.T @ du + 2 * lam * (w - anchor)
        m1 = 0.9 * m1 + 0.1 * g
        m2 = 0.999 * m2 + 0.001 * g * g
        w -= lr * (m1 / (1 - 0.9**t)) / (np.sqrt(m2 / (1 - 0.999**t)) + 1e-8)
        if t in checkpoints:
            out.append(w.copy())
    return out


def contrastive(
    lam: float,
    toward: str = "ridge",
    blended: bool = False,
    steps: tuple[int, ...] = (100,),
    tau: float = 0.05,
    lr: float = 1e-3,
) -> Callable[[list[tp.Folder], tp.Folder], list[np.ndarray]]:
    """InfoNCE fine-tuning of the ridge projection (ridge 0.3 as the start), weight decay toward
    the ridge solution or toward 0; the projected fold after each of `steps`."""

    def fn(trn: list[tp.Folder], test: tp.Folder) -> list[np.ndarray]:
        x, y, c, owner, conse = _arrays(trn)
        p = fit_projection(x, y, 0.3)
        xc, w0 = _centred(x, p.mean), p.weights.astype(np.float64)
        anchor = w0 if toward == "ridge" else np.zeros_like(w0)
        ws = infonce(xc, c, owner, w0, anchor, lam, steps, tau, lr, conse if blended else None)
        return [Projection(p.mean, w.astype(np.float32)).apply(test.features) for w in ws]

    return fn


def cv_many(fn: Callable[[list[tp.Folder], tp.Folder], list[np.ndarray]]) -> list[np.ndarray]:
    """`cv` for a function that returns several projections of a fold at once."""
    outs: list[np.ndarray] = []
    for f in range(tp.FOLDS):
        parts = fn([tp._train_part(coco, fold != f), tiny], tp._subset(coco, fold == f))
        if not outs:
            outs = [np.zeros((len(coco.images), cap.shape[1]), np.float32) for _ in parts]
        for o, part in zip(outs, parts, strict=True):
            o[fold == f] = part
    return outs


def cca(k: int, rx: float, ry: float, power: float = 1.0, pls: bool = False) -> Fn:
    """Top-k canonical (or PLS) directions of centred unit features vs centred mean captions,
    folded back into one (1280, 384) matrix: W = A diag(rho^power) B^T, so the query side is
    unchanged (q . xW = sum_k rho_k^power (x a_k)(q b_k))."""

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        x, y, *_ = _arrays(trn)
        mean = l2_normalize(x).mean(0)
        xc, yc, n = _centred(x, mean), y - y.mean(0), len(x)
        if pls:
            u, s, vt = np.linalg.svd(xc.T @ yc / n, full_matrices=False)
            a, b, rho = u[:, :k], vt[:k].T, s[:k] / s[0]
        else:
            _, sx, vxt = np.linalg.svd(xc, full_matrices=False)
            wx = vxt.T / np.sqrt(sx**2 / n + rx)  # (Cxx + rx)^-1/2 on the features' span
            ev, vy = np.linalg.eigh(yc.T @ yc / n)
            wy = (vy / np.sqrt(np.maximum(ev, 0) + ry)) @ vy.T
            u, s, vt = np.linalg.svd((xc @ wx).T @ (yc @ wy) / n, full_matrices=False)
            a, b, rho = wx @ u[:, :k], wy @ vt[:k].T, s[:k]
        weights = (a * rho**power) @ b.T
        return Projection(mean.astype(np.float32), weights.astype(np.float32)).apply(test.features)

    return fn


def reduced_rank(k: int) -> Fn:
    """The ridge (0.3) projection restricted to the top-k directions of its fitted values."""

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        x, y, *_ = _arrays(trn)
        p = fit_projection(x, y, 0.3)
        vt = np.linalg.svd(_centred(x, p.mean) @ p.weights, full_matrices=False)[2][:k]
        return Projection(p.mean, (p.weights @ vt.T @ vt).astype(np.float32)).apply(test.features)

    return fn


def ridge_targets(kind: str, beta: float = 0.0) -> Fn:
    """Ridge 0.3 onto other targets: the unnormalised caption mean (= fitting each caption,
    ridge / 5), the mean centred over photos, or the residual mean - beta * ConSE."""

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        x, y, _, _, conse = _arrays(trn)
        if kind == "raw":
            parts = []
            for t in trn:
                m = np.zeros((len(t.images), cap.shape[1]))
                np.add.at(m, t.owner, l2_normalize(t.caption_emb))
                parts.append(m / np.bincount(t.owner)[:, None])
            y = np.concatenate(parts)
        elif kind == "centred":
            y = y - y.mean(0)
        else:
            y = y - beta * conse
        return fit_projection(x, y, 0.3).apply(test.features)

    return fn


def kernel_ridge(r: float, s: float) -> Fn:
    """Kernel ridge, kernel exp((cos - 1) / s) on centred unit features (ships the features)."""

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        x, y, *_ = _arrays(trn)
        mean = l2_normalize(x).mean(0)
        xc = _centred(x, mean)
        a = np.linalg.solve(np.exp((xc @ xc.T - 1) / s) + r * np.eye(len(xc)), y)
        return l2_normalize(np.exp((_centred(test.features, mean) @ xc.T - 1) / s) @ a)

    return fn


AUGMENTS = ("flip", "centre", "tl", "tr", "bl", "br")


def augmented(name: str) -> dict[str, np.ndarray]:
    """Pooled features of a folder's photos mirrored and cropped to 80% (centre, 4 corners):
    training-time views only; the shipped forward pass stays one view."""
    path = cache / f"{name}-augmented-features.npz"
    if not path.is_file():
        from PIL import Image, ImageOps

        from viewfinder.evaluation import load_captioned_folder

        def crop(im: Image.Image, fx: float, fy: float) -> Image.Image:
            w, h = im.size
            cw, ch = int(w * 0.8), int(h * 0.8)
            x0, y0 = int((w - cw) * fx), int((h - ch) * fy)
            return im.crop((x0, y0, x0 + cw, y0 + ch))

        views = {
            "flip": ImageOps.mirror,
            "centre": lambda im: crop(im, 0.5, 0.5),
            "tl": lambda im: crop(im, 0, 0),
            "tr": lambda im: crop(im, 1, 0),
            "bl": lambda im: crop(im, 0, 1),
            "br": lambda im: crop(im, 1, 1),
        }
        items = load_captioned_folder(DATA / name)
        out: dict[str, list[np.ndarray]] = {k: [] for k in views}
        for start in range(0, len(items), 16):
            batch = []
            for it in items[start : start + 16]:
                with Image.open(it.path) as im:
                    batch.append(im.convert("RGB"))
            for k, view in views.items():
                out[k].append(emb._image_tower().forward([view(im) for im in batch]).features)
        np.savez(path, **{k: np.concatenate(v) for k, v in out.items()})
    return dict(np.load(path))


def augmented_ridge(r: float, augs: tuple[str, ...]) -> Fn:
    """Ridge trained on the training photos' own features and their `augs` views."""
    views = {"coco_mini": augmented("coco_mini"), "tiny_coco": augmented("tiny_coco")}

    def fn(trn: list[tp.Folder], test: tp.Folder) -> np.ndarray:
        xs, ys = [], []
        for t in trn:
            idx = [
                (coco.images if t.name == "coco_mini" else tiny.images).index(n) for n in t.images
            ]
            xs += [t.features] + [views[t.name][a][idx] for a in augs]
            ys += [t.targets()] * (1 + len(augs))
        return fit_projection(np.concatenate(xs), np.concatenate(ys), r).apply(test.features)

    return fn


def learned() -> None:
    """Projections other than the plain ridge, each blended and scored as recipe 4."""
    global fold
    for lam in (0.01, 0.1):
        for blended in (False, True):
            (p,) = cv_many(contrastive(lam, blended=blended))
            space = "the blend" if blended else "the projection"
            for w in (0.3, 0.4):
                r4(f"InfoNCE on {space}, decay {lam} toward ridge, blend {w}", p, w)
    for tau in (0.05, 0.1):
        for lam in (0.1, 1.0):
            for steps, p in zip(
                (30, 100), cv_many(contrastive(lam, "zero", steps=(30, 100), tau=tau)), strict=True
            ):
                r4(f"InfoNCE tau {tau}, decay {lam} toward 0, {steps} steps", p)
    for k in (16, 32, 64, 128):
        r4(f"reduced-rank ridge, rank {k}", cv(reduced_rank(k)))
    for k in (32, 64, 128):
        r4(f"PLS, {k} directions", cv(cca(k, 0, 0, pls=True)))
    for rx in (0.001, 0.01):
        for ry in (0.001, 0.01):
            for k in (32, 128):
                for power in (1.0, 2.0):
                    r4(f"CCA k {k}, reg x {rx} y {ry}, rho^{power}", cv(cca(k, rx, ry, power)))
    for kind in ("raw", "centred"):
        for w in (0.3, 0.4):
            r4(f"ridge onto {kind} caption means, blend {w}", cv(ridge_targets(kind)), w)
    for beta in (0.3, 0.6):
        for w in (0.3, 0.4):
            r4(
                f"ridge onto mean - {beta} x ConSE, blend {w}",
                cv(ridge_targets("residual", beta)),
                w,
            )
    for s in (0.05, 0.1, 0.3):
        for w in (0.3, 0.4):
            r4(f"kernel ridge exp((cos - 1) / {s}), blend {w}", cv(kernel_ridge(0.3, s)), w)
    for augs in (("flip",), ("centre",), ("flip", "centre"), AUGMENTS):
        for r in (0.3, 1.0):
            p = cv(augmented_ridge(r, augs))
            for w in (0.3, 0.4):
                r4(f"ridge {r} on own + {'+'.join(augs)} views, blend {w}", p, w)
    # the InfoNCE toward 0 (tau 0.05, decay 1) along its training, on four fold seeds
    q = queries(cap - 0.25 * l2_normalize(tiny.caption_emb).mean(0), texts, 0.2)
    for seed in (0, 1, 2, 3):
        fold = tp.fold_ids(len(coco.images), seed=seed)
        r4(f"fold seed {seed}: recipe 4", cv(ridge(0.3)))
        for lr, steps in ((1e-3, (50, 100, 200, 400)), (2e-4, (100, 200, 400))):
            ps = cv_many(contrastive(1.0, "zero", lr=lr, steps=steps))
            for n, p in zip(steps, ps, strict=True):
                r4(f"fold seed {seed}: InfoNCE toward 0, lr {lr}, {n} steps", p)
        r4(f"fold seed {seed}: InfoNCE lr 0.0002, 200 steps, queries centred 0.25", ps[1], q=q)
    fold = tp.fold_ids(len(coco.images))


def main() -> None:
    conse = coco.conse
    proj = cv(ridge(0.3))
    r3 = blend((0.7, conse), (0.3, proj))
    score("recipe 2 (ConSE + colour block)", conse)
    score("recipe 3 (0.7 ConSE + 0.3 projection)", r3)
    for w in (0.2, 0.4):
        score(f"projection blend {w}", blend((1 - w, conse), (w, proj)))
    for k, tau in [(5, 0.05), (10, 0.05), (20, 0.05), (10, 0.02), (10, 0.1), (338, 0.05)]:
        nb = cv(neighbours(k, tau))
        for a, c in [(0.7, 0.15), (0.6, 0.2), (0.7, 0.3)]:
            score(
                f"neighbours k={k} tau={tau}: ConSE {a} proj {1 - a - c:.2f} nb {c}",
                blend((a, conse), (1 - a - c, proj), (c, nb)),
            )
    for r in (0.03, 0.1, 1.0):
        pr = cv(ridge(r))
        for w in (0.2, 0.3):
            score(f"ridge {r}, blend {w}", blend((1 - w, conse), (w, pr)))
    for a in (0.5, 1.0, 2.0):
        rich = cv(ridge(0.3, a))
        for w in (0.3, 0.4, 0.5):
            score(f"ridge on [feature, {a} x ConSE], blend {w}", blend((1 - w, conse), (w, rich)))
    for cw in (0.0, 0.1, 0.3, 0.4, 0.6):
        score(f"colour weight {cw}", r3, cw=cw)
    colour = np.flatnonzero(query_colours(texts).any(1))
    stripped = cap.copy()
    stripped[colour] = emb._text_tower().embed(
        [
            " ".join(w for w in re.findall(r"[A-Za-z]+|\S", texts[i]) if w.lower() not in WORDS)
            for i in colour
        ],
        kind="query",
    )
    for a in (0.5, 1.0, 100.0):
        score(
            f"colour words stripped from the semantic part, mix {a}",
            r3,
            q=queries(cap + a * stripped, texts, 0.2),
        )
    img = images(r3)
    for weight in (0.25, 0.5, 1.0):
        score(
            f"hubness mean over all references, weight {weight}",
            r3,
            offsets=hub_offsets(img, "mean"),
            weight=weight,
        )
    for beta in (10.0, 20.0, 40.0):
        for weight in (0.25, 0.5):
            score(
                f"hubness log-sum-exp beta {beta}, weight {weight}",
                r3,
                offsets=hub_offsets(img, "lse", beta=beta),
                weight=weight,
            )
    for w in (0.2, 0.3, 0.4):
        sem = blend((1 - w, conse), (w, proj))
        for k in (5, 10, 30):
            off = hub_offsets(images(sem), "knn", k=k)
            for weight in (0.2, 0.3, 0.4, 0.5):
                score(
                    f"hubness k={k} nearest, weight {weight}, blend {w}",
                    sem,
                    offsets=off,
                    weight=weight,
                )
    for k in (2, 3, 5):
        score(
            f"hubness one caption per photo, k={k}, weight 0.3",
            r3,
            offsets=hub_offsets(img, "knn", k=k, one_caption=True),
            weight=0.3,
        )
    recipe4(r3)
    learned()
    out = ROOT / "bench" / "results" / "builtin_r1_experiments.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
