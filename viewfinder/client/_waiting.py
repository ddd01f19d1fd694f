"""When `wait_until_indexed` is done, and the error it raises when time runs out."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import IndexingTimeout
from ._models import Image

QUEUED, FAILED = 1, 3
_SHOWN = 10  # ids named in the message; the exception carries them all


def still_queued(images: Sequence[Image]) -> bool:
    """Some image is still waiting to be indexed."""
    return any(im.indexing_status == QUEUED for im in images)


def _some(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def indexing_timeout(images: Sequence[Image], timeout_s: float) -> IndexingTimeout:
    """The error naming the images still queued after `timeout_s`, and the failed ones."""
    pending = [im.image_id for im in images if im.indexing_status == QUEUED]
    failed = {
        im.image_id: im.error or "indexing failed" for im in images if im.indexing_status == FAILED
    }
    message = (
        f"{len(pending)} of {len(images)} images still queued after {timeout_s:g} s: "
        f"{_some(pending)}"
    )
    if failed:
        message += f"; {len(failed)} failed: " + _some(
            [f"{i} ({why})" for i, why in failed.items()]
        )
    return IndexingTimeout(message, pending=pending, failed=failed)
