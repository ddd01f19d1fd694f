"""The `viewfinder` command line: the only package that prints or exits.

Each module registers its commands on the group in `app`; importing them here wires them up.
"""

from __future__ import annotations

from . import evaluate, keys, mcp, models, scale, serve, tools  # noqa: F401  (registers commands)
from .app import cli


def main() -> None:
    """Entry point of the `viewfinder` script."""
    cli()
