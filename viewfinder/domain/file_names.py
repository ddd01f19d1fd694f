"""The name an upload gives an image: kept for people to read, never used as a path.

A multipart part's `filename` and a URL's last path segment come from the caller, so they are
cleaned before they are stored: path components dropped (a browser or a script may send
`C:\\photos\\cat.jpg` or `../../etc/passwd`), control characters and lone surrogates replaced,
Unicode normalised (NFC), surrounding spaces trimmed, and the length bounded with the extension
kept. What is left empty (or only dots) is no name at all.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

# Characters, not bytes: a name is shown, never written to a file system.
MAX_FILE_NAME_CHARS = 255
_MAX_EXTENSION_CHARS = 16


def clean_file_name(raw: str | None) -> str | None:
    """A stored file name from an untrusted one, or None when nothing usable is left."""
    if not raw:
        return None
    # Lone surrogates (from undecodable header bytes) cannot be encoded as UTF-8 anywhere.
    text = raw.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(
        "\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c
        for c in unicodedata.normalize("NFC", text)
    ).strip()
    if not text.strip("."):
        return None
    if len(text) > MAX_FILE_NAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and len(ext) <= _MAX_EXTENSION_CHARS:
            text = stem[: MAX_FILE_NAME_CHARS - len(ext) - 2] + "…." + ext
        else:
            text = text[: MAX_FILE_NAME_CHARS - 1] + "…"
    return text


def file_name_of_url(url: str | None) -> str | None:
    """The last path segment of an image URL, percent-decoded and cleaned."""
    if not url:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    # `https://host/photos/` names a folder, not a file: no name
    return clean_file_name(unquote(path.rsplit("/", 1)[-1], errors="replace"))
