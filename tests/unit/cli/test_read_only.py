"""Commands that only read never create a data directory, nor anything else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.cli.runner import ENV, invoke
from viewfinder.cli import cli

READ_ONLY = [
    ["status"],
    ["search", "red"],
    ["images", "list"],
    ["images", "get", "some-id"],
    ["keys", "list"],
    ["keys", "revoke", "some-key"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_no_data_creates_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default data directory is ./viewfinder-data
    env = {**ENV, "VIEWFINDER_DATA_DIR": None, "VIEWFINDER_SERVER": None}
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert "no Viewfinder data in" in result.stderr and "viewfinder index" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_status_reads_an_existing_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert invoke("keys", "create", "acme", "--data-dir", str(data)).exit_code == 0
    shown = invoke("status", "--data-dir", str(data))
    assert shown.exit_code == 0, shown.output
    assert "indexed  0" in shown.stdout
    # the least free space under the stores, and where uploads would stop (the reserve)
    assert re.search(
        r"^disk +[0-9.]+ (GiB|MiB) free \(\w+ store\); uploads wait under 256.0 MiB$",
        shown.stdout,
        re.M,
    ), shown.stdout
    assert invoke("keys", "list", "--data-dir", str(data)).stdout.count("acme") == 1
