"""Contract fixtures: every backend of each store protocol, behind one parametrised fixture.

The services (PostgreSQL, an S3 server, a Milvus server) start once per session (their fixtures
are in tests/conftest.py, shared with the API tests); a backend whose package or server binary
is missing is skipped with the reason, or fails with it under VIEWFINDER_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.contract.services import MilvusServer, PostgresServer, S3Server
from viewfinder.config import Settings
from viewfinder.domain.ports import BlobStore, MetadataStore, VectorIndex
from viewfinder.stores.factory import open_blobs, open_metadata, open_vectors

# metadata ------------------------------------------------------------------------------------
METADATA_BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def metadata_url_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], str]]:
    """Makes the URL of a fresh, empty database of a backend."""
    made: list[tuple[PostgresServer, str]] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.database()
        made.append((server, url))
        return url

    yield make
    for server, url in made:
        server.drop(url)


@pytest.fixture
def metadata_factory(
    metadata_url_factory: Callable[[str], str],
) -> Iterator[Callable[[str], MetadataStore]]:
    """Makes a migrated, empty metadata store of a backend; closes them all at the end."""
    stores: list[MetadataStore] = []

    def make(backend: str) -> MetadataStore:
        store = open_metadata(metadata_url_factory(backend), Settings(database_pool_size=4))
        store.migrate()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture(params=METADATA_BACKENDS)
def metadata_store(
    request: pytest.FixtureRequest, metadata_factory: Callable[[str], MetadataStore]
) -> MetadataStore:
    """An empty metadata store, once per backend."""
    return metadata_factory(request.param)


# blobs ---------------------------------------------------------------------------------------
BLOB_BACKENDS = ["file", "s3"]


@pytest.fixture(params=BLOB_BACKENDS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """An empty blob store, once per backend."""
    if request.param == "file":
        store = open_blobs(f"file://{tmp_path / 'blobs'}")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        store = open_blobs(
            f"s3://{server.bucket()}/some/prefix",
            Settings(**server.settings()),  # type: ignore[arg-type]
        )
    yield store
    store.close()


# vectors -------------------------------------------------------------------------------------
VECTOR_BACKENDS = ["exact", "milvus-lite", "milvus"]


@pytest.fixture
def vector_url_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Makes the URL of a fresh, empty vector index of a backend."""

    def make(backend: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        if backend == "exact":
            return f"exact://{tmp_path / f'{name}.db'}"
        if backend == "milvus-lite":
            lite: Path = request.getfixturevalue("milvus_lite_file")
            return f"milvus-lite://{lite}?collection={name}"
        server: MilvusServer = request.getfixturevalue("milvus_server")
        return server.url(name)

    return make


@pytest.fixture(params=VECTOR_BACKENDS)
def vector_url(request: pytest.FixtureRequest, vector_url_factory: Callable[[str], str]) -> str:
    """The URL of an empty vector index, once per backend (open it with `open_vectors`)."""
    return vector_url_factory(request.param)


@pytest.fixture
def vector_index(vector_url: str) -> Iterator[VectorIndex]:
    """An empty, not yet opened vector index, once per backend."""
    index = open_vectors(vector_url)
    yield index
    index.close()
