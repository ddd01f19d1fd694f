"""The MetadataStore's in-place files, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from viewfinder.domain.ports import InPlaceFile, MetadataStore
from viewfinder.domain.records import ImageRecord, IndexingStatus


def _image(image_id: str, sha: str, tenant: str = "t") -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        tenant=tenant,
        status=IndexingStatus.QUEUED,
        upload_timestamp=1.0,
        sha256=sha * 64,
        file_name="old.png",
    )


def _file(image_id: str, path: str, sha: str, tenant: str = "t") -> InPlaceFile:
    return InPlaceFile(image_id, tenant, path, sha * 64, 10, 1.5)


def test_files_are_visible_once_their_images_exist(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.add_in_place_files([_file("a", "/p/a.png", "a"), _file("b", "/p/b.png", "b")])
    assert store.in_place_files("t") == []  # written first; no image yet
    store.insert_images([_image("a", "a"), _image("b", "b"), _image("c", "c", tenant="u")])
    store.add_in_place_files([_file("c", "/q/c.png", "c", tenant="u")])
    assert [f.path for f in store.in_place_files("t")] == ["/p/a.png", "/p/b.png"]
    assert store.in_place_files_with_sha("c" * 64) == [_file("c", "/q/c.png", "c", tenant="u")]
    # the upsert follows a move, and the image's file name with it
    moved = InPlaceFile("a", "t", "/p/sub/renamed.png", "a" * 64, 11, 2.5)
    store.add_in_place_files([moved])
    assert store.in_place_files_with_sha("a" * 64) == [moved]
    record = store.get_image("t", "a")
    assert record is not None and record.file_name == "renamed.png"


def test_the_files_of_deleted_images_are_purged(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([_image("a", "a"), _image("b", "b")])
    store.add_in_place_files([_file("a", "/p/a.png", "a"), _file("b", "/p/b.png", "b")])
    store.add_in_place_files([_file("never", "/p/n.png", "n")])  # its image never came
    store.delete_image("t", "a")
    assert [f.image_id for f in store.in_place_files("t")] == ["b"]
    assert store.in_place_files_with_sha("a" * 64) == []
    assert store.purge_in_place_files() == 2
    assert store.purge_in_place_files() == 0
