"""Retrieval metrics, calibration tables and captioned-folder loading on hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.errors import ValidationError
from viewfinder.evaluation import (
    calibration_table,
    caption_queries,
    fit_logistic,
    load_captioned_folder,
    rank_metrics,
    relevance_matrix,
)


def test_ranks_without_ties() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # target 0 at rank 1
            [0.9, 0.8, 0.7, 0.1],  # target 2 at rank 3
            [0.5, 0.6, 0.7, 0.1],  # target 3 at rank 4
        ]
    )
    m = rank_metrics(scores, np.array([0, 2, 3]))
    assert (m.n_queries, m.n_images) == (3, 4)
    assert m.recall_at_1 == pytest.approx(100 / 3)
    assert m.recall_at_5 == m.recall_at_10 == 100.0
    assert m.median_rank == 3.0
    assert m.mean_rank == pytest.approx(8 / 3)


def test_ties_are_broken_fairly() -> None:
    # target tied with 3 others, one image strictly above: rank uniform on 2..5
    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.5, 0.1]])
    m = rank_metrics(scores, np.array([1]))
    assert m.median_rank == 1 + 1 + 3 / 2
    assert m.recall_at_1 == 0.0
    assert m.recall_at_5 == 100.0
    scores = np.array([[0.5] * 20])  # all tied: rank uniform on 1..20
    m = rank_metrics(scores, np.array([7]))
    assert m.recall_at_1 == pytest.approx(5.0)
    assert m.recall_at_5 == pytest.approx(25.0)
    assert m.recall_at_10 == pytest.approx(50.0)
    assert m.median_rank == 10.5


def test_constant_scores_match_random_ranking_in_expectation() -> None:
    n = 50
    m = rank_metrics(np.zeros((n, n)), np.arange(n))
    assert m.recall_at_10 == pytest.approx(100 * 10 / n)
    assert m.median_rank == (n + 1) / 2


def test_rank_metrics_validate_shapes() -> None:
    with pytest.raises(ValueError):
        rank_metrics(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError):
        rank_metrics(np.zeros((1, 3)), np.array([3]))


def test_calibration_table() -> None:
    scores = np.array([[0.9, 0.6, 0.2], [0.4, 0.8, 0.35]])
    relevant = relevance_matrix(np.array([0, 2]), 3)
    rows = calibration_table(scores, relevant, thresholds=(0.3, 0.5, 0.95))
    assert [r.threshold for r in rows] == [0.3, 0.5, 0.95]
    assert rows[0].predicted == 5 and rows[0].precision == pytest.approx(2 / 5)
    assert rows[0].recall == 1.0
    assert rows[1].predicted == 3 and rows[1].precision == pytest.approx(1 / 3)
    assert rows[1].recall == 0.5
    assert rows[2].predicted == 0 and rows[2].precision is None and rows[2].recall == 0.0
    assert rows[0].relevant == 2


def test_fit_logistic_recovers_parameters() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, 20000)
    y = rng.random(s.size) < 1 / (1 + np.exp(-8.0 * (s - 0.3)))
    center, slope = fit_logistic(s, y)
    assert center == pytest.approx(0.3, abs=0.03)
    assert slope == pytest.approx(8.0, rel=0.1)
    with pytest.raises(ValueError):
        fit_logistic(s, np.zeros(s.size, bool))


def test_balanced_fit_puts_one_half_where_the_likelihood_ratio_is_one() -> None:
    # matches 1 in 100, similarities N(0.6, 0.1) vs N(0.2, 0.1): the densities cross at 0.4
    rng = np.random.default_rng(1)
    y = rng.random(100_000) < 0.01
    s = np.where(y, rng.normal(0.6, 0.1, y.size), rng.normal(0.2, 0.1, y.size))
    center, slope = fit_logistic(s, y, balanced=True)
    assert center == pytest.approx(0.4, abs=0.02)
    assert slope == pytest.approx(40.0, rel=0.15)  # (0.6 - 0.2) / 0.1^2
    plain, _ = fit_logistic(s, y)  # the rare matches pull the plain fit's 0.5 higher
    assert plain == pytest.approx(0.4 + 0.01 * np.log(99) / 0.4, abs=0.03)


def _folder(tmp_path: Path, lines: list[str], images: tuple[str, ...] = ("a.jpg", "b.png")) -> Path:
    (tmp_path / "images").mkdir()
    for name in images:
        Image.new("RGB", (4, 4)).save(tmp_path / "images" / name)
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_load_captioned_folder(tmp_path: Path) -> None:
    lines = [
        json.dumps({"image": "a.jpg", "captions": ["a cat", "a small cat"], "extra": 1}),
        "",
        json.dumps({"image": "b.png", "captions": ["a dog"]}),
    ]
    items = load_captioned_folder(_folder(tmp_path, lines))
    assert [i.name for i in items] == ["a.jpg", "b.png"]
    assert items[0].captions == ("a cat", "a small cat")
    assert items[0].path == tmp_path / "images" / "a.jpg"
    texts, targets = caption_queries(items)
    assert texts == ["a cat", "a small cat", "a dog"]
    assert targets.tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1: not JSON"),
        ("[1, 2]", "expected an object"),
        (json.dumps({"image": "missing.jpg", "captions": ["x"]}), "does not exist"),
        (json.dumps({"image": "../a.jpg", "captions": ["x"]}), "file name"),
        (json.dumps({"image": "a.jpg", "captions": []}), "non-empty list"),
        (json.dumps({"image": "a.jpg", "captions": "a cat"}), "non-empty list"),
        (json.dumps({"captions": ["x"]}), '"image"'),
    ],
)
def test_malformed_caption_lines(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_captioned_folder(_folder(tmp_path, [line]))


def test_malformed_folders(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a directory"):
        load_captioned_folder(tmp_path / "nope")
    with pytest.raises(ValidationError, match="images/"):
        load_captioned_folder(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(ValidationError, match="captions.jsonl"):
        load_captioned_folder(tmp_path)
    (tmp_path / "captions.jsonl").write_text("\n")
    with pytest.raises(ValidationError, match="lists no images"):
        load_captioned_folder(tmp_path)


def test_duplicate_images_are_rejected(tmp_path: Path) -> None:
    line = json.dumps({"image": "a.jpg", "captions": ["x"]})
    with pytest.raises(ValidationError, match="listed twice"):
        load_captioned_folder(_folder(tmp_path, [line, line]))


def test_subset_metrics_split_colour_and_person_captions() -> None:
    from viewfinder.evaluation import caption_subsets, subset_metrics

    texts = ["a red car", "a man riding a horse", "a bowl of soup", "A woman in a Blue dress"]
    masks = caption_subsets(texts)
    assert masks["colour"].tolist() == [True, False, False, True]
    assert masks["person"].tolist() == [False, True, False, True]
    scores = np.tile([0.1, 0.2, 0.3, 0.9], (4, 1))  # every query ranks image 3 first
    subsets = subset_metrics(scores, np.array([3, 0, 1, 3]), texts)
    assert subsets["colour"].n_queries == 2 and subsets["colour"].recall_at_1 == 100.0
    assert subsets["person"].n_queries == 2 and subsets["person"].recall_at_1 == 50.0
