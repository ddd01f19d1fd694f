"""Settings: environment parsing, and every setting documented in the README."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from viewfinder.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_environment_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIEWFINDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIEWFINDER_RATE_LIMITS", '{"search": "5/second"}')
    s = Settings()
    assert s.data_dir == tmp_path
    assert s.rate_limits == {"search": "5/second"}
    assert s.port == 8000 and s.host == "127.0.0.1"
    assert s.resolved_database_url() == f"sqlite:///{tmp_path.resolve() / 'viewfinder.db'}"
    assert Settings(data_dir=tmp_path / "x").data_dir == tmp_path / "x"  # arguments win


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [
        f"VIEWFINDER_{name.upper()}"
        for name in Settings.model_fields
        if f"`VIEWFINDER_{name.upper()}`" not in text
    ]
    assert not missing, f"settings missing from the README table: {missing}"


def test_settings_table_matches_code() -> None:
    from viewfinder.cli.app import settings_table

    assert settings_table() in README.read_text(), "run `viewfinder settings` and paste it"


def test_the_model_cache_defaults_to_the_user_cache_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VIEWFINDER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    from viewfinder.config import user_cache_dir

    if sys.platform.startswith("linux"):
        assert user_cache_dir() == tmp_path / "xdg" / "viewfinder"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
        assert user_cache_dir() == tmp_path / "home" / ".cache" / "viewfinder"
    assert Settings(data_dir=tmp_path / "a").resolved_cache_dir() == user_cache_dir()
    monkeypatch.setenv("VIEWFINDER_CACHE_DIR", str(tmp_path / "mine"))
    assert Settings().resolved_cache_dir() == tmp_path / "mine"
