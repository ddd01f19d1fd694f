"""The class tables the package ships: `python -m viewfinder.embedders.builtin.make_tables`.

A maintainer's task, after a change to the prompts or to a text tower's package (the key
test of tests/unit/embedders/test_builtin_class_table.py says when). Takes about a minute
for minilm and several for e5 on two cores.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cache import arrays_to_bytes
from .class_table import TABLES, TOWER_PACKAGES, build_tower, compute_table, table_key
from .classes import class_prompts

logger = logging.getLogger(__name__)


def write_shipped_tables(text_models: Sequence[str] = tuple(TOWER_PACKAGES)) -> list[Path]:
    """Compute each text model's class table and write it where the package ships it."""
    written = []
    prompts = class_prompts()
    for name in text_models:
        tower, workers = build_tower(name)
        classes = compute_table(tower, prompts, workers)
        path = TABLES / f"{name}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        key = np.array(table_key(name, prompts))
        path.write_bytes(arrays_to_bytes({"classes": classes, "key": key}))
        written.append(path)
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for done in write_shipped_tables(sys.argv[1:] or tuple(TOWER_PACKAGES)):
        logger.info("wrote %s", done)
