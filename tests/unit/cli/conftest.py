"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.unit.cli.runner import BLUE, GREEN, RED, YELLOW


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder tree: three images, a hidden one, a text file and a broken image."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    (root / ".cache").mkdir()
    (root / "red.png").write_bytes(png_bytes(RED))
    (root / "trip" / "green.png").write_bytes(png_bytes(GREEN))
    (root / "trip" / "day2" / "blue.PNG").write_bytes(png_bytes(BLUE))
    (root / ".cache" / "thumb.png").write_bytes(png_bytes(YELLOW))
    (root / "notes.txt").write_text("not an image")
    (root / "trip" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root
