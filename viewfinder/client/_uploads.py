"""Turning what a caller gives `upload` into the API's multipart request, and back."""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

from .. import errors
from ._models import UploadResult, build

# An image to upload: a path, raw bytes, (file name, bytes), or an http(s) URL string.
ImageInput = Union[str, os.PathLike, bytes, tuple[str, bytes]]  # noqa: UP007 - runtime alias
Metadata = Union[Mapping[str, Any], Sequence[Union[Mapping[str, Any], None]], None]  # noqa: UP007

_R = TypeVar("_R")


@dataclass
class UploadPlan:
    """An upload in the API's order: file parts first, then URLs."""

    parts: list[tuple[str, bytes, str]]
    urls: list[str]
    metadata: list[dict[str, Any]]
    index: bool
    order: list[int]  # the caller's index of each image, in the API's order

    def files(self) -> list[tuple[str, tuple[str, bytes, str]]] | None:
        return [("images", part) for part in self.parts] or None

    def form(self) -> dict[str, str]:
        requests = [
            {"indexing_config": {"index": self.index}, "metadata": m} for m in self.metadata
        ]
        return {"metadata": json.dumps({"requests": requests, "image_urls": self.urls})}

    def in_callers_order(self, results: Sequence[_R]) -> list[_R]:
        out: dict[int, _R] = dict(zip(self.order, results, strict=True))
        return [out[n] for n in range(len(out))]


def is_url(item: object) -> bool:
    """An http(s) URL string."""
    return isinstance(item, str) and item.lower().startswith(("http://", "https://"))


def file_part(item: ImageInput, n: int) -> tuple[str, bytes, str]:
    """A multipart file part (name, bytes, content type) of a non-URL item."""
    if isinstance(item, bytes):
        return (f"image-{n}", item, "application/octet-stream")
    if isinstance(item, tuple):
        name, data = item
        return (name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
    path = Path(item)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise errors.ValidationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return (path.name, data, mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def per_image(metadata: Metadata, count: int) -> list[dict[str, Any]]:
    """One metadata object per image."""
    if metadata is None:
        return [{} for _ in range(count)]
    if isinstance(metadata, Mapping):
        return [dict(metadata) for _ in range(count)]
    items = list(metadata)
    if len(items) != count:
        raise errors.ValidationError(
            f"{len(items)} metadata objects for {count} images; give one per image or one for all",
            param="metadata",
        )
    return [dict(m or {}) for m in items]


def plan_upload(
    images: Sequence[ImageInput] | ImageInput, metadata: Metadata, index: bool
) -> UploadPlan:
    """The request of an upload: file parts first, then URLs, in a known order."""
    if isinstance(images, (str, bytes, os.PathLike)) or (
        isinstance(images, tuple)
        and len(images) == 2
        and isinstance(images[0], str)
        and isinstance(images[1], bytes)
    ):
        images = [images]  # type: ignore[list-item]  # one image given bare
    items: list[ImageInput] = list(images)  # type: ignore[arg-type]
    if not items:
        raise errors.ValidationError("no images to upload", param="images")
    meta = per_image(metadata, len(items))
    file_idx = [n for n, item in enumerate(items) if not is_url(item)]
    url_idx = [n for n, item in enumerate(items) if is_url(item)]
    order = file_idx + url_idx
    return UploadPlan(
        parts=[file_part(items[n], n) for n in file_idx],
        urls=[str(items[n]) for n in url_idx],
        metadata=[meta[n] for n in order],
        index=index,
        order=order,
    )


def upload_results(plan: UploadPlan, body: Any) -> list[UploadResult]:
    """The results of an upload response, in the caller's order."""
    return plan.in_callers_order([build(UploadResult, r) for r in body["results"]])
