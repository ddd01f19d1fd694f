"""File names from uploads: what is kept and what is cleaned away."""

from __future__ import annotations

import pytest

from viewfinder.domain.file_names import MAX_FILE_NAME_CHARS, clean_file_name, file_name_of_url


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("cat.jpg", "cat.jpg"),
        ("  my dog.png ", "my dog.png"),
        ("../../etc/passwd", "passwd"),
        ("/home/me/Pictures/beach.jpeg", "beach.jpeg"),
        ("C:\\fakepath\\photo.JPG", "photo.JPG"),
        ("straße/Zürich.jpg", "Zürich.jpg"),
        ("Zu\u0308rich.jpg", "Zürich.jpg"),  # decomposed umlaut: NFC
        ("a\x00b\x1bc.png", "a\ufffdb\ufffdc.png"),
        ("bad\udcff.jpg", "bad\ufffd.jpg"),  # a lone surrogate from undecodable bytes
        ("😀.png", "😀.png"),
        ("", None),
        (None, None),
        ("..", None),
        ("photos/", None),
        ("   ", None),
    ],
)
def test_clean_file_name(raw: str | None, kept: str | None) -> None:
    assert clean_file_name(raw) == kept
    if kept is not None:
        kept.encode("utf-8")  # always storable and sendable


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = clean_file_name("x" * 1000 + ".jpeg")
    assert name is not None
    assert len(name) == MAX_FILE_NAME_CHARS
    assert name.endswith("….jpeg")
    no_ext = clean_file_name("y" * 1000)
    assert no_ext is not None and len(no_ext) == MAX_FILE_NAME_CHARS


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/photos/cat.jpg", "cat.jpg"),
        ("https://example.com/a/my%20dog.png?size=large#top", "my dog.png"),
        ("https://example.com/a/..%2F..%2Fsecret.png", "secret.png"),
        ("https://example.com/photos/", None),
        ("https://example.com", None),
        ("http://[::1", None),  # not a URL at all
        (None, None),
    ],
)
def test_file_name_of_url(url: str | None, name: str | None) -> None:
    assert file_name_of_url(url) == name
