"""The model catalogue and the model cache: names, markers, errors that name the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from viewfinder.embedders.catalog import (
    CATALOG,
    MARKER,
    FileDigest,
    Manifest,
    cached_models,
    damaged_files,
    file_sha256,
    known_model,
    model_cache_dir,
    model_status,
    pull_target,
    resolve_model,
)
from viewfinder.errors import ConfigurationError
from viewfinder.testing import build_tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("src") / "Tiny")


def place(tiny: Path, data_dir: Path, name: str, repo_id: str, *, marker: bool = True) -> Path:
    """Put a model into the cache as a finished pull would (files, then the marker)."""
    local = repo_id.split("/", 1)[1] if "/" in name else name
    path = Path(shutil.copytree(tiny, model_cache_dir(data_dir) / local))
    if marker:
        files = {
            p.relative_to(path).as_posix(): FileDigest(p.stat().st_size, file_sha256(p))
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
        Manifest(name, repo_id, "0" * 40, files).save(path)
    return path


def test_catalogue_is_consistent() -> None:
    names = [model.name for model in CATALOG]
    assert len(names) == len(set(names))
    assert CATALOG[0].name == "builtin" and CATALOG[0].repo_id is None
    for model in CATALOG:
        if model.repo_id is None:
            assert model.name.startswith("builtin")
            continue
        assert model.repo_id == f"immich-app/{model.name}"
        assert model.dim in (512, 640, 768, 1024) and model.size_mb > 100
    assert {"ViT-B-32__openai", "ViT-B-16-SigLIP__webli", "nllb-clip-base-siglip__v1"} <= set(names)
    assert any("multilingual" in model.languages for model in CATALOG)


def test_pull_targets(tmp_path: Path) -> None:
    target = pull_target("ViT-B-32__openai", tmp_path)
    assert target.repo_id == "immich-app/ViT-B-32__openai"
    assert target.path == tmp_path / "models" / "ViT-B-32__openai"
    other = pull_target("someone/My-CLIP__x", tmp_path)
    assert (other.repo_id, other.path.name) == ("someone/My-CLIP__x", "My-CLIP__x")
    with pytest.raises(ConfigurationError, match="viewfinder models list"):
        pull_target("ViT-Z-99", tmp_path)
    with pytest.raises(ConfigurationError, match="ships with Viewfinder"):
        pull_target("builtin", tmp_path)
    assert known_model("ViT-B-32__openai") is not None and known_model("nope") is None


def test_pulled_model_resolves_by_name(tiny: Path, tmp_path: Path) -> None:
    path = place(tiny, tmp_path, "ViT-B-32__openai", "immich-app/ViT-B-32__openai")
    assert resolve_model("ViT-B-32__openai", tmp_path) == path
    assert resolve_model(" ViT-B-32__openai ", tmp_path) == path
    assert model_status(path) == "present"


def test_repo_id_pull_resolves_by_id_and_by_directory_name(tiny: Path, tmp_path: Path) -> None:
    path = place(tiny, tmp_path, "someone/Tiny-CLIP", "someone/Tiny-CLIP")
    assert resolve_model("someone/Tiny-CLIP", tmp_path) == path
    assert resolve_model("Tiny-CLIP", tmp_path) == path
    assert [(name, p) for name, p, _ in cached_models(tmp_path)] == [("someone/Tiny-CLIP", path)]


def test_a_directory_path_is_used_as_is(tiny: Path, tmp_path: Path) -> None:
    assert resolve_model(str(tiny), tmp_path) == tiny  # no marker needed for a path


def test_absent_model_names_the_pull_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_model("ViT-B-16-SigLIP__webli", tmp_path)
    message = info.value.message
    assert "`viewfinder models pull ViT-B-16-SigLIP__webli`" in message
    assert "never downloads" in message


def test_unknown_name_says_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_model("no-such-model", tmp_path)
    assert "`builtin`" in info.value.message and "viewfinder models list" in info.value.message


def test_partial_pull_is_refused(tiny: Path, tmp_path: Path) -> None:
    path = place(tiny, tmp_path, "ViT-B-32__openai", "immich-app/ViT-B-32__openai", marker=False)
    with pytest.raises(ConfigurationError, match="incomplete.*viewfinder models pull ViT-B-32"):
        resolve_model("ViT-B-32__openai", tmp_path)
    assert model_status(path) == "incomplete"


def test_truncated_file_is_refused(tiny: Path, tmp_path: Path) -> None:
    path = place(tiny, tmp_path, "ViT-B-32__openai", "immich-app/ViT-B-32__openai")
    onnx = path / "visual" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:100])
    with pytest.raises(ConfigurationError, match="damaged.*visual/model.onnx.*repair"):
        resolve_model("ViT-B-32__openai", tmp_path)
    assert model_status(path) == "incomplete"


def test_damaged_files_by_size_and_by_hash(tiny: Path, tmp_path: Path) -> None:
    path = place(tiny, tmp_path, "ViT-B-32__openai", "immich-app/ViT-B-32__openai")
    manifest = Manifest.load(path)
    assert manifest is not None and not damaged_files(path, manifest, hashes=True)
    config = path / "config.json"
    data = config.read_bytes()
    config.write_bytes(data[:-2] + b"X\n")  # same size, different bytes
    assert damaged_files(path, manifest, hashes=False) == []
    assert damaged_files(path, manifest, hashes=True) == ["config.json"]


def test_manifest_round_trip_and_unreadable_marker(tmp_path: Path) -> None:
    manifest = Manifest("n", "o/n", "abc", {"config.json": FileDigest(3, "f" * 64)})
    manifest.save(tmp_path)
    assert Manifest.load(tmp_path) == manifest
    assert manifest.size == 3
    (tmp_path / MARKER).write_text("{not json")
    assert Manifest.load(tmp_path) is None
    assert Manifest.load(tmp_path / "nowhere") is None


def test_status_of_a_missing_directory(tmp_path: Path) -> None:
    assert model_status(tmp_path / "nothing") == "absent"
    assert cached_models(tmp_path) == []
