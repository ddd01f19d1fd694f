"""EXIF at ingest: capture time, camera, orientation and GPS, and garbage that never fails."""

from __future__ import annotations

import io
import struct
from datetime import datetime, timezone

import pytest
from PIL import Image

from tests.exif_images import R, exif_block, jpeg_with_exif
from viewfinder.domain.exif import exif_from_dict, read_exif
from viewfinder.domain.ingest import IngestLimits, inspect_image
from viewfinder.domain.records import Exif, GpsPosition

LIMITS = IngestLimits()


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


def test_a_camera_jpeg_gives_every_field() -> None:
    info = inspect_image(jpeg_with_exif(exif_block(orientation=6)), LIMITS)
    assert info.exif == Exif(
        taken_at=utc(2023, 7, 14, 16, 30, 5),  # 18:30:05 at +02:00
        make="Canon",
        model="EOS R5",
        orientation=6,
        gps=GpsPosition(lat=48.8583694, lon=-2.2944667),
    )
    assert (info.width, info.height) == (48, 64)  # orientation still turns the sides


@pytest.mark.parametrize(
    ("fields", "taken_at"),
    [
        ({"offset": None}, utc(2023, 7, 14, 18, 30, 5)),  # no offset: read as UTC
        ({"offset": "-05:30"}, utc(2023, 7, 15, 0, 0, 5)),
        ({"offset": "bogus"}, utc(2023, 7, 14, 18, 30, 5)),
        (
            {"taken": None, "offset": None, "date_time": "2001:02:03 04:05:06"},
            utc(2001, 2, 3, 4, 5, 6),
        ),
        (
            {"taken": "0000:00:00 00:00:00", "date_time": "2001:02:03 04:05:06"},
            utc(2001, 2, 3, 4, 5, 6),
        ),
        ({"taken": "2023:13:45 99:00:00", "offset": None}, None),
        ({"taken": "sometime", "offset": None}, None),
    ],
)
def test_capture_time(fields: dict[str, object], taken_at: float | None) -> None:
    exif = inspect_image(jpeg_with_exif(exif_block(**fields)), LIMITS).exif  # type: ignore[arg-type]
    assert exif is not None and exif.taken_at == taken_at


@pytest.mark.parametrize(
    "gps",
    [
        ("N", (R(1, 0), R(0), R(0)), "E", (R(1), R(0), R(0))),  # zero denominator
        ("N", (R(200), R(0), R(0)), "E", (R(1), R(0), R(0))),  # past the pole
        ("X", (R(1), R(0), R(0)), "E", (R(1), R(0), R(0))),  # no such hemisphere
        ("N", (R(1), R(2), R(3), R(4)), "E", (R(1), R(0), R(0))),  # four parts
        ("N", (R(1), R(0), R(0)), None, None),  # half a position
    ],
)
def test_a_bad_gps_position_is_dropped_and_the_rest_kept(gps: tuple[object, ...]) -> None:
    if gps[2] is None:
        block = Image.Exif()
        block[0x010F] = "Canon"
        ifd = block.get_ifd(0x8825)
        ifd[1], ifd[2] = gps[0], gps[1]
        data = block.tobytes()
    else:
        data = exif_block(gps=gps)  # type: ignore[arg-type]
    exif = inspect_image(jpeg_with_exif(data), LIMITS).exif
    assert exif is not None and exif.gps is None and exif.make == "Canon"


def test_camera_names_are_cleaned_and_bounded() -> None:
    data = exif_block(make="  NIKON\x00\x00 ", model="X" * 500, orientation=99, gps=None)
    exif = inspect_image(jpeg_with_exif(data), LIMITS).exif
    assert exif is not None
    assert exif.make == "NIKON" and exif.model == "X" * 100 and exif.orientation is None


def test_southern_and_eastern_positions_are_signed() -> None:
    gps = ("S", (R(33), R(51), R(0)), "E", (R(151), R(12), R(36)))
    exif = inspect_image(jpeg_with_exif(exif_block(gps=gps)), LIMITS).exif
    assert exif is not None and exif.gps == GpsPosition(-33.85, 151.21)


def test_images_without_exif_have_none() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    assert inspect_image(buf.getvalue(), LIMITS).exif is None
    # a block holding only fields Viewfinder does not keep
    only_other = Image.Exif()
    only_other[0x0131] = "GIMP"  # Software
    assert inspect_image(jpeg_with_exif(only_other.tobytes()), LIMITS).exif is None


def _tiff_header_then(entries: bytes) -> bytes:
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + entries


@pytest.mark.parametrize(
    "garbage",
    [
        b"Exif\x00\x00" + b"\xff" * 40,  # not a TIFF header
        _tiff_header_then(struct.pack("<H", 0xFFFF)),  # 65535 entries, none there
        # an Exif sub-IFD and a GPS IFD pointing far past the end
        _tiff_header_then(
            struct.pack("<H", 2)
            + struct.pack("<HHII", 0x8769, 4, 1, 0x7FFFFFF0)
            + struct.pack("<HHII", 0x8825, 4, 1, 0x7FFFFFF0)
            + b"\x00\x00\x00\x00"
        ),
        # Make claims 2**31 ASCII bytes
        _tiff_header_then(struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 2**31, 26)),
    ],
)
# Pillow warns about corrupt EXIF (a UserWarning, which this suite turns into an error; a
# server only logs it): the warning is expected here, what is tested is that nothing fails.
@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
def test_malformed_exif_never_fails_an_image(garbage: bytes) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, "JPEG", exif=garbage)
    info = inspect_image(buf.getvalue(), LIMITS)  # accepted: its pixels are fine
    assert info.exif is None or isinstance(info.exif, Exif)
    assert info.width == 16


def test_an_exif_that_raises_reads_as_none() -> None:
    class Broken:
        def getexif(self) -> None:
            raise SyntaxError("not a TIFF file")

    assert read_exif(Broken()) is None  # type: ignore[arg-type]


def test_stored_form_round_trips() -> None:
    exif = inspect_image(jpeg_with_exif(), LIMITS).exif
    assert exif is not None and exif_from_dict(exif.to_dict()) == exif
    assert exif_from_dict({"taken_at": float("nan"), "make": "A"}) == Exif(make="A")
    assert exif_from_dict({"orientation": True}) is None
