"""A local `viewfinder search` loads only what a text query needs: run as a user runs it, in a
process of its own, it imports no HTTP stack, web framework or other backend, and reads
nothing of the image side of the built-in model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import png_bytes
from tests.unit.cli.runner import RED, invoke
from tests.unit.test_first_run import needs_builtin
from viewfinder.config import Settings
from viewfinder.embedders.builtin.class_table import TABLES
from viewfinder.local_client import LocalClient

# what a local text search has no use for: the HTTP client and server stacks (httpx comes with
# `viewfinder.Client` and URL uploads), the ONNX graph library, the shared-store backends, MCP
HEAVY = {
    "httpx",
    "httpcore",
    "fastapi",
    "starlette",
    "uvicorn",
    "onnx",
    "boto3",
    "botocore",
    "psycopg",
    "psycopg_pool",
    "pymilvus",
    "mcp",
}

# The command as the `viewfinder` script runs it; at exit, the top-level packages it imported
# and the files Python opened (audit events: what ONNX Runtime reads itself is not among them)
CHILD = """
import json, sys
report, *args = sys.argv[1:]
opened = []
sys.addaudithook(lambda event, a: opened.append(str(a[0])) if event == "open" else None)
sys.argv = ["viewfinder", *args]
from viewfinder.cli import main
try:
    main()
finally:
    modules = sorted({name.split(".")[0] for name in sys.modules})
    with open(report, "w") as out:
        json.dump({"modules": modules, "opened": opened}, out)
"""


def _search(tmp_path: Path, data_dir: Path, model: str, query: str) -> dict[str, Any]:
    report = tmp_path / "report.json"
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIEWFINDER_SERVER", "VIEWFINDER_API_KEY")
    }
    args = ["search", query, "--data-dir", str(data_dir), "--model", model, "--json"]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    result["hits"] = json.loads(done.stdout)
    return result


def test_a_local_search_imports_no_other_stack(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "red.png").write_bytes(png_bytes(RED))
    data_dir = tmp_path / "data"
    assert invoke("index", str(photos), "--data-dir", str(data_dir)).exit_code == 0

    ran = _search(tmp_path, data_dir, "fake", "red")
    assert [hit["file_name"] for hit in ran["hits"]] == ["red.png"]
    assert HEAVY.isdisjoint(ran["modules"]), HEAVY.intersection(ran["modules"])


@pytest.mark.model
@needs_builtin
def test_a_local_search_reads_only_the_text_side_of_the_builtin_model(
    tmp_path: Path, model_cache_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    with LocalClient(Settings(data_dir=data_dir, model="builtin")) as local:  # the session's cache
        (uploaded,) = local.upload([("red.png", png_bytes(RED))])
        local.wait_until_indexed([uploaded.image_id])

    ran = _search(tmp_path, data_dir, "builtin", "a red square")
    assert [hit["image_id"] for hit in ran["hits"]] == [uploaded.image_id]
    assert HEAVY.isdisjoint(ran["modules"]), HEAVY.intersection(ran["modules"])
    # the image tower's graph and the class table are all the model cache holds: neither is
    # read, nor the shipped class table
    cache = str(model_cache_dir)
    assert not [p for p in ran["opened"] if p.startswith(cache)]
    assert str(TABLES / "minilm.npz") not in ran["opened"]
    assert "onnxruntime" in ran["modules"]  # the text tower did run
