"""`viewfinder models list|pull|verify`, against a local stand-in for the Hugging Face hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from viewfinder.cli import cli
from viewfinder.testing import build_tiny_clip
from viewfinder.testing.fake_hub import FakeHub

NAME = "ViT-B-32__openai"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("src") / "Tiny")


@pytest.fixture
def hub(tiny: Path) -> Iterator[FakeHub]:
    with FakeHub() as fake:
        fake.add_repo(f"immich-app/{NAME}", tiny)
        yield fake


def run(hub: FakeHub, data: Path, *args: str, model: str = "builtin") -> Result:
    env = {
        "VIEWFINDER_DATA_DIR": str(data),
        "VIEWFINDER_HF_ENDPOINT": hub.url,
        "VIEWFINDER_MODEL": model,
    }
    return CliRunner().invoke(cli, list(args), env=env)


def line_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name} " in f"{line} ")


def test_list_shows_the_catalogue_and_what_is_pulled(hub: FakeHub, tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = run(hub, data, "models", "list")
    assert before.exit_code == 0, before.output
    assert "not pulled" in line_of(before.output, NAME)
    assert "512" in line_of(before.output, NAME) and "~605 MB" in line_of(before.output, NAME)
    assert line_of(before.output, "builtin").startswith("*")  # the selected model
    assert "nllb-clip-base-siglip__v1" in before.output
    assert hub.hits == []  # listing never asks the hub

    assert run(hub, data, "models", "pull", NAME).exit_code == 0
    after = run(hub, data, "models", "list", model=NAME)
    row = line_of(after.output, NAME)
    assert row.startswith("*") and "present" in row and "kB" in row


def test_pull_then_pull_again(hub: FakeHub, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run(hub, data, "models", "pull", NAME)
    assert first.exit_code == 0, first.output
    assert "checksums verified" in first.output and f"VIEWFINDER_MODEL={NAME}" in first.output
    second = run(hub, data, "models", "pull", NAME)
    assert second.exit_code == 0 and "already pulled and intact" in second.output


def test_pull_errors_exit_2_with_the_reason(hub: FakeHub, tmp_path: Path) -> None:
    result = run(hub, tmp_path / "data", "models", "pull", "ViT-Z-99")
    assert result.exit_code == 2 and "viewfinder models list" in result.output
    hub.corrupt.add("visual/model.onnx")
    result = run(hub, tmp_path / "data", "models", "pull", NAME)
    assert result.exit_code == 2 and "failed its checksum" in result.output


def test_verify_finds_damage(hub: FakeHub, tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(hub, data, "models", "pull", NAME)
    ok = run(hub, data, "models", "verify", NAME)
    assert ok.exit_code == 0, ok.output
    assert "match their checksums" in ok.output and "16-d" in ok.output
    config = data / "models" / NAME / "config.json"
    config.write_bytes(config.read_bytes()[:-2] + b" \n")
    bad = run(hub, data, "models", "verify", NAME)
    assert bad.exit_code == 2 and "config.json" in bad.output
    assert f"viewfinder models pull {NAME}" in bad.output


def test_serve_never_downloads_a_missing_model(hub: FakeHub, tmp_path: Path) -> None:
    result = run(hub, tmp_path / "data", "serve", "--port", "1", model=NAME)
    assert result.exit_code == 2
    assert f"`viewfinder models pull {NAME}`" in result.output
    assert hub.hits == []


def test_pulled_models_switch_with_reindexing(tiny: Path, tmp_path: Path) -> None:
    """Pull two models from the hub, index with one, then serve the other: a switch."""
    from tests.conftest import png_bytes
    from viewfinder.bootstrap import build_service, worker_options
    from viewfinder.config import Settings
    from viewfinder.domain.records import UploadItem
    from viewfinder.domain.service import ImageService, SearchRequest
    from viewfinder.indexing.worker import IndexingWorker

    other = build_tiny_clip(tmp_path / "src" / "Other", embed_dim=24, seed=1)
    data = tmp_path / "data"
    with FakeHub() as hub:
        hub.add_repo(f"immich-app/{NAME}", tiny)
        hub.add_repo("someone/Other-CLIP", other)
        assert run(hub, data, "models", "pull", NAME).exit_code == 0
        # plain HF_ENDPOINT (huggingface_hub's own variable) names the hub too
        env = {"VIEWFINDER_DATA_DIR": str(data), "HF_ENDPOINT": hub.url}
        pulled = CliRunner().invoke(cli, ["models", "pull", "someone/Other-CLIP"], env=env)
        assert pulled.exit_code == 0, pulled.output

    def open_service(model: str) -> tuple[ImageService, IndexingWorker]:
        settings = Settings(data_dir=data, model=model, batch_size=2)
        service = build_service(settings)
        service.start()
        return service, IndexingWorker(service, worker_options(settings))

    service, worker = open_service(NAME)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    records = service.upload("t", [UploadItem(data=png_bytes(c)) for c in colours])
    worker.drain()
    first_model = service.embedder.model_id
    worker.close()
    service.close()

    service, worker = open_service("Other-CLIP")  # selected by the name after the slash
    status = CliRunner().invoke(cli, ["status"], env={"VIEWFINDER_DATA_DIR": str(data)})
    assert status.exit_code == 0, status.output
    assert f"switch   {first_model} -> {service.embedder.model_id}: 0/3" in status.output
    hits = service.search("t", SearchRequest(query="red", max_results=3))
    assert {h.record.image_id for h in hits} == {r.image_id for r in records}  # still answers
    while worker.reembed_once():
        pass
    assert service.spaces.switch is None
    stored = service.vectors.stored_model()
    assert stored is not None and (stored.model_id, stored.dim) == (service.embedder.model_id, 24)
    assert service.vectors.ids() == {r.image_id for r in records}
    worker.close()
    service.close()
    after = CliRunner().invoke(cli, ["status"], env={"VIEWFINDER_DATA_DIR": str(data)})
    assert "switch" not in after.output and "indexed  3" in after.output


def test_the_pull_bar_grows_with_weight_files_found_on_the_way() -> None:
    from viewfinder.cli.models import _Bar

    bar = _Bar("m")
    bar(0, 100)
    bar(100, 150)  # the graphs named 50 more bytes of weights
    assert bar._bar is not None and bar._bar.total == 150
    bar.close()
