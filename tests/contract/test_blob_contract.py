"""The BlobStore contract, run against the local folder and S3 alike."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from viewfinder.domain.ports import BlobStore
from viewfinder.errors import ConfigurationError, NotFound, ValidationError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_exists_delete(blob_store: BlobStore) -> None:
    data = b"hello"
    name = sha(data)
    assert not blob_store.exists(name)
    blob_store.put(name, data)
    blob_store.put(name, data)  # idempotent
    assert blob_store.exists(name)
    assert blob_store.get(name) == data
    blob_store.delete(name)
    blob_store.delete(name)  # deleting what is gone is fine
    assert not blob_store.exists(name)
    with pytest.raises(NotFound):
        blob_store.get(name)


def test_large_and_binary_objects(blob_store: BlobStore) -> None:
    data = os.urandom(6 * 1024 * 1024 + 7)
    blob_store.put(sha(data), data)
    assert blob_store.get(sha(data)) == data


def test_rejects_names_that_are_not_hashes(blob_store: BlobStore) -> None:
    for bad in ("../../etc/passwd", "A" * 64, "a" * 63, ""):
        with pytest.raises(ValidationError):
            blob_store.get(bad)
        with pytest.raises(ValidationError):
            blob_store.put(bad, b"x")


def test_concurrent_puts_of_one_object(blob_store: BlobStore) -> None:
    data = os.urandom(200_000)
    errors: list[BaseException] = []

    def put() -> None:
        try:
            blob_store.put(sha(data), data)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert blob_store.get(sha(data)) == data


def test_objects_are_independent(blob_store: BlobStore) -> None:
    blobs = [f"object {n}".encode() for n in range(20)]
    for data in blobs:
        blob_store.put(sha(data), data)
    blob_store.delete(sha(blobs[3]))
    assert [blob_store.exists(sha(d)) for d in blobs] == [n != 3 for n in range(20)]
    assert all(blob_store.get(sha(d)) == d for n, d in enumerate(blobs) if n != 3)


def test_sweeping_partial_writes_never_touches_objects(blob_store: BlobStore) -> None:
    data = b"a whole object"
    blob_store.put(sha(data), data)
    assert blob_store.sweep_partial(time.time() + 3600) == 0  # no write was interrupted
    assert blob_store.get(sha(data)) == data


def test_s3_missing_bucket_is_a_configuration_error(request: pytest.FixtureRequest) -> None:
    from tests.contract.services import S3Server
    from viewfinder.config import Settings
    from viewfinder.stores.factory import open_blobs

    server: S3Server = request.getfixturevalue("s3_server")
    settings = Settings(**server.settings())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no-such-bucket"):
        open_blobs("s3://no-such-bucket/x", settings)
