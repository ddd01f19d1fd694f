"""Search by example and near-duplicates: the requests the sync and async clients send."""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .. import errors

# The example image of a search: a path, or raw bytes (sent, never stored).
ExampleImage = Union[str, os.PathLike, bytes]  # noqa: UP007 - runtime alias


@dataclass(frozen=True)
class SimilarRequest:
    """`POST /v1/images/search` (JSON, by `image_id`) or `/v1/images/search/image` (multipart)."""

    path: str
    json: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """What to pass to httpx."""
        if self.json is not None:
            return {"json": self.json}
        return {"files": self.files, "data": self.data}


def similar_request(
    image_id: str | None,
    image: ExampleImage | None,
    *,
    query: str | None,
    max_results: int,
    threshold: float | None,
    text_weight: float | None,
    image_weight: float | None,
    include_self: bool,
    filter: Mapping[str, Any] | None = None,  # noqa: A002
) -> SimilarRequest:
    """The request of a search by one of the tenant's images or by an image sent along."""
    if (image_id is None) == (image is None):
        raise errors.ValidationError("give exactly one of image_id and path", param="image_id")
    options: dict[str, Any] = {"max_results": max_results}
    for name, value in (
        ("query", query),
        ("threshold", threshold),
        ("text_weight", text_weight),
        ("image_weight", image_weight),
    ):
        if value is not None:
            options[name] = value
    if image_id is not None:
        body = {"image_id": image_id, **options}
        if include_self:
            body["include_self"] = True
        if filter is not None:
            body["filter"] = dict(filter)
        return SimilarRequest("/v1/images/search", json=body)
    assert image is not None
    name, data = _read(image)
    form = {k: str(v) for k, v in options.items()}
    if filter is not None:
        form["filter"] = json.dumps(dict(filter))
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return SimilarRequest(
        "/v1/images/search/image", files={"image": (name, data, content_type)}, data=form
    )


def _read(image: ExampleImage) -> tuple[str, bytes]:
    if isinstance(image, bytes):
        return "image", image
    path = Path(image)
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise errors.ValidationError(f"cannot read {path}: {exc.strerror}", param="path") from exc
