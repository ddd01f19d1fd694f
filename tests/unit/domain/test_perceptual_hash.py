"""domain/perceptual_hash.py: dHash bits, Hamming distances."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from viewfinder.domain.perceptual_hash import dhash, hamming, hamming_matrix


def noise(seed: int, size: tuple[int, int] = (120, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 12, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def test_copies_hash_close_and_other_pictures_far() -> None:
    picture = noise(1)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=60)
    copies = [Image.open(io.BytesIO(buf.getvalue())), picture.resize((60, 40))]
    for copy in copies:
        assert hamming(dhash(picture), dhash(copy)) <= 6
    assert hamming(dhash(picture), dhash(noise(2))) > 14


def test_hash_is_a_signed_64_bit_integer() -> None:
    bright_right = Image.fromarray(np.tile(np.arange(0, 255, 2, dtype=np.uint8), (16, 1)))
    value = dhash(bright_right)  # every neighbour brighter: all 64 bits set
    assert value == -1 and -(2**63) <= value < 2**63
    assert dhash(Image.new("L", (16, 16), 7)) == 0
    assert hamming(value, 0) == 64


def test_hamming_matrix_matches_pairwise() -> None:
    hashes = [dhash(noise(s)) for s in range(4)]
    matrix = hamming_matrix(np.array(hashes, dtype=np.int64))
    for i, a in enumerate(hashes):
        for j, b in enumerate(hashes):
            assert matrix[i, j] == hamming(a, b)
