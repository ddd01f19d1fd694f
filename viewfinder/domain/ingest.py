"""Decide whether uploaded bytes are an image we accept, and decode them safely.

The format is sniffed from the content (never from a file name), the pixel count is checked
from the header before any pixel is decoded, and an image is only accepted once it has really
been decoded, so a valid header followed by garbage is refused at ingest time.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import io
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image

from viewfinder.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError

from .exif import read_exif
from .metadata_rules import MetadataLimits
from .perceptual_hash import dhash, grey_of
from .records import Exif

logger = logging.getLogger(__name__)

# content type -> (magic prefixes, PIL plugins allowed to open it). The JPEG plugin also opens
# multi-picture JPEGs straight out of many cameras (Pillow reports them as format MPO; they are
# still image/jpeg); "MPO" is no opener of its own, and naming it made Pillow raise KeyError.
_SIGNATURES: tuple[tuple[str, tuple[bytes, ...], tuple[str, ...]], ...] = (
    ("image/jpeg", (b"\xff\xd8\xff",), ("JPEG",)),
    ("image/png", (b"\x89PNG\r\n\x1a\n",), ("PNG",)),
    ("image/gif", (b"GIF87a", b"GIF89a"), ("GIF",)),
    ("image/bmp", (b"BM",), ("BMP",)),
    ("image/tiff", (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), ("TIFF",)),
)
ACCEPTED_FORMATS = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF"
# HEIF files (an ISO media file whose major brand is one of these): HEIC, what iPhones save,
# decoded by pi-heif (libheif with the libde265 HEVC decoder, LGPL; no encoder).
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_JPEG_FORMATS = ("JPEG", "MPO")
_NAMES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/webp": "WebP",
    "image/heic": "HEIC",
    "image/avif": "AVIF",
}
# Bytes per pixel Pillow keeps in memory for a mode (RGB is stored 4 bytes a pixel).
_ONE_BYTE_MODES = ("1", "L", "P")
_TWO_BYTE_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# Modes Image.reduce takes: a large image is shrunk before its colour conversion.
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK")

# EXIF orientation -> the transpose that makes the image upright (the table Pillow's
# ImageOps.exif_transpose uses); kept here so inspect_image and decode_rgb always agree.
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = {5, 6, 7, 8}
_WHITE = (255, 255, 255, 255)


class DecodeBudget:
    """Bytes of decoded pixels all decodes of a process may hold at once (a weighted semaphore).

    A decode reserves its estimated memory before it starts and waits while the others hold
    too much, so peak decoding memory is this setting, not a function of what clients send.
    One image larger than the whole budget still decodes, alone.
    """

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        if max_bytes < 1:
            raise ValueError("a decode budget must be positive")
        self.max_bytes = max_bytes
        self._used = 0
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self.peak = 0  # the most bytes ever reserved at once (for tests and benchmarks)

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold `nbytes` (at most the whole budget) for the duration of the block."""
        need = max(0, min(nbytes, self.max_bytes))
        ticket = object()
        with self._cond:
            # First come, first served: a large decode is not overtaken forever by small ones.
            self._queue.append(ticket)
            while self._queue[0] is not ticket or self._used + need > self.max_bytes:
                self._cond.wait()
            self._queue.popleft()
            self._used += need
            self.peak = max(self.peak, self._used)
            self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._cond:
                self._used -= need
                self._cond.notify_all()


_M_TRIM_THRESHOLD = -1  # mallopt parameters, glibc's malloc.h
_M_MMAP_THRESHOLD = -3
# Above most of the hot path's blocks (a decoded 1024 x 768 photo is 3 MiB, a model batch of
# 4 images 3.2 MiB), below what a huge image takes: its memory still goes back when freed.
_MMAP_FROM_BYTES = 4 * 1024 * 1024
_TRIM_FROM_BYTES = 8 * 1024 * 1024  # free memory a heap keeps at its top before giving it back


def return_freed_pixels_to_the_os() -> bool:
    """Have glibc serve allocations of 4 MiB and more with mmap, so a huge decoded image's
    memory goes back to the system when it is freed; returns whether that took effect.

    By default glibc raises that threshold after the first large free (up to 32 MiB), and
    later image blocks (Pillow allocates 16 MiB at a time) land in per-thread heaps that keep
    the memory: with the decode budget one image was decoded at a time, yet each thread that
    had decoded one kept it, and the process grew by a budget per thread. A fixed threshold
    stops that. It stays above the blocks most indexed photos need (decoded pixels, model
    batches), and heaps keep up to 8 MiB of free memory: at 1 MiB, each of those blocks was a
    fresh mmap, faulted in page by page and zeroed, then unmapped, which cost the server
    about 2.5 ms of CPU an image (about 9% of its ingest rate, interleaved runs). At 8 MiB
    the huge-image uploads of tests/api/test_decode_memory.py grew the process by 164 MiB
    instead of 125. A process-wide setting, set once by whatever builds the service.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_FROM_BYTES)
    )


@dataclass(frozen=True)
class IngestLimits:
    """Upper bounds applied to every image before it is decoded."""

    max_file_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    budget: DecodeBudget = field(default_factory=DecodeBudget, compare=False)
    metadata: MetadataLimits = field(default_factory=MetadataLimits)


@dataclass(frozen=True)
class ImageInfo:
    """What ingest learned about an accepted image."""

    content_type: str
    format: str
    width: int  # after EXIF orientation: a photo shot in portrait reports portrait sides
    height: int
    size_bytes: int
    sha256: str
    exif: Exif | None = None  # capture time, camera, orientation, GPS (exif.py)
    phash: int | None = None  # 64-bit dHash of the picture (perceptual_hash.py)


def sniff_content_type(data: bytes) -> str | None:
    """The accepted content type the bytes start like, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/heic"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "image/avif"  # Pillow reads AVIF itself (libavif, in its wheels since 11.3)
    for content_type, magics, _ in _SIGNATURES:
        if data.startswith(magics):
            return content_type
    return None


def inspect_image(data: bytes, limits: IngestLimits) -> ImageInfo:
    """Validate uploaded bytes fully (type, size, pixel count, a real decode) and describe them."""
    if len(data) > limits.max_file_bytes:
        raise PayloadTooLarge(
            f"image is {len(data)} bytes, larger than the limit of {limits.max_file_bytes} bytes "
            "(setting VIEWFINDER_MAX_FILE_BYTES)"
        )
    with _open(data, limits.max_pixels) as (im, content_type):
        width, height = im.size
        fmt = im.format or ""
        if fmt in _JPEG_FORMATS:
            # libjpeg still reads every coded block (so damage is found) but keeps 1/8 scale.
            im.draft(im.mode, (1, 1))
        # Held until the pixels are freed: the decoded image, and the grey copy (maybe turned
        # upright) that dHash reads. Released at load, a second huge decode could start while
        # this one's pixels were still held.
        grey = im.size[0] * im.size[1]
        with limits.budget.reserve(_pixel_bytes(im) + 2 * grey):
            try:
                im.load()
            except Exception as exc:  # Pillow raises many types for corrupt data
                raise _decode_error(exc, content_type) from None
            if _orientation(im) in _SWAPS_SIDES:
                width, height = height, width
            exif = read_exif(im)  # after load: a PNG may keep its eXIf chunk after the pixels
            phash = _phash(im)
            im.close()  # frees the pixels while they are still reserved
    return ImageInfo(
        content_type=content_type,
        format=fmt,
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        exif=exif,
        phash=phash,
    )


def _phash(im: Image.Image) -> int | None:
    """The upright picture's dHash (None when the decoded mode can't be made grey)."""
    try:
        orientation = _orientation(im)
        grey = grey_of(im)  # turned upright after: a grey copy is a quarter of an RGB one
        return dhash(grey.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else grey)
    except (OSError, ValueError):
        return None


def decode_rgb(
    data: bytes,
    max_pixels: int,
    max_side: int | None = None,
    budget: DecodeBudget | None = None,
    min_side: int | None = None,
) -> Image.Image:
    """Decode to an upright RGB image (first frame, alpha on white), optionally shrunk to fit
    `max_side` on its longer side, and further, while its shorter side keeps `min_side` (what
    a model needs: `decode_for_model`); the decode waits for its share of `budget`."""
    if (max_side is not None and max_side < 1) or (min_side is not None and min_side < 1):
        raise ValueError("max_side and min_side must be positive")
    with _open(data, max_pixels) as (im, content_type):
        try:
            side = _long_side(im.size, max_side, min_side)
            if side is not None and im.format in _JPEG_FORMATS:
                # Lets libjpeg decode at 1/2, 1/4 or 1/8 scale, still at least the size wanted.
                im.draft("RGB", _fitted(im.size, side))
            # What is held at once: the decoded image and, at worst, RGBA and RGB copies of it.
            cost = _pixel_bytes(im) + _shrunk_pixels(im.size, side) * 12
            with budget.reserve(cost) if budget is not None else _no_reservation():
                im.load()
                orientation = _orientation(im)
                rgb = _to_rgb(_reduced(im, side))
                if side is not None and max(rgb.size) > side:
                    rgb.thumbnail((side, side), Image.Resampling.BICUBIC)
                if orientation in _TRANSPOSE:
                    rgb = rgb.transpose(_TRANSPOSE[orientation])
        except Exception as exc:
            raise _decode_error(exc, content_type) from None
    return rgb


# Images reach a model no larger than this on their long side, and no larger than the model
# needs (`decode_for_model`): decoding a 12-megapixel phone photo at reduced size costs a
# fraction of the full decode, and no model needs more.
MODEL_MAX_SIDE = 1024


def decode_for_model(data: bytes, limits: IngestLimits, min_side: int | None) -> Image.Image:
    """Decode stored bytes as a model gets them: at most MODEL_MAX_SIDE on the long side and,
    where the model says what it needs (`embedders.base.min_image_side`), shrunk to that on
    the shorter side. The indexing worker and a search by image decode alike, so the same
    picture gives the same vector."""
    return decode_rgb(
        data, limits.max_pixels, max_side=MODEL_MAX_SIDE, budget=limits.budget, min_side=min_side
    )


def _long_side(size: tuple[int, int], max_side: int | None, min_side: int | None) -> int | None:
    """The long side to shrink an image of `size` to: at most `max_side`, and no more than
    keeps `min_side` on its shorter side (None: keep it as it is)."""
    if min_side is None:
        return max_side
    short, long = min(size), max(size)
    needed = long if short <= min_side else -(-long * min_side // short)
    return needed if max_side is None else min(max_side, needed)


def _fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled so that its long side is `side` (never enlarged), rounded up."""
    width, height = size
    longest = max(width, height)
    if side >= longest:
        return size
    return max(1, -(-width * side // longest)), max(1, -(-height * side // longest))


@contextmanager
def _no_reservation() -> Iterator[None]:
    yield


def _pixel_bytes(im: Image.Image) -> int:
    """The memory Pillow takes for `im` once loaded (at its current, maybe drafted, size)."""
    per_pixel = 1 if im.mode in _ONE_BYTE_MODES else 2 if im.mode in _TWO_BYTE_MODES else 4
    return im.size[0] * im.size[1] * per_pixel


def _shrunk_pixels(size: tuple[int, int], max_side: int | None) -> int:
    """Pixels left after `_reduced` (an upper bound)."""
    width, height = size
    factor = _reduce_factor(size, max_side)
    return -(-width // factor) * -(-height // factor)


def _reduce_factor(size: tuple[int, int], max_side: int | None) -> int:
    # An integer factor that keeps the longer side at least max_side (the thumbnail that
    # follows makes the exact size with a good filter).
    return 1 if max_side is None else max(1, max(size) // max_side)


def _reduced(im: Image.Image, max_side: int | None) -> Image.Image:
    """`im` box-shrunk by an integer factor before colour conversion, when that is safe."""
    factor = _reduce_factor(im.size, max_side)
    if factor < 2 or im.mode not in _REDUCIBLE or "transparency" in im.info:
        return im
    return im.reduce(factor)


@contextmanager
def _open(data: bytes, max_pixels: int) -> Iterator[tuple[Image.Image, str]]:
    """Open lazily (header only) after sniffing, and enforce the pixel limit."""
    if not data:
        raise ValidationError("image is empty")
    content_type = sniff_content_type(data)
    if content_type is None:
        raise UnsupportedMediaType(
            f"unsupported image type; accepted formats are {ACCEPTED_FORMATS}"
        )
    try:
        im = Image.open(io.BytesIO(data), formats=_plugins(content_type))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own bomb guard fired while reading the header (the warning is an exception
        # when warnings are errors); its global limit is left alone.
        raise _too_many_pixels(None, max_pixels) from None
    except Exception as exc:
        raise _decode_error(exc, content_type) from None
    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise _too_many_pixels((width, height), max_pixels)
        yield im, content_type


def _plugins(content_type: str) -> list[str]:
    if content_type == "image/webp":
        return ["WEBP"]
    if content_type == "image/heic":
        _register_heif()
        return ["HEIF"]
    if content_type == "image/avif":
        return ["AVIF"]
    for ct, _, plugins in _SIGNATURES:
        if ct == content_type:
            return list(plugins)
    raise AssertionError(content_type)  # pragma: no cover - sniff only returns known types


@functools.cache
def _register_heif() -> None:
    """Let Pillow open HEIF files (once, on the first one: the import loads libheif)."""
    try:
        import pi_heif
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise UnsupportedMediaType(
            "this server cannot read HEIC images: its pi-heif package is missing "
            "(pip install pi-heif)"
        ) from None
    # libheif turns the picture upright itself and resets the EXIF orientation to 1, so the
    # orientation read below never turns it twice
    pi_heif.register_heif_opener()


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # corrupt EXIF must not sink an otherwise good image
        logger.debug("ignoring unreadable EXIF data", exc_info=True)
        return 1
    return value if isinstance(value, int) else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # Plain convert() would clip 16-bit samples to white; scale them to 8 bits instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if not has_alpha:
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE)
    background.alpha_composite(rgba)
    return background.convert("RGB")


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> PayloadTooLarge:
    what = f"{size[0]}x{size[1]} pixels" if size else "too many pixels"
    return PayloadTooLarge(f"image has {what}, more than the limit of {max_pixels} pixels")


def _decode_error(exc: Exception, content_type: str) -> ValidationError:
    """What is wrong with the file, in words: never a Python repr or a bare exception name."""
    if isinstance(exc, ValidationError):
        return exc
    kind = _NAMES.get(content_type, "image")
    text = str(exc)
    if "truncat" in text.lower():
        return ValidationError(
            f"could not decode image: the {kind} file is cut short (truncated); send the whole file"
        )
    message = (
        f"could not decode image: the file starts like a {kind} image, but its data is "
        f"damaged or in a {kind} variant this server cannot read"
    )
    if _wordy(text) and isinstance(exc, OSError | SyntaxError | ValueError):
        message += f" ({text.rstrip('.')})"
    return ValidationError(message)


def _wordy(text: str) -> bool:
    """Whether a library's message is words a person can act on (not a repr or a key)."""
    return " " in text and "<" not in text and " at 0x" not in text and len(text) <= 200
