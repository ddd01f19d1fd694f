"""The MCP tools for search by example and near-duplicates (find_similar, find_duplicates).

Registered by `mcp_server.build_mcp_server`; like search_images, their results carry each
image's thumbnail as image content, so that an agent can look at what was found.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from .domain.filters import SUMMARY as FILTER_DOC

if TYPE_CHECKING:
    from .client import Client
    from .local_client import LocalClient

Call = Callable[[Callable[[], Any]], Awaitable[Any]]

SIMILAR_DOC = (
    "Find images that look like one of the user's images (image_id) or like an image file "
    "(path: read and sent, never stored), best first, each with its thumbnail (unless "
    "thumbnails=false); add a query to search by text and image together. The example image "
    "itself is left out. Scores are calibrated confidences in [0, 1] that an image shows the "
    "same kind of scene (a copy of the example scores near 1)."
)
DUPLICATES_DOC = (
    "Near-duplicates (re-encoded, resized or lightly cropped copies) among the user's images: "
    "every group, largest first, or with image_id the copies of that image; each image with "
    "its thumbnail (unless thumbnails=false)."
)


def add_similar_tools(
    server: Any,
    backend: Client | LocalClient,
    call: Call,
    types: Any,
    tool_error: type[Exception],
    thumbnail: Callable[[list[str]], dict[str, bytes]],
) -> None:
    """Register find_similar and find_duplicates on `server`."""
    from .mcp_server import search_result

    async def find_similar(
        image_id: Annotated[
            str | None, Field(description="One of the user's images to search like.")
        ] = None,
        path: Annotated[
            str | None, Field(description="Or a local image file to search like.")
        ] = None,
        query: Annotated[
            str | None, Field(description="Optional text that must match too.")
        ] = None,
        max_results: Annotated[int, Field(ge=1, le=200, description="How many, best first.")] = 10,
        threshold: Annotated[
            float | None, Field(ge=0, le=1, description="Drop results scoring below this.")
        ] = None,
        thumbnails: Annotated[
            bool, Field(description="Attach each result's thumbnail, to look at it.")
        ] = True,
        filter: Annotated[dict[str, Any] | None, Field(description=FILTER_DOC)] = None,  # noqa: A002
    ) -> Any:
        if (image_id is None) == (path is None):
            raise tool_error("give exactly one of image_id and path")
        example = None if path is None else Path(path).expanduser()
        if example is not None and not example.is_file():
            raise tool_error(f"no such file: {path}")
        hits = await call(
            lambda: backend.search_similar(
                image_id,
                example,
                query=query,
                max_results=max_results,
                threshold=threshold,
                filter=filter,
            )
        )
        shown = await call(lambda: thumbnail([h.image_id for h in hits])) if thumbnails else {}
        return search_result(types, [asdict(h) for h in hits], shown)

    async def find_duplicates(
        image_id: Annotated[
            str | None, Field(description="Only the copies of this image (default: all groups).")
        ] = None,
        thumbnails: Annotated[
            bool, Field(description="Attach each image's thumbnail, to look at it.")
        ] = True,
    ) -> Any:
        if image_id is not None:
            matches = await call(lambda: backend.duplicates_of(image_id))
            groups: list[dict[str, Any]] = []
            if matches:
                groups = [{"similarity": None, "images": [asdict(m) for m in matches]}]
        else:
            found = await call(backend.duplicates)
            groups = [
                {"similarity": g.similarity, "images": [asdict(i) for i in g.images]} for g in found
            ]
        ids = [i["image_id"] for g in groups for i in g["images"]]
        shown = await call(lambda: thumbnail(ids)) if thumbnails else {}
        return duplicates_result(types, groups, shown)

    for tool, doc in ((find_similar, SIMILAR_DOC), (find_duplicates, DUPLICATES_DOC)):
        tool.__doc__ = doc
        tool.__annotations__["return"] = Annotated[types.CallToolResult, list[dict[str, Any]]]
        server.tool()(tool)


def duplicates_result(types: Any, groups: list[dict[str, Any]], shown: dict[str, bytes]) -> Any:
    """The groups as structured content and text, each image's line with its thumbnail."""
    content: list[Any] = [types.TextContent(type="text", text=json.dumps(groups, indent=2))]
    if not groups:
        content.append(types.TextContent(type="text", text="no near-duplicates"))
    for n, group in enumerate(groups, start=1):
        similarity = group["similarity"]
        head = f"group {n}: {len(group['images'])} images"
        if similarity is not None:
            head += f", cosine >= {similarity:.3f}"
        content.append(types.TextContent(type="text", text=head))
        for image in group["images"]:
            line = f"- {image['image_id']} {_name(image)}".rstrip()
            if image.get("similarity") is not None:
                line += f" (cosine {image['similarity']:.3f})"
            content.append(types.TextContent(type="text", text=line))
            if image["image_id"] in shown:
                data = base64.b64encode(shown[image["image_id"]]).decode("ascii")
                content.append(types.ImageContent(type="image", data=data, mimeType="image/jpeg"))
    return types.CallToolResult(content=content, structuredContent={"result": groups})


def _name(image: dict[str, Any]) -> str:
    return str(image.get("file_name") or (image.get("metadata") or {}).get("file_name") or "")
