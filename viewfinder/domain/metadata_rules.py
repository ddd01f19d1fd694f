"""What image metadata the server accepts: JSON it can always serve back unchanged.

On the way in, `parse_json` reads a client's JSON text without letting it exhaust the
parser (nesting, integer digits, NaN) and `check_metadata` accepts an image's metadata only
when every listing, search and client can carry it: a JSON object, nested at most
`MAX_DEPTH` levels, of valid Unicode text, finite numbers and integers a JavaScript client
reads exactly, no bigger than a set number of bytes. Each refusal is a ValidationError naming
the field. On the way out, `servable_metadata` degrades what a row stored before these rules
may hold (a lone surrogate, NaN, too deep a nesting), so one bad row never breaks a listing.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError

log = logging.getLogger(__name__)

MAX_DEPTH = 32  # levels of objects and arrays, the metadata object itself included
MAX_SAFE_INTEGER = 2**53 - 1  # larger integers lose digits in JavaScript and most JSON tools
MAX_KEY_CHARS = 256
_MAX_INT_DIGITS = 16  # MAX_SAFE_INTEGER has 16 digits: longer ones are out of range


@dataclass(frozen=True)
class MetadataLimits:
    """How much metadata one image may carry."""

    max_bytes: int = 64 * 1024  # the image's metadata object as UTF-8 JSON


class _OutOfRange:
    """An integer literal too long to be JSON-safe, kept as text so it is reported, not built."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _OutOfRange:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _OutOfRange(text)
    return int(text)


def _parse_constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity: refused by the checks as non-finite


def parse_json(text: str, param: str) -> Any:
    """Parse a client's JSON text; an unparsable or too deeply nested text is a ValidationError."""
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{param} is not valid JSON ({exc.msg} at character {exc.pos})", param=param
        ) from None
    except RecursionError:
        raise ValidationError(
            f"{param} is nested too deeply; metadata may nest at most {MAX_DEPTH} levels",
            param=param,
        ) from None


def valid_unicode(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_metadata(value: Any, param: str, limits: MetadataLimits) -> dict[str, Any]:
    """Return `value` if it is metadata the server accepts, else raise naming the bad field."""
    if not isinstance(value, dict):
        raise ValidationError(f"{param} must be a JSON object", param=param)
    # Walked with a stack, not recursion: the depth is what is being checked.
    stack: list[tuple[Any, str, int]] = [(value, param, 1)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_DEPTH:
            raise ValidationError(
                f"{where}: metadata may nest at most {MAX_DEPTH} levels of objects and arrays",
                param=where,
            )
        if isinstance(node, dict):
            for key, child in node.items():
                _check_key(key, where)
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((child, f"{where}.{n}", depth + 1) for n, child in enumerate(node))
        else:
            _check_scalar(node, where)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limits.max_bytes:
        raise ValidationError(
            f"{param} is {size} bytes of JSON; at most {limits.max_bytes} "
            "(VIEWFINDER_MAX_METADATA_BYTES)",
            param=param,
        )
    return value


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str):  # only reachable from Python callers: JSON keys are text
        raise ValidationError(f"{where}: keys must be text", param=where)
    if not valid_unicode(key):
        raise ValidationError(
            f"{where}: a key is not valid Unicode (it holds a lone surrogate)", param=where
        )
    if len(key) > MAX_KEY_CHARS:
        raise ValidationError(
            f"{where}: a key is {len(key)} characters long; at most {MAX_KEY_CHARS}",
            param=where,
        )


def _check_scalar(node: Any, where: str) -> None:
    if node is None or isinstance(node, bool):
        return
    if isinstance(node, str):
        if not valid_unicode(node):
            raise ValidationError(
                f"{where}: text is not valid Unicode (it holds a lone surrogate)", param=where
            )
    elif isinstance(node, _OutOfRange) or (isinstance(node, int) and abs(node) > MAX_SAFE_INTEGER):
        raise ValidationError(
            f"{where}: integers must lie within ±{MAX_SAFE_INTEGER} (2**53-1); "
            "send larger ones as text",
            param=where,
        )
    elif isinstance(node, float):
        if not math.isfinite(node):
            raise ValidationError(f"{where}: numbers must be finite", param=where)
    elif not isinstance(node, int):
        raise ValidationError(
            f"{where}: values must be text, numbers, true, false, null, objects or arrays",
            param=where,
        )


def load_stored_metadata(text: str) -> dict[str, Any]:
    """A stored row's metadata JSON, servable (see `servable_metadata`); never raises, so one
    row a store decodes cannot fail a whole listing or search. Unreadable JSON reads as {}."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        log.warning("a stored row holds unreadable metadata JSON; serving it as {}")
        return {}
    return servable_metadata(value)


def servable_metadata(value: Any) -> dict[str, Any]:
    """`value` as it can always be served: lone surrogates replaced, NaN and infinities
    nulled, nesting past MAX_DEPTH cut to null. Good metadata comes back as the same object."""
    if not isinstance(value, dict):
        return {}
    if _servable(value, 1):
        return value
    repaired = _repair(value, 1)
    assert isinstance(repaired, dict)
    return repaired


def _servable(node: Any, depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(node, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            if level > MAX_DEPTH:
                return False
            for key, child in item.items():
                if not isinstance(key, str) or not valid_unicode(key):
                    return False
                stack.append((child, level + 1))
        elif isinstance(item, list):
            if level > MAX_DEPTH:
                return False
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, str):
            if not valid_unicode(item):
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif item is not None and not isinstance(item, int):
            return False
    return True


def _repair(node: Any, depth: int) -> Any:
    # Recursion is bounded: nothing deeper than MAX_DEPTH is descended into.
    if isinstance(node, dict | list) and depth > MAX_DEPTH:
        return None
    if isinstance(node, dict):
        return {servable_text(str(k)): _repair(v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_repair(v, depth + 1) for v in node]
    if isinstance(node, str):
        return servable_text(node)
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if node is None or isinstance(node, int):
        return node
    return servable_text(str(node))


def servable_text(text: str) -> str:
    """Lone surrogates become U+FFFD; a well-formed pair becomes the character it encodes."""
    if valid_unicode(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
