"""Shared fixtures: settings in a temporary data dir, a started service, an in-process client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COCO_MINI = SHARED / "data" / "coco_mini"


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A solid-colour PNG."""
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A solid-colour JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings rooted in a fresh data directory, with the fake model."""
    return Settings(data_dir=tmp_path / "data", model="fake", poll_interval_s=0.05)


@pytest.fixture
def service(settings: Settings) -> Iterator[ImageService]:
    """A started service over embedded stores."""
    svc = build_service(settings, embedder=FakeEmbedder())
    svc.start()
    yield svc
    svc.close()


@pytest.fixture
def worker(service: ImageService, settings: Settings) -> Iterator[IndexingWorker]:
    """A worker the test drives by hand (`drain()`)."""
    w = IndexingWorker(service, worker_options(settings))
    yield w
    w.close()


@pytest.fixture
def client(settings: Settings, service: ImageService) -> Iterator[TestClient]:
    """An in-process HTTP client; indexing is driven by the `worker` fixture, not threads."""
    app = create_app(settings, service)
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def api_key(service: ImageService) -> str:
    """A key of tenant 'acme'."""
    return KeyRing(service.metadata).create("acme").secret


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    """Headers carrying the 'acme' key."""
    return {"X-Api-Key": api_key}
