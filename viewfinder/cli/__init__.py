"""The `viewfinder` command line: the only package that prints or exits.

Each module registers its commands on the group in `app`; importing them here wires them up.
"""

from __future__ import annotations

from . import (  # noqa: F401  (registers commands)
    duplicates,
    evaluate,
    images,
    index,
    keys,
    mcp,
    models,
    scale,
    search,
    serve,
)
from .app import cli


def main() -> None:
    """Entry point of the `viewfinder` script."""
    cli()
