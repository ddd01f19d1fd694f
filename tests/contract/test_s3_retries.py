"""Transient S3 errors are retried with backoff: throttling and 5xx answers by botocore's
retry modes (VIEWFINDER_S3_RETRY_MODE, VIEWFINDER_S3_MAX_ATTEMPTS), a body cut short by the
store itself. Through a proxy in front of moto that fails requests on demand."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.contract.services import FlakyProxy, S3Server
from viewfinder.config import Settings
from viewfinder.domain.ports import BlobStore
from viewfinder.errors import Unavailable
from viewfinder.stores.factory import open_blobs

DATA = bytes(range(256)) * 64
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FlakyProxy]:
    p = FlakyProxy(s3_server.port)
    yield p
    p.stop()


def _store(s3_server: S3Server, proxy: FlakyProxy, **settings: object) -> BlobStore:
    options = {**s3_server.settings(), "s3_endpoint_url": proxy.endpoint, **settings}
    return open_blobs(
        f"s3://{s3_server.bucket()}/p",
        Settings(s3_addressing_style="path", **options),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_throttling_and_5xx_are_retried(s3_server: S3Server, proxy: FlakyProxy, mode: str) -> None:
    store = _store(s3_server, proxy, s3_retry_mode=mode, s3_max_attempts=4)
    try:
        proxy.fail(2)  # the exists() check before the PUT takes them
        store.put(SHA, DATA)
        proxy.fail(2)
        assert store.get(SHA) == DATA
        proxy.fail(2)
        assert store.exists(SHA)
        assert proxy.failures == 0
    finally:
        store.close()


def test_attempts_are_a_setting(s3_server: S3Server, proxy: FlakyProxy) -> None:
    store = _store(s3_server, proxy, s3_max_attempts=2)
    try:
        store.put(SHA, DATA)
        proxy.fail(2)
        with pytest.raises(Unavailable, match="image storage is unavailable"):
            store.get(SHA)
        assert store.get(SHA) == DATA
    finally:
        store.close()


def test_a_body_cut_short_is_read_again(s3_server: S3Server, proxy: FlakyProxy) -> None:
    store = _store(s3_server, proxy, s3_max_attempts=3)
    try:
        store.put(SHA, DATA)
        proxy.cut(2)
        assert store.get(SHA) == DATA
        assert proxy.cuts == 0
        proxy.cut(3)
        with pytest.raises(Unavailable):
            store.get(SHA)
    finally:
        store.close()
