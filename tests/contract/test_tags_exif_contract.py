"""Tags and EXIF in the MetadataStore, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from viewfinder.domain.ports import MetadataStore
from viewfinder.domain.records import Exif, GpsPosition, ImageRecord, IndexingStatus, Tag

EXIF = Exif(
    taken_at=1_700_000_000.5,
    make="Canon",
    model="EOS R5",
    orientation=6,
    gps=GpsPosition(48.8583701, -2.2944813),
)


def rec(image_id: str, exif: Exif | None = None) -> ImageRecord:
    return ImageRecord(image_id, "t", IndexingStatus.QUEUED, 1.0, {}, sha256="a" * 64, exif=exif)


def test_exif_round_trips_and_tags_are_set_when_jobs_complete(
    metadata_store: MetadataStore,
) -> None:
    store = metadata_store
    store.insert_images([rec("a", EXIF), rec("b", Exif(make="Nikon")), rec("c")])
    got = store.get_image("t", "a")
    assert got is not None and got.exif == EXIF and got.tags == []
    assert store.get_image("t", "c").exif is None  # type: ignore[union-attr]
    tags = [Tag("dog", 0.8125), Tag("cat", 0.0625)]
    # "gone" was never stored: its tags are ignored; "c" is completed without tags
    assert store.complete_jobs(["a", "c", "gone"], {"a": tags, "gone": tags}) == {"a", "c"}
    done = store.get_images("t", ["a", "b", "c"])
    assert done["a"].tags == tags and done["a"].status == IndexingStatus.INDEXED
    assert done["c"].tags == [] and done["b"].tags == []
    # completed again without tags (a model that has none): the stored tags stay
    store.requeue(["a"], 2.0)
    store.complete_jobs(["a"])
    assert store.get_image("t", "a").tags == tags  # type: ignore[union-attr]
    # and what `viewfinder migrate` reads carries both
    exported = {r.image_id: r for batch, _ in store.iter_images() for r in batch}
    assert exported["a"].tags == tags and exported["a"].exif == EXIF
    assert exported["b"].exif == Exif(make="Nikon")


def test_import_keeps_tags_and_exif(metadata_store: MetadataStore) -> None:
    record = ImageRecord(
        "x",
        "t",
        IndexingStatus.INDEXED,
        1.0,
        {},
        sha256="b" * 64,
        tags=[Tag("red", 0.99)],
        exif=EXIF,
    )
    assert metadata_store.import_images([record], []) == 1
    assert metadata_store.get_image("t", "x") == record


def test_set_tags_replaces_the_tags_of_images_that_exist(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a"), rec("b")])
    store.complete_jobs(["a", "b"], {"a": [Tag("dog", 0.5)], "b": [Tag("cat", 0.5)]})
    store.set_tags({"a": [Tag("wolf", 0.75), Tag("dog", 0.125)], "b": [], "gone": [Tag("x", 1)]})
    got = store.get_images("t", ["a", "b"])
    assert got["a"].tags == [Tag("wolf", 0.75), Tag("dog", 0.125)] and got["b"].tags == []
    assert got["a"].status == IndexingStatus.INDEXED
    store.set_tags({})
