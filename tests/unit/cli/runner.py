"""Running the `viewfinder` command in process, as the CLI tests do."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from viewfinder.cli import cli

ENV = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_POLL_INTERVAL_S": "0.05"}
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def invoke(*args: str) -> Result:
    # Server and key variables of the developer's shell must not leak into the tests.
    env = {**ENV, "VIEWFINDER_SERVER": None, "VIEWFINDER_API_KEY": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def as_json(result: Result) -> Any:
    """The JSON a successful command printed."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
