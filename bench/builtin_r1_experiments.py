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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.embedders.base import l2_normalize  # noqa: E402
from viewfinder.embedders.builtin import BuiltinEmbedder  # noqa: E402
from viewfinder.embedders.builtin import train_projection as tp  # noqa: E402
from viewfinder.embedders.builtin.colours import WORDS, query_colours  # noqa: E402
from viewfinder.embedders.builtin.projection import fit_projection  # noqa: E402
from viewfinder.evaluation import rank_metrics, subset_metrics  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
B = 0.3  # colour block share (recipe 3)
rows: list[dict[str, object]] = []

emb = BuiltinEmbedder(Path(tempfile.gettempdir()) / "viewfinder-bench" / "builtin")
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
    out = ROOT / "bench" / "results" / "builtin_r1_experiments.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
