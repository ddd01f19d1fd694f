"""`InPlaceBlobStore`: the inner store's bytes, else the user's files, which it never writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from viewfinder.domain.ports import InPlaceFile
from viewfinder.errors import NotFound
from viewfinder.stores.in_place_blobs import InPlaceBlobStore
from viewfinder.stores.local_blobs import LocalBlobStore


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_reads_the_users_file_and_never_deletes_it(tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "cat.png"
    photo.parent.mkdir()
    photo.write_bytes(b"cat bytes")
    stat = photo.stat()
    sha = _sha(b"cat bytes")
    known = [InPlaceFile("i", "t", str(photo), sha, stat.st_size, stat.st_mtime)]
    inner = LocalBlobStore(tmp_path / "blobs")
    blobs = InPlaceBlobStore(inner, lambda s: known if s == sha else [])

    assert blobs.get(sha) == b"cat bytes"
    assert not blobs.exists(sha)  # not a copy of the store's: an upload stores its own
    assert blobs.local_path(sha) == photo
    blobs.delete(sha)  # what a delete or the sweeper does: the user's file stays
    assert photo.read_bytes() == b"cat bytes"
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]  # nothing copied

    # a copy in the inner store is its own; its path comes first
    blobs.put(_sha(b"copy"), b"copy")
    assert blobs.get(_sha(b"copy")) == b"copy"
    assert blobs.local_path(_sha(b"copy")) == inner.local_path(_sha(b"copy"))

    # edited since it was indexed: not served as the image it was, and no longer linked
    photo.write_bytes(b"another picture")
    os.utime(photo, (stat.st_atime, stat.st_mtime + 10))
    with pytest.raises(NotFound, match="changed or deleted since it was indexed"):
        blobs.get(sha)
    assert blobs.local_path(sha) is None
    with pytest.raises(NotFound):
        blobs.get("0" * 64)
