"""Colour: which basic colour terms an image's pixels show, and which ones a query names.

An ImageNet classifier carries no colour ("a red car" and "a blue car" are one class), so the
built-in model adds a small colour block to every vector. For an image it is the square root of
the distribution of its pixels over the eleven basic colour terms of Berlin and Kay (a unit
vector), each pixel soft-assigned to the nearest colour prototypes in CIELAB and weighted toward
the subject: where the network's last feature map is active, and toward the centre of the frame
rather than the background at its edges. For a query it is an indicator of the colour words it
uses. The dot product of the two blocks is then the (square-rooted) share of the subject that
has the colours the query names, which the embedder adds to the semantic cosine.
"""

from __future__ import annotations

import functools
import re

import numpy as np

TERMS = (
    "black",
    "white",
    "grey",
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
)

# sRGB prototypes per term: a few shades each (dark, mid, light) so that a dark red or a light
# blue is not pulled to black or white
PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((0, 0, 0), (35, 35, 40)),
    "white": ((255, 255, 255), (225, 225, 220)),
    "grey": ((128, 128, 128), (170, 170, 170), (85, 85, 90)),
    "red": ((200, 25, 25), (140, 15, 25), (230, 60, 50)),
    "orange": ((240, 130, 20), (255, 165, 40), (200, 100, 20)),
    "yellow": ((240, 220, 30), (255, 245, 110), (200, 180, 20)),
    "green": ((30, 150, 40), (20, 85, 30), (130, 190, 80)),
    "blue": ((30, 70, 200), (20, 30, 110), (100, 155, 230)),
    "purple": ((120, 40, 150), (75, 30, 100), (170, 110, 200)),
    "pink": ((240, 150, 185), (230, 80, 150), (250, 195, 210)),
    "brown": ((120, 70, 30), (80, 50, 25), (165, 120, 75)),
}

# colour words of queries and the basic term each one stands for
WORDS: dict[str, str] = {
    **{t: t for t in TERMS},
    "gray": "grey",
    "silver": "grey",
    "crimson": "red",
    "maroon": "red",
    "scarlet": "red",
    "golden": "yellow",
    "gold": "yellow",
    "blond": "yellow",
    "blonde": "yellow",
    "navy": "blue",
    "turquoise": "blue",
    "violet": "purple",
    "lavender": "purple",
    "tan": "brown",
    "beige": "brown",
}

SOFTNESS = 12.0  # CIELAB distance scale of the soft assignment (a just-noticeable step is ~2)
CENTRE_SIGMA = 0.35  # width of the centre weighting, as a fraction of the frame's side
_WORD = re.compile(r"[a-z]+")


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB values in [0, 1], shape (..., 3)."""
    c = np.asarray(rgb, dtype=np.float32)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
        dtype=np.float32,
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.stack(
        [
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ],
        axis=-1,
    )
    return lab.astype(np.float32)


def _prototype_table() -> tuple[np.ndarray, np.ndarray]:
    rows, owner = [], []
    for t, term in enumerate(TERMS):
        for rgb in PROTOTYPES[term]:
            rows.append(rgb)
            owner.append(t)
    lab = srgb_to_lab(np.array(rows, dtype=np.float32) / 255.0)
    return lab, np.array(owner)


_PROTO_LAB, _PROTO_TERM = _prototype_table()
_PROTO_ONEHOT = np.eye(len(TERMS), dtype=np.float32)[_PROTO_TERM]


LEVELS = 32  # colour names are looked up on a 32 x 32 x 32 grid of sRGB


@functools.cache
def _term_table() -> np.ndarray:
    """(LEVELS**3, 11): the soft colour-term membership of every grid colour."""
    grid = (np.arange(LEVELS, dtype=np.float32) + 0.5) / LEVELS
    rgb = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    return _memberships(rgb)


def _memberships(rgb: np.ndarray) -> np.ndarray:
    lab = srgb_to_lab(rgb).reshape(-1, 3)
    d2 = (lab**2).sum(1)[:, None] - 2.0 * lab @ _PROTO_LAB.T + (_PROTO_LAB**2).sum(1)[None]
    logits = -d2 / (2.0 * SOFTNESS**2)
    logits -= logits.max(-1, keepdims=True)
    member = np.exp(logits) @ _PROTO_ONEHOT
    return (member / member.sum(-1, keepdims=True)).astype(np.float32)


def pixel_terms(thumbs: np.ndarray) -> np.ndarray:
    """(n, h, w, 11): each uint8 RGB pixel's soft membership of each colour term (sums to 1)."""
    q = (np.asarray(thumbs, np.uint16) * LEVELS) >> 8  # 0..LEVELS-1 per channel
    index = (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]
    return _term_table()[index]


def subject_weights(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, h, w) pixel weights summing to 1: the network's activation times a centre prior."""
    n = saliency.shape[0]
    h, w = size
    gh, gw = saliency.shape[1:]
    rows = np.minimum((np.arange(h) * gh) // h, gh - 1)
    cols = np.minimum((np.arange(w) * gw) // w, gw - 1)
    act = np.maximum(np.asarray(saliency, np.float32), 0.0)[:, rows][:, :, cols]
    act = act / np.maximum(act.reshape(n, -1).mean(1), 1e-6)[:, None, None]
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    centre = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2.0 * CENTRE_SIGMA**2))
    weight = act * centre[None].astype(np.float32)
    return weight / np.maximum(weight.reshape(n, -1).sum(1), 1e-12)[:, None, None]


def image_colours(thumbs: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """(n, 11) unit rows: the square root of each image's subject-weighted colour distribution.

    `thumbs` are (n, h, w, 3) uint8 RGB thumbnails; `saliency` (n, gh, gw) activations.
    """
    member = pixel_terms(thumbs)
    weight = subject_weights(saliency, thumbs.shape[1:3])
    dist = np.einsum("nhwt,nhw->nt", member, weight)
    return np.sqrt(np.maximum(dist, 0.0)).astype(np.float32)


def query_colours(texts: list[str] | tuple[str, ...]) -> np.ndarray:
    """(n, 11): 1 for each basic colour term a text names (by any of its words), else 0."""
    out = np.zeros((len(texts), len(TERMS)), dtype=np.float32)
    index = {t: i for i, t in enumerate(TERMS)}
    for row, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            term = WORDS.get(word)
            if term is not None:
                out[row, index[term]] = 1.0
    return out


def colour_constants() -> dict[str, object]:
    """Everything that decides the colour blocks (for the recipe fingerprint)."""
    return {
        "terms": TERMS,
        "prototypes": PROTOTYPES,
        "words": WORDS,
        "softness": SOFTNESS,
        "centre_sigma": CENTRE_SIGMA,
        "levels": LEVELS,
    }


def names_colour(text: str) -> bool:
    """Whether `text` uses a colour word (the colour-caption subset of an evaluation)."""
    return bool(query_colours([text]).any())
