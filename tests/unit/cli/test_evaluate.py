"""`viewfinder eval` on a generated captioned folder, with the fake model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from viewfinder.cli import cli

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def _folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    lines = []
    for name, rgb in COLOURS.items():
        Image.new("RGB", (32, 32), rgb).save(root / "images" / f"{name}.png")
        lines.append(json.dumps({"image": f"{name}.png", "captions": [f"a {name} square", name]}))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_eval_reports_recall(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "set")
    result = CliRunner().invoke(
        cli,
        ["eval", str(folder), "--model", "fake", "--json"],
        env={"VIEWFINDER_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["queries"] == 8 and figures["images"] == 4
    assert figures["recall_at_1"] == 100.0 and figures["median_rank"] == 1.0
    assert figures["indexing_images_per_s"] > 0
    assert [row["threshold"] for row in figures["calibration"]] == [0.3, 0.5, 0.7]
    # every "a <colour> square" caption names a colour; none names a person
    assert figures["subsets"]["colour"]["queries"] == 8
    assert figures["subsets"]["colour"]["recall_at_1"] == 100.0
    assert figures["subsets"]["person"]["queries"] == 0


def test_eval_text_output_and_bad_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "set")
    env = {"VIEWFINDER_DATA_DIR": str(tmp_path / "data")}
    ok = CliRunner().invoke(cli, ["eval", str(folder), "--model", "fake"], env=env)
    assert "Recall@1/5/10    100.0 / 100.0 / 100.0" in ok.output
    assert "colour captions  100.0 / 100.0 / 100.0  (8 queries)" in ok.output
    (folder / "captions.jsonl").write_text("{nope\n")
    bad = CliRunner().invoke(cli, ["eval", str(folder), "--model", "fake"], env=env)
    assert bad.exit_code == 2 and "not JSON" in bad.output


def test_eval_speed_leaves_out_loading_the_model(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "set")
    result = CliRunner().invoke(
        cli,
        ["eval", str(folder), "--model", "fake:0:2", "--json"],  # the model takes 2 s to load
        env={"VIEWFINDER_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["model_load_s"] >= 2.0
    # 4 images indexed in well under the load time: the rate does not count the load
    assert figures["images"] / figures["indexing_images_per_s"] < 1.5
