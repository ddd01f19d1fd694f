"""Viewfinder's operations as MCP tools: search, upload, get, list and delete images.

The tools run over a `viewfinder.Client` (a remote server) or a `LocalClient` (a data
directory in this process); `viewfinder mcp` picks one and serves them over stdio. Needs the
`mcp` package (`pip install "viewfinder[mcp]"`).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import Field

from .domain.filters import SUMMARY as FILTER_DOC
from .errors import ConfigurationError, IndexingTimeout, ViewfinderError, unwritable_storage
from .mcp_similar import add_similar_tools

if TYPE_CHECKING:
    from .client import Client, Image, SearchResult
    from .local_client import LocalClient

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# What a score means, said once for the instructions and the tool descriptions.
SCORES = (
    "Scores are calibrated confidences in [0, 1] that the image matches: 0.5 means as likely a "
    "match as not, above 0.5 more likely than not, near 1 almost certainly; results below "
    "0.5 are usually other pictures ranked by resemblance."
)
INSTRUCTIONS = (
    "Viewfinder is a natural-language image search engine over the user's own images. "
    "Use search_images with a description of what should be in the picture (e.g. 'a red car "
    f"at night'); its results carry thumbnails, so you can look at what was found. {SCORES} "
    "upload_image adds a picture from a local path or an http(s) URL and, by default, waits "
    "until it is searchable. find_similar searches by example (one of the user's images or "
    "a local file), find_duplicates lists near-duplicate copies."
)
THUMBNAIL_PX = 256  # long side of the thumbnails search results carry


def _mcp_server_classes() -> tuple[Any, type[Exception]]:
    """The server class and ToolError of the installed `mcp` (2.x MCPServer, or 1.x FastMCP)."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:
        try:
            from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[no-redef,attr-defined]
            from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef,import-not-found]
        except ImportError as exc:
            raise ConfigurationError(
                'the MCP server needs the mcp package: pip install "viewfinder[mcp]"'
            ) from exc
    return MCPServer, ToolError


def build_mcp_server(backend: Client | LocalClient) -> Any:
    """An MCP server whose tools act on `backend` (closed by the caller)."""
    import anyio

    server_class, tool_error = _mcp_server_classes()
    import mcp.types as types  # installed: checked just above

    server = server_class(name="viewfinder", instructions=INSTRUCTIONS)

    async def call(fn: Callable[[], _T]) -> _T:
        # The backends block (HTTP, SQLite, the model): keep the event loop free for pings.
        try:
            return await anyio.to_thread.run_sync(fn)
        except IndexingTimeout:
            raise  # the caller answers with the image as it is
        except ViewfinderError as exc:
            raise tool_error(exc.message) from exc
        except Exception as exc:
            refused = unwritable_storage(exc)  # a local data directory on a full disk
            if refused is None:
                raise
            raise tool_error(refused.message) from exc

    async def search_images(
        query: Annotated[str, Field(description='What the image shows, e.g. "dogs in snow".')],
        max_results: Annotated[int, Field(ge=1, le=200, description="How many, best first.")] = 10,
        threshold: Annotated[
            float | None,
            Field(
                ge=0,
                le=1,
                description="Drop results scoring below this confidence (0.5: keep only "
                "those as likely a match as not, or likelier).",
            ),
        ] = None,
        thumbnails: Annotated[
            bool, Field(description="Attach each result's thumbnail, to look at it.")
        ] = True,
        filter: Annotated[dict[str, Any] | None, Field(description=FILTER_DOC)] = None,  # noqa: A002
    ) -> Any:
        hits = await call(
            lambda: backend.search(
                query, max_results=max_results, threshold=threshold, filter=filter
            )
        )
        results = [asdict(h) for h in hits]
        shown = await call(lambda: _thumbnails(backend, hits)) if thumbnails else {}
        return search_result(types, results, shown)

    search_images.__doc__ = (
        "Find images matching a natural-language description, best first, each with its "
        f"thumbnail (unless thumbnails=false). {SCORES}"
    )
    # Declared here, where the installed mcp's types are known: structured results (the
    # list of hits) plus content blocks (the thumbnails) in one answer.
    search_images.__annotations__["return"] = Annotated[types.CallToolResult, list[dict[str, Any]]]
    server.tool()(search_images)

    @server.tool()
    async def upload_image(
        source: Annotated[str, Field(description="A local file path or an http(s) URL.")],
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description='JSON object kept with the image; a "caption" helps search.'),
        ] = None,
        wait: Annotated[
            bool, Field(description="Wait (up to a minute) until the image is searchable.")
        ] = True,
    ) -> dict[str, Any]:
        """Add an image from a local file or an http(s) URL; returns the stored image."""
        is_url = source.lower().startswith(("http://", "https://"))
        meta = dict(metadata or {})
        item: str | tuple[str, bytes] = source
        if not is_url:
            path = Path(source).expanduser()
            if not path.is_file():
                raise tool_error(f"no such file: {source}; give a local path or an http(s) URL")
            meta.setdefault("file_name", path.name)
            meta.setdefault("path", str(path.resolve()))
            item = (path.name, path.read_bytes())
        else:
            meta.setdefault("source_url", source)
        result = (await call(lambda: backend.upload([item], metadata=[meta])))[0]
        if result.failed:
            raise tool_error(f"upload refused: {result.error}")
        if wait:
            try:
                images = await call(lambda: _wait(backend, result.image_id))
                return asdict(images[0])
            except IndexingTimeout:
                pass  # stored, still queued: the image says so (indexing_status 1)
        return asdict(await call(lambda: backend.get_image(result.image_id)))

    @server.tool()
    async def get_image(image_id: str) -> dict[str, Any]:
        """One image: its indexing status (0 stored, 1 queued, 2 indexed and searchable,
        3 failed, with the reason in error), size, metadata and URL (a file:// link when the
        server is a local data directory)."""
        return asdict(await call(lambda: backend.get_image(image_id)))

    @server.tool()
    async def list_images(
        limit: Annotated[int, Field(ge=1, le=1000)] = 20,
        offset: Annotated[int, Field(ge=0)] = 0,
        filter: Annotated[dict[str, Any] | None, Field(description=FILTER_DOC)] = None,  # noqa: A002
    ) -> list[dict[str, Any]]:
        """Stored images, newest first, with their indexing status."""
        found = await call(lambda: backend.list_images(limit, offset, filter))
        return [asdict(im) for im in found]

    @server.tool()
    async def delete_image(image_id: str) -> dict[str, Any]:
        """Delete an image for good: from storage, listing and search."""
        return asdict(await call(lambda: backend.delete_image(image_id)))

    add_similar_tools(
        server, backend, call, types, tool_error, lambda ids: _thumbnails_of(backend, ids)
    )
    return server


def _wait(backend: Client | LocalClient, image_id: str) -> list[Image]:
    return backend.wait_until_indexed([image_id], 60.0)


def _thumbnails(backend: Client | LocalClient, hits: list[SearchResult]) -> dict[str, bytes]:
    """JPEG thumbnails of the hits, by image id; one that cannot be made is left out."""
    shown: dict[str, bytes] = {}
    for hit in hits:
        try:
            shown[hit.image_id] = backend.thumbnail(hit.image_id, THUMBNAIL_PX)
        except ViewfinderError as exc:  # e.g. a file indexed in place, moved since
            log.info("no thumbnail for %s: %s", hit.image_id, exc.message)
    return shown


def _thumbnails_of(backend: Client | LocalClient, image_ids: list[str]) -> dict[str, bytes]:
    """JPEG thumbnails by image id; one that cannot be made is left out."""
    shown: dict[str, bytes] = {}
    for image_id in dict.fromkeys(image_ids):
        try:
            shown[image_id] = backend.thumbnail(image_id, THUMBNAIL_PX)
        except ViewfinderError as exc:
            log.info("no thumbnail for %s: %s", image_id, exc.message)
    return shown


def search_result(types: Any, results: list[dict[str, Any]], shown: dict[str, bytes]) -> Any:
    """A tool result with the hits as structured content and as text, and after each hit's
    line its thumbnail as image content (`types`: the installed `mcp.types`)."""
    content: list[Any] = [types.TextContent(type="text", text=json.dumps(results, indent=2))]
    for rank, hit in enumerate(results, start=1):
        name = hit.get("file_name") or hit["image_metadata"].get("file_name") or ""
        line = f"{rank}. {hit['image_id']} {name} score {hit['score']:.2f}".replace("  ", " ")
        line += _tags_and_date(hit)
        content.append(types.TextContent(type="text", text=line))
        if hit["image_id"] in shown:
            data = base64.b64encode(shown[hit["image_id"]]).decode("ascii")
            content.append(types.ImageContent(type="image", data=data, mimeType="image/jpeg"))
    return types.CallToolResult(content=content, structuredContent={"result": results})


def _tags_and_date(hit: dict[str, Any]) -> str:
    """What a result line adds about a hit: its tags and the date its photo was taken."""
    out = ""
    tags = [t["name"] for t in hit.get("tags") or []]
    if tags:
        out += f"; tags: {', '.join(tags)}"
    taken_at = (hit.get("exif") or {}).get("taken_at")
    if taken_at is not None:
        out += f"; taken {datetime.fromtimestamp(taken_at, timezone.utc):%Y-%m-%d %H:%M} UTC"
    return out


async def serve_stdio(backend: Client | LocalClient) -> None:
    """Serve the tools over stdin/stdout until the client disconnects."""
    await build_mcp_server(backend).run_stdio_async()
