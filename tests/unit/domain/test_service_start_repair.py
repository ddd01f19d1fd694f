"""ImageService.start(repair=False): an API-only process on shared stores reads no id."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.embedders.fake import FakeEmbedder


@pytest.mark.parametrize(("repair", "expected"), [(True, 1), (False, 0)])
def test_start_reconciles_only_when_asked(tmp_path: Path, repair: bool, expected: int) -> None:
    service = build_service(Settings(data_dir=tmp_path, model="fake"), embedder=FakeEmbedder())
    calls: list[None] = []
    service.reconcile = lambda: calls.append(None)  # type: ignore[method-assign]
    try:
        # a fresh index was never closed cleanly, so only `repair` decides
        service.start(repair=repair)
        assert len(calls) == expected
        assert service.vectors.model_id == "fake-32"  # opened all the same
    finally:
        service.close()
