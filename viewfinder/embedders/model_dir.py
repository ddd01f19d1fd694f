"""A model directory in the immich layout: checking that it is complete and reading its
configuration files (the ONNX towers themselves load in `onnx_clip.py`).

    ViT-B-32__openai/
      config.json                    open_clip config: embed_dim, vision_cfg, text_cfg
      visual/model.onnx              the image tower
      visual/preprocess_cfg.json     size, mean, std, interpolation, resize_mode, fill_color
      textual/model.onnx             the text tower
      textual/tokenizer.json         a Hugging Face `tokenizers` file
      textual/tokenizer_config.json  optional: pad/eos token names (HF-style tokenizers)
      viewfinder.json                optional: {"model_id": ..., "calibration": {"center", "slope"}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigurationError

Family = Literal["clip", "siglip"]

FIX = (
    "point VIEWFINDER_MODEL at a complete immich-layout model directory "
    "or run `viewfinder models pull NAME`"
)
REQUIRED_FILES = (
    "config.json",
    "visual/model.onnx",
    "visual/preprocess_cfg.json",
    "textual/model.onnx",
    "textual/tokenizer.json",
)
LFS_POINTER = b"version https://git-lfs"


@dataclass(frozen=True)
class Calibration:
    """Logistic map from a text-image dot product to a [0, 1] score."""

    center: float
    slope: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.slope) and self.slope > 0):
            raise ConfigurationError(
                f"calibration needs a finite center and a positive slope, got {self}"
            )


# CLIP cosines between a query and a matching photo sit around 0.25-0.35, unrelated ones
# around 0.1-0.2. SigLIP's sit lower and spread wider (its own learned bias puts p=0.5 near
# 0.1 for full captions; short queries score below that).
DEFAULT_CALIBRATION: dict[Family, Calibration] = {
    "clip": Calibration(center=0.2, slope=30.0),
    "siglip": Calibration(center=0.08, slope=40.0),
}


@dataclass(frozen=True)
class ModelDir:
    """A validated model directory: its parsed configuration files and where the rest lie."""

    path: Path
    model_id: str
    family: Family
    config: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    tokenizer_cfg: dict[str, Any]
    calibration: Calibration | None

    @property
    def visual_model(self) -> Path:
        return self.path / "visual" / "model.onnx"

    @property
    def textual_model(self) -> Path:
        return self.path / "textual" / "model.onnx"

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "textual" / "tokenizer.json"

    @property
    def text_cfg(self) -> dict[str, Any]:
        text_cfg = self.config.get("text_cfg", {})
        return text_cfg if isinstance(text_cfg, dict) else {}


def load_model_dir(path: Path) -> ModelDir:
    """Check that `path` holds a complete immich-layout model and parse its JSON files."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConfigurationError(f"model directory {path} does not exist; {FIX}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ConfigurationError(f"model directory {path} lacks {', '.join(missing)}; {FIX}")
    for name in ("visual/model.onnx", "textual/model.onnx"):
        with (path / name).open("rb") as head:
            if head.read(len(LFS_POINTER)) == LFS_POINTER:
                raise ConfigurationError(
                    f"{path / name} is a Git LFS pointer, not the model; run `git lfs pull` "
                    f"in {path}, or {FIX}"
                )
    config = _read_json(path / "config.json")
    preprocess_cfg = _read_json(path / "visual" / "preprocess_cfg.json")
    tokenizer_cfg: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the latter wins
        if (path / "textual" / name).is_file():
            tokenizer_cfg.update(_read_json(path / "textual" / name))
    extra = _read_json(path / "viewfinder.json") if (path / "viewfinder.json").is_file() else {}

    model_id = str(extra.get("model_id") or config.get("model_id") or path.resolve().name)
    is_siglip = "siglip" in model_id.lower() or "init_logit_bias" in config
    calibration = None
    if "calibration" in extra:
        cal = extra["calibration"]
        try:
            calibration = Calibration(float(cal["center"]), float(cal["slope"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ConfigurationError(
                f"{path / 'viewfinder.json'}: calibration must be "
                f'{{"center": number, "slope": positive number}} ({exc})'
            ) from exc
    return ModelDir(
        path=path,
        model_id=model_id,
        family="siglip" if is_siglip else "clip",
        config=config,
        preprocess_cfg=preprocess_cfg,
        tokenizer_cfg=tokenizer_cfg,
        calibration=calibration,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}; {FIX}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} should hold a JSON object; {FIX}")
    return data
