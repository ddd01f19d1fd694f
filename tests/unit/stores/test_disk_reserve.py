"""Uploads stop while a store's local disk is under the reserve; everything else goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.domain.records import UploadItem
from viewfinder.errors import StorageFull
from viewfinder.stores.disk_reserve import DiskReserve
from viewfinder.stores.factory import local_storage


def test_a_disk_under_the_reserve_refuses_with_the_store_and_the_setting(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    # a path that does not exist yet is measured on its nearest existing folder
    reserve = DiskReserve({"blobs": tmp_path / "not" / "yet"}, free + 2**30)
    with pytest.raises(StorageFull) as refused:
        reserve.check()
    message = refused.value.message
    assert "storage is full" in message and "the blobs store" in message
    assert "VIEWFINDER_UPLOAD_RESERVE_BYTES" in message
    DiskReserve({"blobs": tmp_path}, 1).check()  # room enough
    DiskReserve({"blobs": tmp_path}, 0).check()  # no reserve
    assert DiskReserve({"blobs": tmp_path}, 1).free_bytes()["blobs"] > 0


def test_local_storage_names_only_the_stores_on_this_disk(tmp_path: Path) -> None:
    embedded = local_storage(Settings(data_dir=tmp_path))
    assert set(embedded) == {"metadata", "blobs", "vectors"}
    assert all(tmp_path in path.parents or path == tmp_path for path in embedded.values())
    shared = Settings(
        data_dir=tmp_path,
        database_url="postgresql://h/db",
        blob_url="s3://bucket/prefix",
        vector_url="milvus://h:19530/c",
    )
    assert local_storage(shared) == {}


def test_the_server_keeps_its_reserve_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", model="fake", upload_reserve_bytes=2**62)
    service = build_service(settings)
    service.start()
    try:
        with pytest.raises(StorageFull, match="UPLOAD_RESERVE_BYTES"):
            service.upload("t", [UploadItem(data=png_bytes((1, 2, 3)))])
        assert service.list_images("t") == []
    finally:
        service.close()
    relaxed = settings.model_copy(update={"upload_reserve_bytes": 0})
    service = build_service(relaxed)
    service.start()
    try:
        assert len(service.upload("t", [UploadItem(data=png_bytes((1, 2, 3)))])) == 1
    finally:
        service.close()
