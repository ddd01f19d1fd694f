"""Shared fixtures: settings in a temporary data dir, a started service, an in-process client.

The stores behind `settings` are chosen by the `stores` fixture: "embedded" (SQLite, a local
folder, the exact index; the default everywhere) or "shared" (a fresh PostgreSQL database, S3
bucket and Milvus collection on the session's servers). tests/api/conftest.py runs each API test
on both; `@pytest.mark.embedded_only` keeps a test that looks at embedded files on the first.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.contract.services import (
    MilvusServer,
    PostgresServer,
    S3Server,
    need_module,
    started,
)
from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService
from viewfinder.embedders.fake import FakeEmbedder
from viewfinder.indexing.worker import IndexingWorker
from viewfinder.stores.factory import is_multi_process

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


# the model cache, once per session ------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """VIEWFINDER_CACHE_DIR for every test and the processes they start: one per session,
    never the user's own; the built-in model is built into it at most once."""
    path = tmp_path_factory.getbasetemp() / "model-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIEWFINDER_CACHE_DIR", str(path))
        yield path


# backing services, once per session ---------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the session."""
    yield from started(PostgresServer())


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3-compatible server (moto) for the session."""
    yield from started(S3Server(tmp_path_factory.mktemp("s3")))


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """A Milvus server (Milvus Lite's gRPC server) for the session."""
    yield from started(MilvusServer(tmp_path_factory.mktemp("milvus")))


@pytest.fixture(scope="session")
def milvus_lite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Milvus Lite file for the session (each test uses its own collection in it)."""
    need_module("pymilvus", "milvus")
    need_module("milvus_lite", "milvus-lite")
    return tmp_path_factory.mktemp("lite") / "vectors.db"


# the service under test ----------------------------------------------------------------------
Stores = Literal["embedded", "shared"]
STORES: list[Stores] = ["embedded", "shared"]


@pytest.fixture
def stores(request: pytest.FixtureRequest) -> Stores:
    """Which stores `settings` names: "embedded" unless a conftest parametrises this fixture."""
    return getattr(request, "param", "embedded")


@pytest.fixture
def settings(stores: Stores, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings rooted in a fresh data directory, with the fake model, over `stores`."""
    base = Settings(data_dir=tmp_path / "data", model="fake", poll_interval_s=0.05)
    if stores == "embedded":
        yield base
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    s3: S3Server = request.getfixturevalue("s3_server")
    milvus: MilvusServer = request.getfixturevalue("milvus_server")
    database = postgres.database()
    try:
        yield base.model_copy(
            update={
                "database_url": database,
                "blob_url": f"s3://{s3.bucket()}/vf",
                "vector_url": milvus.url(),
                "s3_addressing_style": "path",
                "database_pool_size": 4,
                **s3.settings(),
            }
        )
    finally:  # after `service` (which depends on this fixture) has closed its pool
        postgres.drop(database)


@pytest.fixture
def service(settings: Settings) -> Iterator[ImageService]:
    """A started service over the stores `settings` names."""
    svc = build_service(settings, embedder=FakeEmbedder())
    try:
        svc.start(single_process=not is_multi_process(settings))
    except BaseException:
        svc.close()
        raise
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
