"""Built-in model v4: the hubness correction (builtin/hubness.py) and its shipped references."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from viewfinder.embedders.builtin import RECIPES, image_vectors, text_vectors
from viewfinder.embedders.builtin.colours import TERMS
from viewfinder.embedders.builtin.hubness import (
    hub_offsets,
    query_hub_dimension,
    with_hub_dimension,
)
from viewfinder.embedders.builtin.projection import load_shipped

REFERENCE = Path(__file__).parent / "data" / "projection_reference.npz"
DIM = 384 + len(TERMS) + 1


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_the_extra_dimension_subtracts_the_weighted_offset() -> None:
    rng = np.random.default_rng(0)
    images, queries = _unit(rng.standard_normal((6, 32))), _unit(rng.standard_normal((3, 32)))
    offsets = np.array([0.3, 0.5, 0.7, 0.4, 0.6, 0.55])
    weight, gain, centre = 0.3, 0.5, 0.5
    hubbed = with_hub_dimension(images, offsets, centre, weight, gain)
    q = query_hub_dimension(queries, gain)
    np.testing.assert_allclose(np.linalg.norm(hubbed, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    e = -weight * (offsets - centre) / gain
    want = np.sqrt(1 - e * e)[None] * (queries @ images.T) - weight * (offsets - centre)[None]
    np.testing.assert_allclose((q @ hubbed.T) * np.sqrt(1 + gain**2), want, atol=1e-5)


def test_hub_offsets_are_the_mean_of_the_k_nearest_references() -> None:
    rng = np.random.default_rng(1)
    images, bank = _unit(rng.standard_normal((4, 16))), _unit(rng.standard_normal((30, 16)))
    sims = images @ bank.T
    want = np.sort(sims, axis=1)[:, -5:].mean(axis=1)
    np.testing.assert_allclose(hub_offsets(images, bank, 5), want, atol=1e-6)
    np.testing.assert_allclose(hub_offsets(images, bank, 100), sims.mean(axis=1), atol=1e-6)


def test_a_photo_close_to_every_reference_query_loses_first_place() -> None:
    """Two photos equally close to a query: the "hub", near many reference captions, drops."""
    recipe = RECIPES["minilm"]
    rng = np.random.default_rng(2)
    hub_dir, other_dir = np.zeros(384, np.float32), np.zeros(384, np.float32)
    hub_dir[0], other_dir[1] = 1.0, 1.0
    query = _unit(hub_dir + other_dir)[None]
    semantic = np.stack([hub_dir, other_dir]) + 1e-3 * rng.standard_normal((2, 384))
    semantic = _unit(semantic.astype(np.float32))
    colours = np.zeros((2, len(TERMS)), np.float32)
    colours[:, TERMS.index("grey")] = 1.0
    # reference captions: many near the hub's direction, few near the other photo's
    refs = hub_dir + 0.03 * rng.standard_normal((40, 384))
    bank = text_vectors(recipe, _unit(refs.astype(np.float32)), ["x"] * 40)[:, :-1]
    plain = image_vectors(recipe, semantic, None, colours)
    offsets = hub_offsets(plain, _unit(bank), recipe.hub_k)
    hubbed = image_vectors(recipe, semantic, None, colours, (_unit(bank), float(offsets.mean())))
    q = text_vectors(recipe, query, ["a thing"])
    assert hubbed.shape == (2, DIM) and q.shape == (1, DIM)
    assert offsets[0] > offsets[1] + 0.2
    before = (q[:, :-1] @ plain.T)[0]
    after = (q @ hubbed.T)[0]
    assert abs(before[0] - before[1]) < 0.01  # a tie without the correction
    assert after[1] > after[0] + 0.05


def test_shipped_hubs_reproduce_their_reference_output() -> None:
    shipped = load_shipped("minilm", DIM)
    assert shipped.hubs is not None and shipped.hubs.shape[1] == DIM - 1
    assert len(shipped.hubs) >= 1000 and shipped.bank.shape[1] == DIM
    ref = np.load(REFERENCE)
    recipe = RECIPES["minilm"]
    offsets = hub_offsets(ref["plain"], shipped.hubs, recipe.hub_k)
    out = with_hub_dimension(
        ref["plain"], offsets, shipped.hub_centre, recipe.hub_weight, recipe.hub_gain
    )
    np.testing.assert_allclose(out, ref["hubbed"], atol=1e-5)
