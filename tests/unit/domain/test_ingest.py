from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from viewfinder.domain.ingest import (
    DecodeBudget,
    ImageInfo,
    IngestLimits,
    decode_for_model,
    decode_rgb,
    inspect_image,
    sniff_content_type,
)
from viewfinder.domain.perceptual_hash import dhash, hamming
from viewfinder.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError

LIMITS = IngestLimits()


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def two_tone(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue, so a rotation is visible in the pixels."""
    im = Image.new("RGB", (width, height), (255, 0, 0))
    im.paste((0, 0, 255), (width // 2, 0, width, height))
    return im


def noise(width: int, height: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), bytes(range(256)) * (width * height * 3 // 256))


def pixel(im: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = im.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims width x height, with whatever IDAT payload is given."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(two_tone(), "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("fmt", "content_type", "params"),
    [
        ("JPEG", "image/jpeg", {}),
        ("PNG", "image/png", {}),
        ("WEBP", "image/webp", {}),
        ("GIF", "image/gif", {}),
        ("BMP", "image/bmp", {}),
        ("TIFF", "image/tiff", {}),
        ("TIFF", "image/tiff", {"compression": "tiff_lzw"}),
    ],
)
def test_accepted_formats(fmt: str, content_type: str, params: dict[str, object]) -> None:
    data = encode(two_tone(), fmt, **params)
    info = inspect_image(data, LIMITS)
    assert replace(info, phash=None) == ImageInfo(
        content_type=content_type,
        format=fmt,
        width=40,
        height=20,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert info.phash is not None  # the picture's hash, whatever the (lossy) encoding
    assert hamming(info.phash, dhash(two_tone())) <= 8  # lossy WebP flips a few flat pixels


def test_format_comes_from_content_not_name() -> None:
    # The API takes no file name at all: PNG bytes uploaded as "notes.txt" are a PNG.
    data = encode(two_tone(), "PNG")
    assert sniff_content_type(data) == "image/png"
    assert inspect_image(data, LIMITS).content_type == "image/png"


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not an image\n",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        encode(two_tone(), "TGA"),  # Pillow reads it, we do not accept it
        encode(two_tone(), "PCX"),
    ],
    ids=["text", "pdf", "svg", "tga", "pcx"],
)
def test_other_content_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as err:
        inspect_image(data, LIMITS)
    assert err.value.status == 415
    assert "JPEG, PNG, WebP, GIF, BMP, TIFF" in err.value.message


def test_empty_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as err:
        inspect_image(b"", LIMITS)
    assert type(err.value) is ValidationError


def test_file_bigger_than_limit() -> None:
    data = encode(two_tone(), "PNG")
    with pytest.raises(PayloadTooLarge) as err:
        inspect_image(data, IngestLimits(max_file_bytes=len(data) - 1))
    assert err.value.status == 413
    assert str(len(data) - 1) in err.value.message
    assert "VIEWFINDER_MAX_FILE_BYTES" in err.value.message


@pytest.mark.parametrize(
    ("width", "height"),
    [(8_000, 8_000), (10_000, 10_000), (100_000, 100_000)],
    ids=["over-our-limit", "pillow-warning", "pillow-error"],
)
def test_decompression_bomb_rejected_from_header(width: int, height: int) -> None:
    data = png_header_only(width, height)
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge):
        inspect_image(data, LIMITS)
    with pytest.raises(PayloadTooLarge):
        decode_rgb(data, LIMITS.max_pixels)
    assert time.perf_counter() - started < 0.5


def test_pixel_limit_is_configurable() -> None:
    data = encode(two_tone(), "PNG")
    with pytest.raises(PayloadTooLarge, match="40x20"):
        inspect_image(data, IngestLimits(max_pixels=799))
    assert inspect_image(data, IngestLimits(max_pixels=800)).width == 40


def test_truncated_jpeg_is_rejected() -> None:
    data = encode(noise(256, 256), "JPEG", quality=90)
    with pytest.raises(ValidationError, match="could not decode image") as err:
        inspect_image(data[: len(data) // 2], LIMITS)
    assert type(err.value) is ValidationError
    with pytest.raises(ValidationError, match="could not decode image"):
        decode_rgb(data[: len(data) // 2], LIMITS.max_pixels)


def test_valid_header_with_garbage_body_is_rejected() -> None:
    data = png_header_only(64, 64, idat=b"\x00garbage, not zlib at all" * 10)
    with pytest.raises(ValidationError, match="could not decode image") as err:
        inspect_image(data, LIMITS)
    assert type(err.value) is ValidationError


def test_header_only_is_rejected() -> None:
    data = encode(noise(64, 64), "PNG")
    with pytest.raises(ValidationError, match="could not decode image"):
        inspect_image(data[:40], LIMITS)


def test_exif_orientation_swaps_sides() -> None:
    info = inspect_image(jpeg_with_orientation(6), LIMITS)
    assert (info.width, info.height) == (20, 40)
    assert inspect_image(jpeg_with_orientation(3), LIMITS).width == 40


def test_decode_applies_exif_orientation() -> None:
    im = decode_rgb(jpeg_with_orientation(6), LIMITS.max_pixels)
    assert im.mode == "RGB"
    assert im.size == (20, 40)
    # Orientation 6 is "rotate 90 degrees clockwise to view": the red left half ends up on top.
    red, _, blue = pixel(im, (10, 5))
    assert red > 200 and blue < 60
    red, _, blue = pixel(im, (10, 35))
    assert blue > 200 and red < 60


def test_decode_composites_alpha_on_white() -> None:
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    out = decode_rgb(encode(im, "PNG"), LIMITS.max_pixels)
    assert out.mode == "RGB"
    assert pixel(out, (3, 3)) == (255, 255, 255)
    assert pixel(out, (0, 0)) == (255, 0, 0)


def test_decode_palette_transparency_on_white() -> None:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    out = decode_rgb(encode(im, "GIF", transparency=0), LIMITS.max_pixels)
    assert pixel(out, (3, 3)) == (255, 255, 255)
    assert pixel(out, (0, 0)) == (255, 0, 0)


def test_decode_first_frame_of_animation() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_rgb(data, LIMITS.max_pixels)
    assert out.size == (8, 8)
    assert pixel(out, (4, 4)) == (255, 0, 0)


def test_decode_sixteen_bit_is_not_clipped_to_white() -> None:
    im = Image.new("I;16", (4, 4), 0x8000)
    out = decode_rgb(encode(im, "PNG"), LIMITS.max_pixels)
    assert out.mode == "RGB"
    assert 120 <= pixel(out, (0, 0))[0] <= 136


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_max_side_keeps_aspect(fmt: str) -> None:
    data = encode(two_tone(1600, 800), fmt)
    out = decode_rgb(data, LIMITS.max_pixels, max_side=224)
    assert out.size == (224, 112)
    assert out.mode == "RGB"
    red, _, blue = pixel(out, (10, 50))
    assert red > 200 and blue < 60


def test_decode_max_side_leaves_small_images_alone() -> None:
    out = decode_rgb(encode(two_tone(), "PNG"), LIMITS.max_pixels, max_side=224)
    assert out.size == (40, 20)


@pytest.mark.parametrize(
    ("size", "min_side", "expected"),
    [
        ((2000, 1500), 100, (134, 100)),  # a photo: shrunk until its shorter side is ~100
        ((1500, 2000), 100, (100, 134)),
        ((3000, 300), 100, (1000, 100)),  # a panorama keeps its shorter side too
        ((12000, 300), 100, (1024, 26)),  # ...within the long-side cap
        ((120, 90), 100, (120, 90)),  # already small: never enlarged
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_min_side_shrinks_to_what_the_model_needs(
    fmt: str, size: tuple[int, int], min_side: int, expected: tuple[int, int]
) -> None:
    data = encode(two_tone(*size), fmt)
    out = decode_rgb(data, LIMITS.max_pixels, max_side=1024, min_side=min_side)
    # the long side as computed; the shorter one as the resize rounds it (never below need)
    assert max(out.size) == max(expected)
    assert min(expected) <= min(out.size) <= min(expected) + 1
    assert (out.size[0] >= out.size[1]) == (expected[0] >= expected[1])


def test_decode_for_model_reads_a_big_jpeg_at_reduced_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 12-megapixel photo for a model that needs 520 px is decoded by libjpeg at 1/4 scale
    (1008 x 756), not at 1/2 (2016 x 1512) as the long-side cap alone would allow."""
    drafted: list[tuple[int, int]] = []
    draft = Image.Image.draft

    def spy(self: Image.Image, mode: str | None, size: tuple[int, int] | None) -> object:
        result = draft(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(Image.Image, "draft", spy)
    data = encode(two_tone(4032, 3024), "JPEG", quality=80)
    out = decode_for_model(data, LIMITS, 520)
    assert drafted == [(1008, 756)] and out.size[0] == 694 and out.size[1] in (520, 521)
    drafted.clear()
    assert decode_for_model(data, LIMITS, None).size == (1024, 768)  # a model that doesn't say
    assert drafted == [(2016, 1512)]


def test_decode_min_side_keeps_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    data = encode(two_tone(2000, 1000), "JPEG", quality=95, exif=exif.tobytes())
    out = decode_rgb(data, LIMITS.max_pixels, max_side=1024, min_side=100)
    assert out.size == (100, 200)
    red, _, blue = pixel(out, (50, 20))  # the red left half ends up on top
    assert red > 200 and blue < 60


def test_decode_rejects_unsupported_and_empty() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_rgb(b"hello", LIMITS.max_pixels)
    with pytest.raises(ValidationError):
        decode_rgb(b"", LIMITS.max_pixels)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xd8\xff" + b"\x00" * 50, "starts like a JPEG image, but its data is damaged"),
        (b"GIF89a" + b"\x00" * 10, "starts like a GIF image"),
        (b"II*\x00" + b"\x00" * 20, "starts like a TIFF image"),
        (encode(noise(64, 64), "PNG")[:60], "the PNG file is cut short"),
    ],
)
def test_decode_errors_say_what_is_wrong_in_words(data: bytes, words: str) -> None:
    for decode in (lambda: inspect_image(data, LIMITS), lambda: decode_rgb(data, 10**8, 64)):
        with pytest.raises(ValidationError) as err:
            decode()
        message = err.value.message
        assert message.startswith("could not decode image: ") and words in message, message
        assert "0x" not in message and "<" not in message and "'MPO'" not in message


def test_multi_picture_jpeg_is_a_jpeg() -> None:
    first, second = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), "blue")
    data = encode(first, "MPO", save_all=True, append_images=[second])
    info = inspect_image(data, LIMITS)
    assert (info.content_type, info.format, info.width, info.height) == (
        "image/jpeg",
        "MPO",
        64,
        48,
    )
    assert pixel(decode_rgb(data, LIMITS.max_pixels, 32), (5, 5))[0] > 200  # the first picture
    damaged = data[:300] + b"\x00" * 50
    with pytest.raises(ValidationError, match="JPEG"):
        inspect_image(damaged, LIMITS)


def test_inspecting_a_jpeg_decodes_it_reduced() -> None:
    data = encode(noise(2000, 1600), "JPEG", quality=80)
    limits = IngestLimits(budget=DecodeBudget())
    info = inspect_image(data, limits)
    assert (info.width, info.height) == (2000, 1600)
    # 1/8 scale: 250 x 200 pixels of 4 bytes (and 2 more for dHash's grey copies), not
    # 2000 x 1600
    assert limits.budget.peak == 250 * 200 * (4 + 2)
    broken = data[: len(data) // 2]
    with pytest.raises(ValidationError, match="cut short"):
        inspect_image(broken, limits)


def test_the_pixels_stay_reserved_until_freed(monkeypatch: pytest.MonkeyPatch) -> None:
    """EXIF and dHash read the decoded pixels after the load: another decode may not take
    their memory until they are freed."""
    from viewfinder.domain import ingest

    data = encode(noise(512, 300), "PNG")
    limits = IngestLimits(budget=DecodeBudget())
    held: list[int] = []
    phash = ingest._phash

    def watched(im: Image.Image) -> int | None:
        held.append(limits.budget._used)
        return phash(im)

    monkeypatch.setattr(ingest, "_phash", watched)
    inspect_image(data, limits)
    assert held == [512 * 300 * (4 + 2)]
    assert limits.budget._used == 0


def test_decodes_in_flight_stay_within_the_budget() -> None:
    data = encode(noise(1024, 1000), "PNG")
    one_inspect = 1024 * 1000 * 4
    budget = DecodeBudget(one_inspect * 2)
    limits = IngestLimits(budget=budget)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            if n % 2:
                inspect_image(data, limits)
            else:
                decode_rgb(data, limits.max_pixels, max_side=224, budget=budget)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert one_inspect <= budget.peak <= budget.max_bytes


def test_budget_lets_an_oversized_decode_run_alone() -> None:
    budget = DecodeBudget(100)
    with budget.reserve(10**9):
        assert budget.peak == 100
        entered = threading.Event()

        def other() -> None:
            with budget.reserve(1):
                entered.set()

        t = threading.Thread(target=other)
        t.start()
        assert not entered.wait(0.2)  # waits while the big one holds everything
    t.join(5)
    assert entered.is_set()


def test_budget_serves_first_come_first() -> None:
    budget = DecodeBudget(100)
    order: list[str] = []
    small_waiting = threading.Event()

    def take(name: str, nbytes: int, started: threading.Event | None = None) -> None:
        if started is not None:
            started.set()
        with budget.reserve(nbytes):
            order.append(name)

    with budget.reserve(60):
        big = threading.Thread(target=take, args=("big", 80))
        big.start()
        time.sleep(0.1)  # the big one is first in line, and does not fit yet
        small = threading.Thread(target=take, args=("small", 10, small_waiting))
        small.start()
        small_waiting.wait(5)
        time.sleep(0.1)
        assert order == []  # the small one would fit, but waits its turn
    big.join(5)
    small.join(5)
    assert order == ["big", "small"]


ALLOCATIONS = """
import resource
import numpy as np
from viewfinder.domain.ingest import return_freed_pixels_to_the_os
if not return_freed_pixels_to_the_os():
    print("skip")
    raise SystemExit
def faults(nbytes):
    np.ones(nbytes, np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = np.ones(nbytes, np.uint8)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults(3 * 2**20), faults(64 * 2**20))
"""


def test_photo_sized_blocks_are_reused_and_huge_ones_go_back_to_the_os() -> None:
    # in a process of its own: the allocator setting is process-wide
    out = subprocess.run(
        [sys.executable, "-c", ALLOCATIONS], capture_output=True, text=True, check=True
    ).stdout.split()
    if out == ["skip"]:
        pytest.skip("not glibc")
    photo, huge = (int(n) for n in out)
    # a 3 MiB block (a decoded photo, a model batch) is reused: no page faulted in again (with
    # glibc's mmap from 1 MiB, each of the 20 faulted in and zeroed its 768 pages)
    assert photo < 20, photo
    # a 64 MiB block is mapped afresh each time: its memory went back when it was freed
    assert huge >= 20, huge


HEIC = Path(__file__).resolve().parents[2] / "data" / "heic"


def test_heic_photos_are_accepted_decoded_and_upright() -> None:
    """iPhones save HEIC: it is sniffed, checked and decoded like the other formats."""
    data = (HEIC / "two_tone.heic").read_bytes()
    assert sniff_content_type(data) == "image/heic"
    info = inspect_image(data, LIMITS)
    assert (info.content_type, info.width, info.height) == ("image/heic", 96, 64)
    im = decode_rgb(data, LIMITS.max_pixels)
    assert im.size == (96, 64) and im.mode == "RGB"
    red, _, blue = pixel(im, (10, 32))
    assert red > 180 and blue < 80
    # turned upright once: libheif applies the rotation and resets the EXIF orientation
    rotated = (HEIC / "rotated.heic").read_bytes()
    info = inspect_image(rotated, LIMITS)
    assert (info.width, info.height) == (64, 96)
    im = decode_rgb(rotated, LIMITS.max_pixels, max_side=1024, min_side=32)
    assert im.size == (32, 48)
    red, _, blue = pixel(im, (16, 5))  # the red left half ends up on top
    assert red > 180 and blue < 80


def test_a_damaged_heic_is_a_clear_400() -> None:
    data = (HEIC / "two_tone.heic").read_bytes()
    with pytest.raises(ValidationError, match="starts like a HEIC image, but its data is damaged"):
        inspect_image(data[:300], LIMITS)


def test_avif_images_are_accepted_and_decoded() -> None:
    data = encode(two_tone(96, 64), "AVIF", quality=90)
    assert sniff_content_type(data) == "image/avif"
    info = inspect_image(data, LIMITS)
    assert (info.content_type, info.width, info.height) == ("image/avif", 96, 64)
    red, _, blue = pixel(decode_rgb(data, LIMITS.max_pixels), (10, 10))
    assert red > 180 and blue < 80
