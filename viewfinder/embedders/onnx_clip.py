"""A CLIP-style embedder over ONNX Runtime, loading a model directory in the immich layout.

    ViT-B-32__openai/
      config.json                    open_clip config: embed_dim, vision_cfg, text_cfg
      visual/model.onnx              "image" float32 (N,3,H,W) -> image embedding
      visual/preprocess_cfg.json     size, mean, std, interpolation, resize_mode, fill_color
      textual/model.onnx             "text" int32|int64 (N,context_length) -> text embedding
      textual/tokenizer.json         a Hugging Face `tokenizers` file
      textual/tokenizer_config.json  optional: pad/eos token names (HF-style tokenizers)
      viewfinder.json                optional: {"model_id": ..., "calibration": {"center", "slope"}}

CLIP text is open_clip's: start token, text, end token, truncated to the context length with
the end token kept, zero-padded. SigLIP and other HF tokenizers (no start token) get the
tokenizer's own special tokens and are padded with its pad id; SigLIP text is lowercased.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from ..domain.records import Tag
from ..errors import ConfigurationError
from .base import l2_normalize, logistic
from .model_dir import (
    DEFAULT_CALIBRATION,
    FIX,
    Calibration,
    Family,
    ModelDir,
    load_model_dir,
)
from .onnx_graph import Tower, external_data_files
from .runtime import InferenceSession, SessionFactory, create_session
from .tags import TagLimits
from .zero_shot import ZeroShotTagger

logger = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
START_TOKENS = ("<|startoftext|>", "<start_of_text>")
END_TOKENS = ("<|endoftext|>", "<end_of_text>")
RESIZE_MODES = ("shortest", "squash", "longest")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class Preprocess:
    """open_clip's image transform: resize (+ crop or pad), RGB, [0, 1], normalise, CHW."""

    height: int
    width: int
    mean: np.ndarray
    std: np.ndarray
    resample: Image.Resampling
    resize_mode: str
    fill_color: tuple[int, int, int]

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], fallback_size: int | None, source: Path
    ) -> Preprocess:
        """Build from a preprocess_cfg.json dict; `source` names the file in errors."""
        try:
            size: Any = cfg.get("size", fallback_size)
            height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
            mean = np.asarray(cfg.get("mean", OPENAI_MEAN), np.float32).reshape(-1)
            std = np.asarray(cfg.get("std", OPENAI_STD), np.float32).reshape(-1)
            resample = Image.Resampling[str(cfg.get("interpolation", "bicubic")).upper()]
            fill = cfg.get("fill_color", 0)
            fill_rgb = (fill,) * 3 if isinstance(fill, int) else tuple(int(c) for c in fill)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ConfigurationError(
                f"{source}: unusable preprocessing config ({exc}); {FIX}"
            ) from exc
        resize_mode = str(cfg.get("resize_mode", "shortest"))  # open_clip's default
        if resize_mode not in RESIZE_MODES:
            raise ConfigurationError(f"{source}: unsupported resize_mode {resize_mode!r}")
        if height <= 0 or width <= 0 or mean.size not in (1, 3) or std.size not in (1, 3):
            raise ConfigurationError(f"{source}: size, mean or std has the wrong shape")
        if np.any(std == 0):
            raise ConfigurationError(f"{source}: std must not contain zeros")
        return cls(height, width, mean, std, resample, resize_mode, fill_rgb[:3])  # type: ignore[arg-type]

    def __call__(self, image: Image.Image) -> np.ndarray:
        """One image as a normalised float32 (3, height, width) array."""
        image = self._resize(image if image.mode == "RGB" else image.convert("RGB"))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        return ((pixels - self.mean) / self.std).transpose(2, 0, 1).astype(np.float32)

    def _resize(self, image: Image.Image) -> Image.Image:
        th, tw = self.height, self.width
        w, h = image.size
        if self.resize_mode == "squash":
            return image.resize((tw, th), resample=self.resample)
        if self.resize_mode == "longest":  # fit inside, pad the rest with fill_color
            scale = min(th / h, tw / w)
            nw, nh = max(1, min(tw, round(w * scale))), max(1, min(th, round(h * scale)))
            canvas = Image.new("RGB", (tw, th), self.fill_color)
            canvas.paste(
                image.resize((nw, nh), resample=self.resample), ((tw - nw) // 2, (th - nh) // 2)
            )
            return canvas
        # "shortest": cover the target, then centre-crop (torchvision's Resize + CenterCrop).
        if w * th <= h * tw:
            nw, nh = tw, max(th, int(h * tw / w))
        else:
            nw, nh = max(tw, int(w * th / h)), th
        if (nw, nh) != (w, h):
            image = image.resize((nw, nh), resample=self.resample)
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        return image.crop((left, top, left + tw, top + th))


@dataclass(frozen=True)
class TokenBatch:
    """Token ids and their attention mask (1: a token, 0: padding), both (n, length) int64."""

    ids: np.ndarray
    mask: np.ndarray


class TextTokenizer:
    """Turns texts into fixed-length id rows (and attention masks) the textual model expects.

    CLIP text is framed by hand as open_clip does. Other tokenizers (SigLIP, M-CLIP's
    XLM-RoBERTa and LaBSE) add their own special tokens, truncate and pad as immich has them
    do: to the context length, with the pad token of tokenizer_config.json.
    """

    def __init__(self, model: ModelDir, context_length: int) -> None:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(model.tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ConfigurationError(f"cannot load {model.tokenizer_file}: {exc}; {FIX}") from exc
        # Padding or truncation saved in the file would fight ours; turn them off before sharing.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.context_length = context_length
        self.bos_id = _first_id(tokenizer, START_TOKENS)
        self.eos_id = _first_id(tokenizer, END_TOKENS)
        self.mode: Literal["clip", "hf"] = "clip"
        self.pad_id = 0  # open_clip pads CLIP text with zeros after the end token
        if model.family == "siglip" or self.bos_id is None or self.eos_id is None:
            self.mode = "hf"
            self.pad_id = _special_id(tokenizer, model.tokenizer_cfg, "pad_token") or 0
            self.eos_id = _special_id(tokenizer, model.tokenizer_cfg, "eos_token")
            # the tokenizer keeps its closing special token when it truncates
            tokenizer.enable_truncation(max_length=context_length)
            pad_token = tokenizer.id_to_token(self.pad_id) or ""
            tokenizer.enable_padding(length=context_length, pad_id=self.pad_id, pad_token=pad_token)
        kwargs = model.text_cfg.get("tokenizer_kwargs") or {}
        self.clean = "whitespace"
        if isinstance(kwargs, dict) and kwargs.get("clean") == "canonicalize":
            self.clean = "canonicalize"
        elif model.family == "siglip":
            self.clean = "lower"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(n, context_length) int64 token ids."""
        return self.encode(texts).ids

    def encode(self, texts: Sequence[str]) -> TokenBatch:
        """Token ids and attention masks, (n, context_length) each."""
        cleaned = [self._clean(text) for text in texts]
        special = self.mode == "hf"
        encodings = self._tokenizer.encode_batch(cleaned, add_special_tokens=special)
        if special:
            ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            return TokenBatch(ids, mask.reshape(ids.shape))
        ids = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            framed = self._frame(list(encoding.ids))
            ids[row, : len(framed)] = framed
            mask[row, : len(framed)] = 1
        return TokenBatch(ids, mask)

    def _frame(self, ids: list[int]) -> list[int]:
        assert self.bos_id is not None and self.eos_id is not None
        return [self.bos_id, *ids[: self.context_length - 2], self.eos_id]

    def _clean(self, text: str) -> str:
        if self.clean == "canonicalize":
            text = text.translate(_PUNCTUATION).lower()
        elif self.clean == "lower":
            text = text.lower()
        return " ".join(text.split())


def _session(factory: SessionFactory, path: Path) -> InferenceSession:
    """Open one graph; when it fails for want of its external weight files, name them."""
    try:
        return factory(path)
    except ConfigurationError as exc:
        try:
            missing = [
                name for name in external_data_files(path) if not (path.parent / name).is_file()
            ]
        except ConfigurationError:
            raise exc from None
        if not missing:
            raise
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise ConfigurationError(
            f"{path} keeps its weights in files beside it, and {shown} "
            f"{'is' if len(missing) == 1 else 'are'} missing; {FIX}"
        ) from exc


def _imagenet_names() -> list[str]:
    from .builtin.classes import class_names  # the built-in model's vocabulary, loaded lazily

    return class_names()


def _first_id(tokenizer: Any, names: Sequence[str]) -> int | None:
    for name in names:
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            return int(token_id)
    return None


def _special_id(tokenizer: Any, cfg: dict[str, Any], key: str) -> int | None:
    token = cfg.get(key)
    if isinstance(token, dict):  # AddedToken serialised as {"content": ...}
        token = token.get("content")
    if isinstance(token, str):
        return _first_id(tokenizer, [token])
    return None


class OnnxClipEmbedder:
    """Image and text embeddings from an immich-layout CLIP/SigLIP model directory."""

    def __init__(
        self,
        model_dir: Path,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        calibration: tuple[float, float] | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self._model = model = load_model_dir(model_dir)
        factory = session_factory or partial(
            create_session,
            providers=providers,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            hint=f"the model directory {model.path} looks corrupt; {FIX}",
        )
        self._visual = Tower.open(
            _session(factory, model.visual_model), model.visual_model, text=False, fix=FIX
        )
        self._textual = Tower.open(
            _session(factory, model.textual_model), model.textual_model, text=True, fix=FIX
        )
        self._dim = self._check_dim()
        self._preprocess = Preprocess.from_config(
            model.preprocess_cfg,
            (model.config.get("vision_cfg") or {}).get("image_size"),
            model.path / "visual" / "preprocess_cfg.json",
        )
        self._check_image_size()
        self._tokenizer = TextTokenizer(model, self._context_length())
        self._tagger = ZeroShotTagger(self.embed_texts, _imagenet_names)
        if calibration is not None:
            self._calibration = Calibration(float(calibration[0]), float(calibration[1]))
        else:
            self._calibration = model.calibration or DEFAULT_CALIBRATION[model.family]
        logger.info(
            "loaded %s model %s from %s (dim %d)",
            model.family,
            model.model_id,
            model.path,
            self._dim,
        )

    @property
    def model_id(self) -> str:
        return self._model.model_id

    @property
    def min_image_side(self) -> int:
        """Twice the tower's input side: what images need on their shorter side
        (`embedders.base.min_image_side`)."""
        return 2 * max(self._preprocess.height, self._preprocess.width)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def family(self) -> Family:
        return self._model.family

    @property
    def calibration(self) -> Calibration:
        return self._calibration

    @property
    def tokenizer(self) -> TextTokenizer:
        return self._tokenizer

    @property
    def preprocess(self) -> Preprocess:
        return self._preprocess

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 unit vectors, one per image."""
        if not images:
            return np.zeros((0, self._dim), np.float32)
        pixels = np.stack([self._preprocess(image) for image in images])
        return self._finish(self._visual(pixels), self._visual.path)

    def embed_and_tag(
        self, images: Sequence[Image.Image], limits: TagLimits
    ) -> tuple[np.ndarray, list[list[Tag]]]:
        """`embed_images`, with zero-shot tags over the ImageNet vocabulary (zero_shot.py)."""
        vectors = self.embed_images(images)
        return vectors, self._tagger.tag(vectors, limits)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, one per text."""
        if not texts:
            return np.zeros((0, self._dim), np.float32)
        tokens = self._tokenizer.encode(texts)
        return self._finish(self._textual(tokens.ids, tokens.mask), self._textual.path)

    def calibrate(
        self, similarities: np.ndarray, query_vector: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores in [0, 1], monotonic in the dot product (one map for every query)."""
        return logistic(similarities, self._calibration.center, self._calibration.slope)

    def _finish(self, vectors: np.ndarray, path: Path) -> np.ndarray:
        if vectors.shape[1] != self._dim:
            raise ConfigurationError(
                f"{path} produced {vectors.shape[1]}-d vectors, expected {self._dim}; {FIX}"
            )
        return l2_normalize(vectors)

    def _check_dim(self) -> int:
        model = self._model
        configured = model.config.get("embed_dim")
        if configured is not None and not isinstance(configured, int):
            raise ConfigurationError(f"{model.path / 'config.json'}: embed_dim must be an integer")
        for tower in (self._visual, self._textual):
            found = tower.static_dim(-1, "output")
            if found is not None and configured is not None and found != configured:
                raise ConfigurationError(
                    f"{tower.path} outputs {found}-d vectors but {model.path / 'config.json'} "
                    f"says embed_dim {configured}; {FIX}"
                )
            configured = configured if configured is not None else found
        if not isinstance(configured, int) or configured <= 0:
            raise ConfigurationError(
                f"{model.path / 'config.json'} lacks embed_dim and the ONNX output is dynamic"
            )
        return configured

    def _check_image_size(self) -> None:
        expected = (self._visual.static_dim(2, "input"), self._visual.static_dim(3, "input"))
        got = (self._preprocess.height, self._preprocess.width)
        if all(e is not None for e in expected) and expected != got:
            raise ConfigurationError(
                f"{self._visual.path} expects {expected[0]}x{expected[1]} images but "
                f"{self._model.path / 'visual' / 'preprocess_cfg.json'} resizes to "
                f"{got[0]}x{got[1]}; {FIX}"
            )

    def _context_length(self) -> int:
        configured = int(self._model.text_cfg.get("context_length", 77))
        static = self._textual.static_dim(1, "input")
        if static is not None and static != configured:
            logger.warning(
                "%s takes %d tokens, config.json says %d; using %d",
                self._textual.path,
                static,
                configured,
                static,
            )
            return static
        return configured
