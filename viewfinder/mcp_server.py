"""Viewfinder's operations as MCP tools: search, upload, get, list and delete images.

The tools run over a `viewfinder.Client` (a remote server) or a `LocalClient` (a data
directory in this process); `viewfinder mcp` picks one and serves them over stdio. Needs the
`mcp` package (`pip install "viewfinder[mcp]"`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import Field

from .errors import ConfigurationError, ViewfinderError

if TYPE_CHECKING:
    from .client import Client
    from .local_client import LocalClient

log = logging.getLogger(__name__)

_T = TypeVar("_T")

INSTRUCTIONS = (
    "Viewfinder is a natural-language image search engine over the user's own images. "
    "Use search_images with a description of what should be in the picture (e.g. 'a red car "
    "at night'); scores are calibrated confidences in [0, 1]. upload_image adds a picture from "
    "a local path or an http(s) URL and, by default, waits until it is searchable."
)


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
    server = server_class(name="viewfinder", instructions=INSTRUCTIONS)

    async def call(fn: Callable[[], _T]) -> _T:
        # The backends block (HTTP, SQLite, the model): keep the event loop free for pings.
        try:
            return await anyio.to_thread.run_sync(fn)
        except ViewfinderError as exc:
            raise tool_error(exc.message) from exc

    @server.tool()
    async def search_images(
        query: Annotated[str, Field(description='What the image shows, e.g. "dogs in snow".')],
        max_results: Annotated[int, Field(ge=1, le=200, description="How many, best first.")] = 10,
        threshold: Annotated[
            float | None,
            Field(ge=0, le=1, description="Drop results scoring below this confidence."),
        ] = None,
    ) -> list[dict[str, Any]]:
        """Find images matching a natural-language description, best first; each result has
        a score, a calibrated confidence in [0, 1]."""
        hits = await call(
            lambda: backend.search(query, max_results=max_results, threshold=threshold)
        )
        return [asdict(h) for h in hits]

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
            images = await call(lambda: backend.wait_until_indexed([result.image_id], 60.0))
            return asdict(images[0])
        return asdict(await call(lambda: backend.get_image(result.image_id)))

    @server.tool()
    async def get_image(image_id: str) -> dict[str, Any]:
        """One image: its indexing status, size, metadata and URL."""
        return asdict(await call(lambda: backend.get_image(image_id)))

    @server.tool()
    async def list_images(
        limit: Annotated[int, Field(ge=1, le=1000)] = 20,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        """Stored images, newest first, with their indexing status."""
        return [asdict(im) for im in await call(lambda: backend.list_images(limit, offset))]

    @server.tool()
    async def delete_image(image_id: str) -> dict[str, Any]:
        """Delete an image for good: from storage, listing and search."""
        return asdict(await call(lambda: backend.delete_image(image_id)))

    return server


async def serve_stdio(backend: Client | LocalClient) -> None:
    """Serve the tools over stdin/stdout until the client disconnects."""
    await build_mcp_server(backend).run_stdio_async()
