"""`viewfinder mcp` driven by the MCP client of the `mcp` package, over stdio."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
import pytest
from PIL import Image as PILImage

from tests.conftest import png_bytes
from tests.e2e.server import Server, cli
from tests.exif_images import jpeg_with_exif

mcp = pytest.importorskip("mcp", reason="the mcp package is not installed")

TOOLS = {"search_images", "upload_image", "get_image", "list_images", "delete_image"}


def _is_error(result: Any) -> bool:
    # mcp 2 names it is_error, mcp 1 isError.
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


def _payload(result: Any) -> Any:
    """The JSON a tool returned (structured content when given, else its text)."""
    assert not _is_error(result), result
    structured = getattr(result, "structured_content", None)
    if structured is None:
        structured = getattr(result, "structuredContent", None)
    if structured is not None:
        return structured.get("result", structured)
    return json.loads(result.content[0].text)


def _error_text(result: Any) -> str:
    assert _is_error(result), result
    return str(result.content[0].text)


async def _session_run(args: list[str], scenario: Any) -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "viewfinder.cli", "mcp", *args],
        env={**os.environ, "VIEWFINDER_MODEL": "fake", "VIEWFINDER_POLL_INTERVAL_S": "0.05"},
    )
    with anyio.fail_after(120), open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await scenario(session)


def _run(args: list[str], scenario: Any) -> None:
    anyio.run(_session_run, args, scenario)


def _thumbnails(result: Any) -> list[PILImage.Image]:
    """The images a tool result carries as image content."""
    blocks = [c for c in result.content if c.type == "image"]
    assert all(getattr(c, "mime_type", getattr(c, "mimeType", "")) == "image/jpeg" for c in blocks)
    return [PILImage.open(io.BytesIO(base64.b64decode(c.data))) for c in blocks]


async def _exercise(session: Any, pictures: Path) -> None:
    tools = await session.list_tools()
    assert {t.name for t in tools.tools} >= TOOLS
    search = next(t for t in tools.tools if t.name == "search_images")
    assert "0.5 means as likely a match as not" in search.description  # what a score means

    red = _payload(
        await session.call_tool(
            "upload_image", {"source": str(pictures / "red.png"), "metadata": {"caption": "r"}}
        )
    )
    assert red["indexing_status"] == 2 and red["metadata"]["file_name"] == "red.png"
    blue = _payload(await session.call_tool("upload_image", {"source": str(pictures / "blue.png")}))

    found = await session.call_tool("search_images", {"query": "red", "max_results": 2})
    hits = _payload(found)
    assert [h["image_id"] for h in hits][0] == red["image_id"]
    # each hit's thumbnail comes with it, best first: the agent can look at what it found
    first, second = _thumbnails(found)
    assert first.format == "JPEG" and first.size == (64, 48)  # never upscaled
    assert first.getpixel((32, 24))[0] > 200 and second.getpixel((32, 24))[2] > 200
    lines = [c.text for c in found.content if c.type == "text"]
    assert any(line.startswith(f"1. {red['image_id']}") for line in lines)
    # the model's tags come with each hit, in its data and on its line
    assert hits[0]["tags"][0]["name"] == "red"
    assert any(line.startswith(f"1. {red['image_id']}") and "tags: red" in line for line in lines)
    plain = await session.call_tool(
        "search_images", {"query": "red", "max_results": 2, "thumbnails": False}
    )
    assert _thumbnails(plain) == [] and _payload(plain) == hits
    assert 0.0 <= hits[0]["score"] <= 1.0 and hits[0]["image_metadata"]["caption"] == "r"
    strict = _payload(await session.call_tool("search_images", {"query": "red", "threshold": 0.9}))
    assert [h["image_id"] for h in strict] == [red["image_id"]]
    # a filter ranks only the images that pass it, on search and list alike
    no_caption = {"metadata.caption": {"$exists": False}}
    args = {"query": "red", "thumbnails": False, "filter": no_caption}
    filtered = _payload(await session.call_tool("search_images", args))
    assert [h["image_id"] for h in filtered] == [blue["image_id"]]
    listed = _payload(await session.call_tool("list_images", {"filter": no_caption}))
    assert [i["image_id"] for i in listed] == [blue["image_id"]]
    like = {"image_id": blue["image_id"], "thumbnails": False}
    assert [h["image_id"] for h in _payload(await session.call_tool("find_similar", like))] == [
        red["image_id"]
    ]
    like["filter"] = no_caption  # red, the only other image, does not pass
    assert _payload(await session.call_tool("find_similar", like)) == []
    bad = await session.call_tool("list_images", {"filter": {"colour": "red"}})
    assert "unknown filter field 'colour'" in _error_text(bad)

    got = _payload(await session.call_tool("get_image", {"image_id": blue["image_id"]}))
    assert got["width"] == 64 and got["status"] == "indexed"
    listed = _payload(await session.call_tool("list_images", {}))
    assert {i["image_id"] for i in listed} == {red["image_id"], blue["image_id"]}

    deleted = _payload(await session.call_tool("delete_image", {"image_id": red["image_id"]}))
    assert deleted["status"] == "success"
    missing = await session.call_tool("get_image", {"image_id": red["image_id"]})
    assert "not found" in _error_text(missing)
    nofile = await session.call_tool("upload_image", {"source": str(pictures / "nope.png")})
    assert "no such file" in _error_text(nofile)


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "red.png").write_bytes(png_bytes((255, 0, 0)))
    (folder / "blue.png").write_bytes(png_bytes((0, 0, 255)))
    (folder / "camera.jpg").write_bytes(jpeg_with_exif(colour=(255, 0, 0)))
    return folder


def test_tools_over_a_local_data_directory(tmp_path: Path, pictures: Path) -> None:
    data_dir = tmp_path / "data"

    async def scenario(session: Any) -> None:
        await _exercise(session, pictures)
        # local: image_url is a file:// link to the stored bytes
        (blue,) = _payload(await session.call_tool("list_images", {}))
        assert blue["image_url"].startswith("file://")
        stored = Path(url2pathname(urlparse(blue["image_url"]).path))
        assert stored.read_bytes() == (pictures / "blue.png").read_bytes()
        # a photo's EXIF: in the image, and its capture date on the result line
        camera = _payload(
            await session.call_tool("upload_image", {"source": str(pictures / "camera.jpg")})
        )
        assert camera["exif"]["make"] == "Canon" and camera["exif"]["gps"]["lat"] > 48
        found = await session.call_tool("search_images", {"query": "red", "max_results": 1})
        lines = [c.text for c in found.content if c.type == "text"]
        assert any("taken 2023-07-14 16:30 UTC" in line for line in lines), lines

    _run(["--data-dir", str(data_dir)], scenario)
    assert (data_dir / "viewfinder.db").exists()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path / "server-data"
    key = cli(data_dir, "keys", "create", "acme", env={"VIEWFINDER_MODEL": "fake"}).strip()
    env = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_POLL_INTERVAL_S": "0.05"}
    with Server(data_dir, env) as running:
        yield running, key


def test_tools_over_a_remote_server(server: tuple[Server, str], pictures: Path) -> None:
    running, key = server

    async def scenario(session: Any) -> None:
        await _exercise(session, pictures)
        # A URL is fetched by the server: its own signed image URL is one it can reach only
        # when private addresses are allowed, so here the guard's refusal is the answer.
        listed = _payload(await session.call_tool("list_images", {}))
        refused = await session.call_tool("upload_image", {"source": listed[0]["image_url"]})
        assert "refused" in _error_text(refused)

    _run(["--server", running.url, "--api-key", key], scenario)


def test_bad_key_is_a_tool_error(server: tuple[Server, str]) -> None:
    running, _ = server

    async def scenario(session: Any) -> None:
        result = await session.call_tool("search_images", {"query": "red"})
        assert "invalid API key" in _error_text(result)

    _run(["--server", running.url, "--api-key", "vf_wrong"], scenario)


def test_upload_by_url_through_a_remote_server(tmp_path: Path, pictures: Path) -> None:
    data_dir = tmp_path / "server-data"
    # private addresses allowed, so the server may fetch its own signed image URL
    env = {
        "VIEWFINDER_MODEL": "fake",
        "VIEWFINDER_POLL_INTERVAL_S": "0.05",
        "VIEWFINDER_FETCH_ALLOW_PRIVATE": "true",
    }
    key = cli(data_dir, "keys", "create", "acme", env=env).strip()

    async def scenario(session: Any) -> None:
        src = str(pictures / "red.png")
        first = _payload(await session.call_tool("upload_image", {"source": src}))
        by_url = _payload(
            await session.call_tool(
                "upload_image", {"source": first["image_url"], "metadata": {"via": "url"}}
            )
        )
        assert by_url["indexing_status"] == 2 and by_url["metadata"]["via"] == "url"
        assert by_url["image_id"] != first["image_id"]
        assert by_url["sha256"] == first["sha256"]  # the same bytes, fetched by the server

    with Server(data_dir, env) as running:
        _run(["--server", running.url, "--api-key", key], scenario)
