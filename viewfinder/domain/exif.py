"""Read what an image's EXIF block says about how it was taken: time, camera, orientation, GPS.

Every field is read on its own and dropped when it is missing or malformed, so a damaged or
hostile EXIF block yields less, never an error: an image is accepted or refused for its pixels
alone (ingest.py).

The capture time is DateTimeOriginal, else DateTime (IFD0), as Unix seconds. EXIF writes it as
local wall-clock time; the offset tags of EXIF 2.31 (OffsetTimeOriginal, OffsetTime) place it
when present, and without one it is read as UTC (the file does not say where it was taken).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image

from .metadata_rules import servable_text
from .records import Exif, GpsPosition

logger = logging.getLogger(__name__)

# IFD0
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
# sub-IFDs
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# Exif IFD
_DATETIME_ORIGINAL, _OFFSET_TIME, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9010, 0x9011
# GPS IFD
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4

MAX_TEXT = 100  # characters kept of a make or model (they are short names; garbage is not)
_DATETIME_RE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"([+-])(\d{2}):(\d{2})")


def read_exif(im: Image.Image) -> Exif | None:
    """The EXIF fields Viewfinder keeps, from an opened image; None when it holds none."""
    try:
        tags = im.getexif()
    except Exception:  # Pillow raises many types for a corrupt block
        logger.debug("ignoring unreadable EXIF data", exc_info=True)
        return None
    if not tags:
        return None
    exif_ifd = _sub_ifd(tags, _EXIF_IFD)
    gps_ifd = _sub_ifd(tags, _GPS_IFD)
    original = _taken_at(exif_ifd.get(_DATETIME_ORIGINAL), exif_ifd.get(_OFFSET_TIME_ORIGINAL))
    exif = Exif(
        taken_at=(
            original
            if original is not None
            else _taken_at(tags.get(_DATETIME), exif_ifd.get(_OFFSET_TIME))
        ),
        make=_text(tags.get(_MAKE)),
        model=_text(tags.get(_MODEL)),
        orientation=_orientation(tags.get(_ORIENTATION)),
        gps=_gps(gps_ifd),
    )
    return exif if exif.to_dict() else None


def exif_from_dict(data: Any) -> Exif | None:
    """An Exif from its stored form (`Exif.to_dict`); what does not fit is dropped, so a bad
    row never fails a read."""
    if not isinstance(data, Mapping):
        return None
    taken_at = data.get("taken_at")
    gps = data.get("gps")
    position = None
    if isinstance(gps, Mapping):
        lat, lon = _number(gps.get("lat")), _number(gps.get("lon"))
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            position = GpsPosition(lat, lon)
    exif = Exif(
        taken_at=_number(taken_at),
        make=_text(data.get("make")),
        model=_text(data.get("model")),
        orientation=_orientation(data.get("orientation")),
        gps=position,
    )
    return exif if exif.to_dict() else None


def _sub_ifd(tags: Image.Exif, tag: int) -> Mapping[int, Any]:
    try:
        ifd = tags.get_ifd(tag)
    except Exception:  # a pointer to nowhere, a loop, a truncated IFD
        logger.debug("ignoring unreadable EXIF sub-IFD %#x", tag, exc_info=True)
        return {}
    return ifd if isinstance(ifd, Mapping) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value.replace("\x00", " ") if ch.isprintable()).strip()
    return servable_text(cleaned[:MAX_TEXT]) or None


def _orientation(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= 8 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _taken_at(value: Any, offset: Any) -> float | None:
    """Unix seconds of an EXIF "YYYY:MM:DD HH:MM:SS", placed by an offset like "+02:00"."""
    text = _text(value)
    match = _DATETIME_RE.match(text) if text else None
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        when = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:  # "0000:00:00 00:00:00", month 13 and friends
        return None
    offset_text = _text(offset)
    zone = _OFFSET_RE.fullmatch(offset_text) if offset_text else None
    if zone is not None:
        sign = -1 if zone.group(1) == "-" else 1
        shift = timedelta(hours=int(zone.group(2)), minutes=int(zone.group(3)))
        if shift <= timedelta(hours=14):
            when -= sign * shift
    return when.timestamp()


def _gps(ifd: Mapping[int, Any]) -> GpsPosition | None:
    lat = _degrees(ifd.get(_LAT), ifd.get(_LAT_REF), "N", "S")
    lon = _degrees(ifd.get(_LON), ifd.get(_LON_REF), "E", "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    return GpsPosition(round(lat, 7), round(lon, 7))


def _degrees(value: Any, ref: Any, positive: str, negative: str) -> float | None:
    """Degrees, minutes, seconds (three rationals) and a hemisphere letter, as signed degrees."""
    hemisphere = _text(ref)
    if hemisphere not in (positive, negative):
        return None
    if not isinstance(value, tuple | list) or not 1 <= len(value) <= 3:
        return None
    try:
        parts = [float(part) for part in value]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(p) and p >= 0 for p in parts):
        return None
    degrees = sum(p / 60**i for i, p in enumerate(parts))
    return -degrees if hemisphere == negative else degrees
