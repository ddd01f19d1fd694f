"""Writes the HEIC fixtures beside this file (dev only: needs `pip install pillow-heif`, whose
wheels carry the x265 encoder; Viewfinder itself decodes with pi-heif, which has none).

    python tests/data/heic/make.py

- two_tone.heic: 96 x 64, red left half, blue right half;
- rotated.heic: the same with EXIF orientation 6 ("rotate 90 degrees clockwise to view"),
  which pillow-heif writes as the container's rotation: it reads as 64 x 96, red on top.
"""

from __future__ import annotations

from pathlib import Path

import pillow_heif
from PIL import Image

HERE = Path(__file__).resolve().parent


def two_tone(width: int, height: int) -> Image.Image:
    im = Image.new("RGB", (width, height), (30, 30, 220))
    im.paste((220, 30, 30), (0, 0, width // 2, height))
    return im


def main() -> None:
    pillow_heif.register_heif_opener()
    two_tone(96, 64).save(HERE / "two_tone.heic", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    two_tone(96, 64).save(HERE / "rotated.heic", quality=90, exif=exif.tobytes())


if __name__ == "__main__":
    main()
