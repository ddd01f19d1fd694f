"""The MCP tools find_similar and find_duplicates, over a local data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import png_bytes
from tests.unit.client.test_similar_duplicates import COPY, PICTURE

pytest.importorskip("mcp", reason="the mcp package is not installed")

from tests.unit.test_mcp_server import (  # noqa: E402
    _error_text,
    _payload,
    _run,
    _thumbnails,
)


def test_find_similar_and_duplicates_carry_thumbnails(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    files = {
        "red.png": png_bytes((255, 0, 0)),
        "dark.png": png_bytes((200, 20, 0)),
        "blue.png": png_bytes((0, 0, 255)),
        "picture.png": PICTURE,
        "copy.jpg": COPY,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)

    async def scenario(session: Any) -> None:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert {"find_similar", "find_duplicates"} <= tools
        ids = {}
        for name in files:
            args = {"source": str(folder / name)}
            ids[name] = _payload(await session.call_tool("upload_image", args))["image_id"]
        found = await session.call_tool(
            "find_similar", {"image_id": ids["red.png"], "max_results": 2}
        )
        hits = _payload(found)
        assert hits[0]["image_id"] == ids["dark.png"]
        assert ids["red.png"] not in [h["image_id"] for h in hits]
        first, _ = _thumbnails(found)
        assert first.getpixel((32, 24))[0] > 150  # dark red, seen by the agent
        by_file = _payload(
            await session.call_tool(
                "find_similar", {"path": str(folder / "red.png"), "max_results": 1}
            )
        )
        assert by_file[0]["image_id"] == ids["red.png"]  # a file is no stored image: kept
        both = await session.call_tool("find_similar", {})
        assert "exactly one of image_id and path" in _error_text(both)

        groups_result = await session.call_tool("find_duplicates", {})
        groups = _payload(groups_result)
        assert [i["image_id"] for i in groups[0]["images"]] == [
            ids["picture.png"],
            ids["copy.jpg"],
        ]
        assert len(_thumbnails(groups_result)) == sum(len(g["images"]) for g in groups)
        one = await session.call_tool("find_duplicates", {"image_id": ids["picture.png"]})
        (group,) = _payload(one)
        assert [i["image_id"] for i in group["images"]] == [ids["copy.jpg"]]
        assert len(_thumbnails(one)) == 1

    _run(["--data-dir", str(tmp_path / "data")], scenario)
