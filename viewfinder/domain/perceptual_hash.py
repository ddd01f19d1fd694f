"""A 64-bit difference hash (dHash) of an image: near-identical pictures get near-identical bits.

Re-encoding and resizing barely move the hash (it compares neighbouring pixels of a 9x8
grey thumbnail), so a small Hamming distance says "the same picture" where a model's vector
only says "the same kind of scene". Computed at ingest from the decoded image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_BITS = 64


def grey_of(image: Image.Image) -> Image.Image:
    """The image in grey ("L"): itself when it is grey already, not a copy."""
    return image if image.mode == "L" else image.convert("L")


def dhash(image: Image.Image) -> int:
    """The image's 64-bit difference hash, as a signed 64-bit integer (SQL BIGINT range)."""
    grey = grey_of(image).resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ between two hashes."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def hamming_matrix(hashes: np.ndarray) -> np.ndarray:
    """(n, n) Hamming distances between int64 hashes (for benchmarks and small groups)."""
    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    x = h[:, None] ^ h[None, :]
    bytes_ = x.view(np.uint8).reshape(len(h), len(h), 8)
    return np.unpackbits(bytes_, axis=2).sum(axis=2).astype(np.int32)
