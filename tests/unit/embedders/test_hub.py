"""`pull_model` against a local stand-in for the Hugging Face hub: all offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.config import Settings
from viewfinder.embedders.catalog import MARKER, Manifest, model_status, resolve_model
from viewfinder.embedders.factory import load_embedder
from viewfinder.embedders.hub import pull_model
from viewfinder.embedders.hub_files import wanted
from viewfinder.embedders.onnx_clip import OnnxClipEmbedder
from viewfinder.errors import ConfigurationError
from viewfinder.testing import build_tiny_clip
from viewfinder.testing.fake_hub import FakeHub

NAME = "ViT-B-32__openai"  # the fake hub serves the tiny model under this catalogue name
ONNX = "visual/model.onnx"
EXTRA = {
    "README.md": b"# a model card\n",
    ".gitattributes": b"*.onnx filter=lfs\n",
    "visual/rknpu/rk3588/model.rknn": b"\0" * 300,
    "textual/fp16/model.armnn": b"\0" * 300,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("src") / "Tiny")


@pytest.fixture
def hub(tiny: Path) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        fake.add_repo(f"immich-app/{NAME}", tiny, extra=EXTRA)
        yield fake


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def pull(hub: FakeHub, data: Path, name: str = NAME, **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("retry_delay_s", 0.0)
    return pull_model(name, data, endpoint=hub.url, **kwargs)  # type: ignore[arg-type]


def onnx_size(tiny: Path) -> int:
    return (tiny / ONNX).stat().st_size


def test_pull_fetches_the_layout_and_the_model_loads(hub: FakeHub, data: Path, tiny: Path) -> None:
    result = pull(hub, data)
    assert result.path == data / "models" / NAME and not result.already_present
    assert result.revision == hub.repos[f"immich-app/{NAME}"].commit
    fetched = {hit.file for hit in hub.downloads()}
    assert fetched == {p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file()}
    assert not any(name in fetched for name in EXTRA)  # README, other runtimes' exports
    manifest = Manifest.load(result.path)
    assert manifest is not None and set(manifest.files) == fetched
    assert result.size == manifest.size == result.downloaded
    assert not list(result.path.rglob("*.part"))

    pulled, source = OnnxClipEmbedder(resolve_model(NAME, data)), OnnxClipEmbedder(tiny)
    image = [Image.new("RGB", (40, 30), (200, 30, 30))]
    np.testing.assert_array_equal(pulled.embed_images(image), source.embed_images(image))
    np.testing.assert_array_equal(pulled.embed_texts(["red"]), source.embed_texts(["red"]))


def test_progress_is_reported_up_to_the_total(hub: FakeHub, data: Path) -> None:
    reports: list[tuple[int, int]] = []
    result = pull(hub, data, progress=lambda done, total: reports.append((done, total)))
    assert reports[-1] == (result.size, result.size)
    assert all(total == result.size for _, total in reports)


def test_second_pull_verifies_locally_without_the_network(hub: FakeHub, data: Path) -> None:
    pull(hub, data)
    before = len(hub.hits)
    again = pull(hub, data)
    assert again.already_present and again.downloaded == 0
    assert len(hub.hits) == before


def test_interrupted_pull_resumes_where_it_stopped(hub: FakeHub, data: Path, tiny: Path) -> None:
    half = onnx_size(tiny) // 2
    hub.drop(ONNX, at=half)
    with pytest.raises(ConfigurationError, match="again to continue from the .* bytes kept"):
        pull(hub, data, retries=0)
    model_dir = data / "models" / NAME
    assert (model_dir / f"{ONNX}.part").stat().st_size == half
    assert not (model_dir / MARKER).exists() and model_status(model_dir) == "incomplete"
    with pytest.raises(ConfigurationError, match=f"incomplete.*viewfinder models pull {NAME}"):
        resolve_model(NAME, data)  # what `serve` would say

    first = len(hub.downloads())
    result = pull(hub, data, retries=0)
    resumed = hub.downloads()[first:]
    onnx_hits = [hit for hit in resumed if hit.file == ONNX]
    assert [(hit.range, hit.sent) for hit in onnx_hits] == [
        (f"bytes={half}-", onnx_size(tiny) - half)
    ]
    assert {hit.file for hit in resumed} == {ONNX, "visual/preprocess_cfg.json"}  # the rest
    assert resolve_model(NAME, data) == result.path


def test_dropped_connection_is_retried_within_one_pull(
    hub: FakeHub, data: Path, tiny: Path
) -> None:
    hub.drop(ONNX, at=100)
    hub.drop(ONNX, at=onnx_size(tiny) - 10)
    result = pull(hub, data, retries=2)
    ranges = [hit.range for hit in hub.downloads(ONNX)]
    assert ranges == [None, "bytes=100-", f"bytes={onnx_size(tiny) - 10}-"]
    assert result.downloaded == result.size


def test_a_hub_that_ignores_range_sends_the_file_whole(hub: FakeHub, data: Path) -> None:
    hub.drop(ONNX, at=1000)
    with pytest.raises(ConfigurationError):
        pull(hub, data, retries=0)
    hub.ignore_range = True
    result = pull(hub, data, retries=0)
    assert resolve_model(NAME, data) == result.path
    assert OnnxClipEmbedder(result.path).dim == 16


def test_checksum_mismatch_deletes_the_file_and_fails(hub: FakeHub, data: Path) -> None:
    hub.corrupt.add(ONNX)
    with pytest.raises(ConfigurationError, match=f"{ONNX} .*failed its checksum.*deleted"):
        pull(hub, data)
    model_dir = data / "models" / NAME
    assert not (model_dir / ONNX).exists() and not (model_dir / f"{ONNX}.part").exists()
    assert not (model_dir / MARKER).exists()
    hub.corrupt.clear()
    assert pull(hub, data).downloaded > 0
    assert resolve_model(NAME, data) == model_dir


def test_bad_bytes_kept_from_an_earlier_attempt_are_fetched_whole(
    hub: FakeHub, data: Path, tiny: Path
) -> None:
    part = data / "models" / NAME / f"{ONNX}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * (onnx_size(tiny) // 2))  # not the file's first half
    result = pull(hub, data)
    assert [hit.range for hit in hub.downloads(ONNX)] == [f"bytes={onnx_size(tiny) // 2}-", None]
    assert (result.path / ONNX).read_bytes() == (tiny / ONNX).read_bytes()


def test_damaged_cached_file_is_cleared_and_fetched_once_more(
    hub: FakeHub, data: Path, tiny: Path
) -> None:
    model_dir = pull(hub, data).path
    onnx = model_dir / ONNX
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")  # same size: only a hash sees it
    first = len(hub.downloads())
    result = pull(hub, data)
    assert result.repaired == [ONNX] and not result.already_present
    assert [hit.file for hit in hub.downloads()[first:]] == [ONNX]
    assert onnx.read_bytes() == (tiny / ONNX).read_bytes()


def test_force_downloads_everything_again(hub: FakeHub, data: Path) -> None:
    first = pull(hub, data)
    count = len(hub.downloads())
    again = pull(hub, data, force=True)
    assert again.downloaded == first.size
    assert len(hub.downloads()) == 2 * count


def test_any_repository_in_the_immich_layout_can_be_pulled(
    hub: FakeHub, data: Path, tiny: Path
) -> None:
    hub.add_repo("someone/Tiny-CLIP", tiny)
    result = pull(hub, data, name="someone/Tiny-CLIP")
    assert result.path == data / "models" / "Tiny-CLIP"
    assert resolve_model("someone/Tiny-CLIP", data) == resolve_model("Tiny-CLIP", data)


def test_empty_files_are_pulled_too(hub: FakeHub, data: Path, tiny: Path) -> None:
    hub.add_repo("someone/Tiny-CLIP", tiny, extra={"textual/empty.txt": b""})
    result = pull(hub, data, name="someone/Tiny-CLIP")
    assert (result.path / "textual" / "empty.txt").read_bytes() == b""
    assert resolve_model("someone/Tiny-CLIP", data) == result.path


def test_hub_errors_are_clear(hub: FakeHub, data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no model repository nobody/nothing"):
        pull(hub, data, name="nobody/nothing")
    assert not (data / "models" / "nothing").exists()  # a typo leaves nothing behind
    with pytest.raises(ConfigurationError, match="has no revision 'v9'"):
        pull(hub, data, revision="v9")
    half = build_tiny_clip(tmp_path / "half")
    (half / "textual" / "model.onnx").unlink()
    hub.add_repo("someone/half", half)
    with pytest.raises(ConfigurationError, match="not a model in the immich ONNX layout.*textual"):
        pull(hub, data, name="someone/half")
    with pytest.raises(ConfigurationError, match="cannot reach the hub at http://127.0.0.1:9"):
        pull_model(NAME, data, endpoint="http://127.0.0.1:9", retry_delay_s=0)


def test_serving_a_model_that_is_not_pulled_never_downloads(hub: FakeHub, data: Path) -> None:
    settings = Settings(data_dir=data, model=NAME, hf_endpoint=hub.url)
    with pytest.raises(ConfigurationError, match=f"`viewfinder models pull {NAME}`"):
        load_embedder(settings)
    assert hub.hits == []


def test_a_pulled_model_is_selected_by_name_with_runtime_settings(hub: FakeHub, data: Path) -> None:
    pull(hub, data)
    settings = Settings(
        data_dir=data, model=NAME, providers="cpu", intra_op_threads=1, inter_op_threads=1
    )
    embedder = load_embedder(settings)
    assert isinstance(embedder, OnnxClipEmbedder)
    assert embedder.model_id == NAME and embedder.dim == 16


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("config.json", True),
        ("visual/model.onnx", True),
        ("visual/model.onnx_data", True),
        ("visual/preprocess_cfg.json", True),
        ("textual/tokenizer.json", True),
        ("textual/merges.txt", True),
        ("README.md", False),
        ("visual/rknpu/rk3588/model.rknn", False),
        ("textual/fp16/model.armnn", False),
        ("other/config.json", False),
    ],
)
def test_wanted_files(path: str, expected: bool) -> None:
    assert wanted(path) is expected


# --- weights kept beside the graph (models over 2 GB) ---------------------------------------

BIG = "someone/Tiny-Big"
STALE = "textual/1dc79532-4888-11ef-aebd-00155d655292"  # a leftover no graph names


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    external = {"visual": "single", "textual": "per_tensor"}
    return build_tiny_clip(tmp_path_factory.mktemp("src") / "Big", external_data=external)  # type: ignore[arg-type]


def weight_files(model: Path) -> set[str]:
    return {
        p.relative_to(model).as_posix()
        for p in model.rglob("*")
        if p.is_file()
        and p.parent.name in ("visual", "textual")
        and not wanted(p.relative_to(model).as_posix())
    }


def test_weights_the_graphs_name_are_pulled_and_verified(
    hub: FakeHub, data: Path, big: Path
) -> None:
    # per-tensor files have no suffix: the big one goes to LFS (sha256), the other stays in git
    repo = hub.add_repo(BIG, big, extra={STALE: b"\0" * 64}, lfs_min_size=5000)
    weights = weight_files(big)
    assert weights == {"textual/token_embedding", "textual/text_proj"}
    assert {repo.files[w].lfs for w in weights} == {True, False}
    reports: list[tuple[int, int]] = []
    result = pull(hub, data, name=BIG, progress=lambda done, total: reports.append((done, total)))

    fetched = {hit.file for hit in hub.downloads()}
    assert fetched == {p.relative_to(big).as_posix() for p in big.rglob("*") if p.is_file()}
    assert weights | {"visual/model.onnx_data"} <= fetched and STALE not in fetched
    manifest = Manifest.load(result.path)
    assert manifest is not None and set(manifest.files) == fetched
    assert reports[-1] == (result.size, result.size) == (manifest.size, manifest.size)
    pulled, source = OnnxClipEmbedder(resolve_model(BIG, data)), OnnxClipEmbedder(big)
    image = [Image.new("RGB", (40, 30), (30, 200, 30))]
    np.testing.assert_array_equal(pulled.embed_images(image), source.embed_images(image))
    np.testing.assert_array_equal(pulled.embed_texts(["green"]), source.embed_texts(["green"]))

    weight = result.path / "textual" / "token_embedding"
    weight.write_bytes(weight.read_bytes()[:-1] + b"\1")  # same size: only a hash sees it
    first = len(hub.downloads())
    again = pull(hub, data, name=BIG)
    assert again.repaired == ["textual/token_embedding"]
    assert [hit.file for hit in hub.downloads()[first:]] == ["textual/token_embedding"]


def test_a_weight_file_that_fails_its_checksum_is_deleted(
    hub: FakeHub, data: Path, big: Path
) -> None:
    hub.add_repo(BIG, big)
    hub.corrupt.add("textual/text_proj")
    with pytest.raises(ConfigurationError, match="textual/text_proj .*failed its checksum"):
        pull(hub, data, name=BIG)
    model_dir = data / "models" / "Tiny-Big"
    assert not (model_dir / "textual" / "text_proj").exists() and not (model_dir / MARKER).exists()
    with pytest.raises(ConfigurationError, match="incomplete"):
        resolve_model(BIG, data)
    hub.corrupt.clear()
    hub.drop("textual/text_proj", at=500)  # and an interrupted weight resumes
    result = pull(hub, data, name=BIG, retries=1)
    assert [h.range for h in hub.downloads("textual/text_proj")] == [None, None, "bytes=500-"]
    assert resolve_model(BIG, data) == result.path


def test_a_repository_without_a_named_weight_file_is_incomplete(
    hub: FakeHub, data: Path, big: Path, tmp_path: Path
) -> None:
    import shutil

    broken = Path(shutil.copytree(big, tmp_path / "broken"))
    (broken / "textual" / "token_embedding").unlink()
    hub.add_repo(BIG, broken)
    with pytest.raises(
        ConfigurationError, match="keeps weights in textual/token_embedding, which the repository"
    ):
        pull(hub, data, name=BIG)
    assert not (data / "models" / "Tiny-Big" / MARKER).exists()


def test_a_model_pulled_without_its_weights_is_completed(
    hub: FakeHub, data: Path, big: Path
) -> None:
    """What an older Viewfinder left: a marker listing the graphs, not the weights."""
    hub.add_repo(BIG, big)
    model_dir = pull(hub, data, name=BIG).path
    manifest = Manifest.load(model_dir)
    assert manifest is not None
    for name in weight_files(big) | {"visual/model.onnx_data"}:
        (model_dir / name).unlink()
        del manifest.files[name]
    manifest.save(model_dir)
    with pytest.raises(
        ConfigurationError, match="keeps its weights in files beside it, and .* missing"
    ):
        OnnxClipEmbedder(model_dir)
    first = len(hub.downloads())
    result = pull(hub, data, name=BIG)
    assert not result.already_present
    assert {h.file for h in hub.downloads()[first:]} == weight_files(big) | {
        "visual/model.onnx_data"
    }
    assert OnnxClipEmbedder(resolve_model(BIG, data)).dim == 16


def test_a_file_the_hub_gives_no_checksum_for_is_refused_if_needed(
    hub: FakeHub, data: Path, big: Path
) -> None:
    repo = hub.add_repo(BIG, big, extra={"README.md": b"# card\n"})
    repo.no_checksum.add("README.md")  # not needed: no matter
    assert pull(hub, data, name=BIG).downloaded > 0
    repo.no_checksum.add("textual/text_proj")  # a weight file the graph names
    with pytest.raises(ConfigurationError, match="no size or checksum for .*textual/text_proj"):
        pull(hub, data, name=BIG, force=True)
