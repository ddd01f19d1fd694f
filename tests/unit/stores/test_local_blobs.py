"""The content-addressed local blob store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from viewfinder.errors import NotFound, ValidationError
from viewfinder.stores.local_blobs import LocalBlobStore


def test_put_get_delete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"hello"
    sha = hashlib.sha256(data).hexdigest()
    store.put(sha, data)
    store.put(sha, data)  # idempotent
    assert store.get(sha) == data
    assert (tmp_path / sha[:2] / sha[2:4] / sha).exists()
    assert not list(tmp_path.rglob(".tmp-*"))  # nothing half-written left behind
    store.delete(sha)
    assert not store.exists(sha)
    with pytest.raises(NotFound):
        store.get(sha)


def test_rejects_non_hash_names(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        LocalBlobStore(tmp_path).get("../../etc/passwd")
