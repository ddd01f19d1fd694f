"""The content-addressed local blob store."""

from __future__ import annotations

import hashlib
import os
import time
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
    assert not list((tmp_path / ".partial").iterdir())  # nothing half-written left behind
    store.delete(sha)
    assert not store.exists(sha)
    with pytest.raises(NotFound):
        store.get(sha)


def test_rejects_non_hash_names(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        LocalBlobStore(tmp_path).get("../../etc/passwd")


class Interrupted(Exception):
    """Stands for a crash in the middle of a write."""


def test_interrupted_writes_leave_only_partial_files_that_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"an image"
    sha = hashlib.sha256(data).hexdigest()

    def crash(*args: object, **kwargs: object) -> None:
        raise Interrupted

    # a crash between the write and the rename (cleanup included): the bytes are in .partial
    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(Interrupted):
        store.put(sha, data)
    monkeypatch.undo()
    (left,) = (tmp_path / ".partial").iterdir()
    assert not store.exists(sha) and left.read_bytes() == data
    assert store.sweep_partial(before=time.time() - 60) == 0  # may be a write in progress
    store.put(sha, data)  # another write of the same object is unaffected
    assert store.sweep_partial(before=time.time() + 60) == 1
    assert not list((tmp_path / ".partial").iterdir())
    assert store.get(sha) == data
