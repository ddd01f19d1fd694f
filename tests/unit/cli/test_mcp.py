"""`viewfinder mcp` answers `initialize` and `list_tools` before its model has loaded."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import png_bytes

pytest.importorskip("mcp", reason="the mcp package is not installed")

LOAD_S = 2.0  # the test model takes this long to load, as a first build would


def test_initialize_and_list_tools_answer_while_the_model_loads(tmp_path: Path) -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    (tmp_path / "red.png").write_bytes(png_bytes((255, 0, 0)))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "viewfinder.cli", "mcp", "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "VIEWFINDER_MODEL": f"fake:0:{LOAD_S}"},
    )
    times: dict[str, float] = {}

    async def scenario() -> None:
        with anyio.fail_after(120), (tmp_path / "stderr.log").open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                tools = await session.list_tools()
                times["listed"] = time.monotonic()
                assert "search_images" in {t.name for t in tools.tools}
                # the first call waits for the model, then answers
                result: Any = await session.call_tool(
                    "upload_image", {"source": str(tmp_path / "red.png")}
                )
                times["answered"] = time.monotonic()
                assert not getattr(result, "is_error", getattr(result, "isError", False)), result

    anyio.run(scenario)
    # list_tools was answered while the model still had most of its load time to go
    assert times["answered"] - times["listed"] > LOAD_S / 2
    assert "ready after" in (tmp_path / "stderr.log").read_text()
