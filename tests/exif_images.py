"""Images with EXIF blocks, written by Pillow, for the EXIF tests of every layer."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, TiffImagePlugin

R = TiffImagePlugin.IFDRational


def exif_block(
    *,
    taken: str | None = "2023:07:14 18:30:05",
    offset: str | None = "+02:00",
    date_time: str | None = None,
    make: Any = "Canon",
    model: Any = "EOS R5",
    orientation: Any = None,
    gps: tuple[Any, Any, Any, Any] | None = (
        "N",
        (R(48), R(51), R(3013, 100)),
        "W",
        (R(2), R(17), R(4008, 100)),
    ),
) -> bytes:
    """EXIF bytes with the fields given (None: left out); GPS as (lat ref, lat, lon ref, lon)."""
    exif = Image.Exif()
    for tag, value in ((0x010F, make), (0x0110, model), (0x0112, orientation), (0x0132, date_time)):
        if value is not None:
            exif[tag] = value
    sub = exif.get_ifd(0x8769)
    if taken is not None:
        sub[0x9003] = taken
    if offset is not None:
        sub[0x9011] = offset
    if gps is not None:
        ifd = exif.get_ifd(0x8825)
        ifd[1], ifd[2], ifd[3], ifd[4] = gps
    return exif.tobytes()


def jpeg_with_exif(
    exif: bytes | None = None,
    colour: tuple[int, int, int] = (200, 30, 30),
    size: tuple[int, int] = (64, 48),
) -> bytes:
    """A JPEG holding `exif` (default: `exif_block()`)."""
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", exif=exif_block() if exif is None else exif)
    return buf.getvalue()
