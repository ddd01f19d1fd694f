"""Train the built-in model's learned projection and per-query calibration (dev only).

    python -m viewfinder.embedders.builtin.train_projection \\
        ../shared/data/tiny_coco ../shared/data/coco_mini

Numpy only (no PyTorch); deterministic (fixed fold seed). Not used at run time: the server
reads the file this writes, ``tables/projection-minilm.npz`` (provenance in ``tables/NOTICE``).

1. Every photo of the captioned folders goes through the image tower once (cached under
   ``--features-cache``); every caption through the text tower.
2. The projection: ridge regression of the centred unit pooled features of *all* photos onto
   the mean embedding of their captions (``projection.fit_projection``).
3. The calibration bank: every photo's image vector, each projected by a projection trained
   on everything but the photo's own fold (``out_of_fold``), so the bank looks like any user's
   unseen photos.
4. The hubness correction's reference queries: every caption's query vector (``hubness.py``);
   each photo's offset is taken against the captions of the photos its projection was trained
   on.
5. The calibration: logistic over (cosine, z against the bank) fitted on the out-of-fold
   similarities of every folder's captions (``cross_validate``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...evaluation import fit_logistic, load_captioned_folder
from ..base import l2_normalize
from . import BuiltinEmbedder, conse_vectors, image_vectors, text_vectors
from .calibration import fit_calibration, query_features
from .colours import image_colours
from .hubness import hub_offsets
from .projection import TABLES, Projection, fit_projection
from .vision import BUILDER_VERSION, softmax

logger = logging.getLogger(__name__)

RIDGE = 0.3
FOLDS = 5
SEED = 0


@dataclass
class Folder:
    """One captioned folder through the towers: per photo and per caption arrays."""

    name: str
    images: list[str]
    conse: np.ndarray  # (n, 384) ConSE vectors
    features: np.ndarray  # (n, 1280) pooled features
    colours: np.ndarray  # (n, 11) colour blocks
    captions: list[str]
    owner: np.ndarray  # (m,) photo index of each caption
    queries: np.ndarray  # (m, dim) query vectors (with the colour block)
    caption_emb: np.ndarray  # (m, 384) plain caption embeddings (training targets)
    hub_queries: np.ndarray  # (m, dim - 1) query vectors without the hubness dimension

    def targets(self) -> np.ndarray:
        """Each photo's mean caption embedding, normalised."""
        y = np.zeros((len(self.images), self.caption_emb.shape[1]))
        np.add.at(y, self.owner, self.caption_emb)
        return l2_normalize(y)


def cache_name(emb: BuiltinEmbedder, folder: Path) -> str:
    """The feature cache file of `folder` (by folder, model and graph version)."""
    key = hashlib.sha256(
        json.dumps([str(folder.resolve()), emb.model_id, BUILDER_VERSION]).encode()
    ).hexdigest()[:12]
    return f"{folder.name}-{key}.npz"


def extract(emb: BuiltinEmbedder, folder: Path, cache_dir: Path) -> Folder:
    """Run the towers over a captioned folder (cached by folder, model and graph version)."""
    items = load_captioned_folder(folder)
    path = cache_dir / cache_name(emb, folder)
    captions = [c for it in items for c in it.captions]
    owner = np.array([i for i, it in enumerate(items) for _ in it.captions])
    if path.is_file():
        d = np.load(path)
        logits, features, colours, cap = d["logits"], d["features"], d["colours"], d["cap"]
    else:
        tower = emb._image_tower()
        parts: list[list[np.ndarray]] = [[], [], []]
        for start in range(0, len(items), 16):
            images = []
            for it in items[start : start + 16]:
                with Image.open(it.path) as im:
                    images.append(im.convert("RGB"))
            out = tower.forward(images)
            parts[0].append(out.logits)
            parts[1].append(out.features)
            parts[2].append(image_colours(out.thumbnails, out.saliency))
        logits, features, colours = (np.concatenate(p) for p in parts)
        cap = emb._text_tower().embed(captions, kind="query")
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(path, logits=logits, features=features, colours=colours, cap=cap)
    classes, mean = emb._class_table()
    weights = emb._top_k(softmax(logits, emb.recipe.temperature))
    return Folder(
        name=folder.name,
        images=[it.name for it in items],
        conse=conse_vectors(emb.recipe, weights, classes, mean),
        features=features,
        colours=colours,
        captions=captions,
        owner=owner,
        queries=text_vectors(emb.recipe, cap, captions),
        caption_emb=cap,
        hub_queries=text_vectors(replace(emb.recipe, hub_weight=0.0), cap, captions),
    )


def fit(folders: list[Folder], ridge: float = RIDGE) -> Projection:
    """The projection trained on every photo of `folders`."""
    return fit_projection(
        np.concatenate([f.features for f in folders]),
        np.concatenate([f.targets() for f in folders]),
        ridge,
    )


Hubs = tuple[np.ndarray, float]  # reference queries and their centre (hubness.py)


def fit_hubs(emb: BuiltinEmbedder, folders: list[Folder], projection: Projection) -> Hubs:
    """The hubness reference queries (every caption of `folders`) and the mean offset of
    their photos' vectors under `projection`."""
    bank = np.concatenate([f.hub_queries for f in folders]).astype(np.float32)
    offsets = [hub_offsets(vectors(emb, f, projection), bank, emb.recipe.hub_k) for f in folders]
    return bank, float(np.concatenate(offsets).mean())


def vectors(
    emb: BuiltinEmbedder, folder: Folder, projection: Projection | None, hubs: Hubs | None = None
) -> np.ndarray:
    """The folder's image vectors under `projection` (None: ConSE and colour only), with the
    hubness dimension when `hubs` are given."""
    projected = projection.apply(folder.features) if projection is not None else None
    return image_vectors(emb.recipe, folder.conse, projected, folder.colours, hubs)


def fit_model(emb: BuiltinEmbedder, folders: list[Folder]) -> tuple[Projection, Hubs | None]:
    """The projection and (when the recipe uses them) hubness references of `folders`."""
    projection = fit(folders)
    hubs = fit_hubs(emb, folders, projection) if emb.recipe.hub_weight else None
    return projection, hubs


def _subset(folder: Folder, keep: np.ndarray) -> Folder:
    idx = np.flatnonzero(keep)
    return Folder(
        folder.name,
        [folder.images[i] for i in idx],
        folder.conse[idx],
        folder.features[idx],
        folder.colours[idx],
        [],
        np.zeros(0, np.int64),
        np.zeros((0, folder.queries.shape[1])),
        folder.caption_emb[np.isin(folder.owner, idx)],
        folder.hub_queries[np.isin(folder.owner, idx)],
    )


@dataclass
class CrossValidation:
    """Out-of-fold similarities of an evaluation folder's captions to all its photos."""

    sims: np.ndarray  # (queries, photos) cosines, every photo embedded out of fold
    zscores: np.ndarray  # (queries, photos) z against the fold's bank
    fold_of_query: np.ndarray  # (queries,)
    conse_sims: np.ndarray  # (queries, photos) the same with recipe 2's ConSE vectors


def fold_ids(n: int, folds: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """Fold of each photo: a seeded permutation, dealt round-robin."""
    return np.random.default_rng(seed).permutation(n) % folds


def cross_validate(
    emb: BuiltinEmbedder, target: Folder, others: list[Folder], with_bank: bool = True
) -> CrossValidation:
    """k-fold over `target`'s photos; training = `others` + the other folds of `target`.

    Each photo is embedded by the model of its own fold (never trained on it). The bank of a
    fold is built as the shipped one is, from the fold's training photos only
    (`out_of_fold`): no held-out photo is in it or trained its vectors.
    """
    fold = fold_ids(len(target.images))
    gallery = np.zeros((len(target.images), target.queries.shape[1]), np.float32)
    banks: list[np.ndarray] = []
    for f in range(FOLDS):
        train = [_train_part(target, fold != f), *others]
        gallery[fold == f] = vectors(emb, _subset(target, fold == f), *fit_model(emb, train))
        if with_bank:
            banks.append(out_of_fold(emb, train))
    sims = target.queries @ gallery.T
    qfold = fold[target.owner]
    z = np.zeros_like(sims)
    for f in range(FOLDS if with_bank else 0):
        for r in np.flatnonzero(qfold == f):
            z[r] = query_features(sims[r], target.queries[r], banks[f])[1]
    base = l2_normalize(target.caption_emb) @ target.conse.T
    return CrossValidation(sims, z, qfold, base)


def out_of_fold(emb: BuiltinEmbedder, parts: list[Folder]) -> np.ndarray:
    """The image vectors of every photo of `parts`, each projected by a projection trained on
    all of `parts` except the photo's own fold (k-fold within its folder)."""
    out = []
    for i, part in enumerate(parts):
        fold = fold_ids(len(part.images))
        vecs = np.zeros((len(part.images), part.queries.shape[1]), np.float32)
        for f in range(FOLDS):
            train = [p for j, p in enumerate(parts) if j != i] + [_train_part(part, fold != f)]
            vecs[fold == f] = vectors(emb, _subset(part, fold == f), *fit_model(emb, train))
        out.append(vecs)
    return np.concatenate(out)


def _train_part(folder: Folder, keep: np.ndarray) -> Folder:
    sub = _subset(folder, keep)
    owner = folder.owner[np.isin(folder.owner, np.flatnonzero(keep))]
    remap = {old: new for new, old in enumerate(np.flatnonzero(keep))}
    sub.owner = np.array([remap[o] for o in owner], np.int64)
    return sub


def calibrate_out_of_fold(cv: CrossValidation, relevant: np.ndarray) -> np.ndarray:
    """Scores where each fold's calibration was fitted on the other folds' queries."""
    scores = np.zeros_like(cv.sims)
    for f in range(FOLDS):
        test = cv.fold_of_query == f
        coef = fit_calibration(cv.sims[~test], cv.zscores[~test], relevant[~test])
        logit = coef[0] * cv.sims[test] + coef[1] * cv.zscores[test] + coef[2]
        scores[test] = 1.0 / (1.0 + np.exp(-logit))
    return scores


def main(argv: list[str] | None = None) -> None:
    """Train on the given folders and write the shipped projection file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--text-model", default="minilm")
    parser.add_argument(
        "--features-cache", type=Path, default=Path(tempfile.gettempdir()) / "viewfinder-train"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "vf-train-model"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    emb = BuiltinEmbedder(args.cache, text_model=args.text_model)
    folders = [extract(emb, f, args.features_cache) for f in args.folders]
    projection, hubs = fit_model(emb, folders)
    bank_vectors = out_of_fold(emb, folders)

    cosines, zs, rel = [], [], []
    for target in folders:
        cv = cross_validate(emb, target, [f for f in folders if f is not target])
        r = np.zeros_like(cv.sims, dtype=bool)
        r[np.arange(len(target.owner)), target.owner] = True
        cosines.append(cv.sims.ravel())
        zs.append(cv.zscores.ravel())
        rel.append(r.ravel())
    coef = fit_calibration(np.concatenate(cosines), np.concatenate(zs), np.concatenate(rel))
    center, slope = fit_logistic(np.concatenate(cosines), np.concatenate(rel), balanced=True)
    out = args.out or TABLES / f"projection-{args.text_model}.npz"
    hub_arrays: dict[str, Any] = (
        {"hubs": hubs[0].astype(np.float16), "hub_centre": np.array(hubs[1])}
        if hubs is not None
        else {}
    )
    np.savez(
        out,
        mean=projection.mean.astype(np.float16),
        weights=projection.weights.astype(np.float16),
        bank=bank_vectors.astype(np.float16),
        calibration=coef,
        **hub_arrays,
        provenance=np.array(
            json.dumps(
                {
                    "trained_on": {f.name: len(f.images) for f in folders},
                    "bank": "every photo, projected out of fold",
                    "ridge": RIDGE,
                    "hubs": "every caption's query vector" if hubs is not None else None,
                    "model_id": emb.model_id,
                    "script": "viewfinder/embedders/builtin/train_projection.py",
                }
            )
        ),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    print(f"per-query calibration (cosine, z, bias): {coef.round(4).tolist()}")
    print(f"global logistic (out of fold, balanced): center {center:.4f} slope {slope:.2f}")


if __name__ == "__main__":
    main()
