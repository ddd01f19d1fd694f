"""The MetadataStore contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.contract.services import REQUIRE_SERVICES_VAR, services_required
from viewfinder.config import Settings
from viewfinder.domain.ports import JobRow, MetadataStore
from viewfinder.domain.records import ImageRecord, IndexingStatus
from viewfinder.errors import ConfigurationError, StorageReadOnly, unwritable_storage
from viewfinder.stores.factory import open_metadata

from .conftest import METADATA_BACKENDS


def _all_backends_ran(ran: list[str]) -> None:
    """Under VIEWFINDER_TEST_REQUIRE_SERVICES, a comparison over fewer backends is a failure."""
    missing = [b for b in METADATA_BACKENDS if b not in ran]
    if missing and services_required():
        pytest.fail(f"metadata backends {missing} did not run ({REQUIRE_SERVICES_VAR} is set)")


def rec(
    image_id: str,
    status: IndexingStatus = IndexingStatus.QUEUED,
    ts: float = 1.0,
    tenant: str = "t",
    sha: str = "a",
) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        tenant=tenant,
        status=status,
        upload_timestamp=ts,
        sha256=sha * 64,
        metadata={"k": image_id, "nested": {"ü": [1, 2.5, None]}},
        content_type="image/png",
        size_bytes=123,
        width=4,
        height=3,
        file_name=f"{image_id}.jpg",
    )


def test_migrate_is_idempotent(metadata_store: MetadataStore) -> None:
    metadata_store.migrate()
    metadata_store.migrate()
    assert metadata_store.count_images() == 0


def test_insert_get_list_delete(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a", ts=1), rec("b", ts=2), rec("c", ts=3, tenant="other")])
    assert [r.image_id for r in store.list_images("t", 10, 0)] == ["b", "a"]
    assert [r.image_id for r in store.list_images("t", 1, 1)] == ["a"]
    assert store.get_image("t", "a") == rec("a", ts=1)  # every field round-trips
    assert store.get_image("other", "a") is None
    assert store.find_image("c").tenant == "other"  # type: ignore[union-attr]
    assert store.delete_image("other", "a") is None
    assert store.delete_image("t", "a") == rec("a", ts=1)
    assert store.get_image("t", "a") is None
    assert [j.image_id for j in store.claim_jobs(10, 60, now=100)] == ["b", "c"]


def test_same_timestamp_lists_newest_insert_first(metadata_store: MetadataStore) -> None:
    metadata_store.insert_images([rec("x", ts=5), rec("y", ts=5)])
    metadata_store.insert_images([rec("z", ts=5)])
    assert [r.image_id for r in metadata_store.list_images("t", 10, 0)] == ["z", "y", "x"]


def test_insert_is_atomic(metadata_store: MetadataStore) -> None:
    metadata_store.insert_images([rec("a")])
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        metadata_store.insert_images([rec("b"), rec("a")])
    assert metadata_store.find_image("b") is None
    assert metadata_store.count_images() == 1


def test_get_images_many(metadata_store: MetadataStore) -> None:
    metadata_store.insert_images([rec(f"i{n}", ts=n) for n in range(1200)])
    ids = [f"i{n}" for n in range(0, 1200, 2)] + ["missing"]
    found = metadata_store.get_images("t", ids)
    assert set(found) == set(ids) - {"missing"}
    assert metadata_store.get_images("other", ids) == {}
    assert metadata_store.get_images("t", []) == {}


def test_queue_claim_lease_complete(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a"), rec("b", ts=2), rec("s", IndexingStatus.STORED)])
    first = store.claim_jobs(1, lease_s=60, now=10)
    assert [(j.image_id, j.tenant, j.sha256, j.attempts) for j in first] == [
        ("a", "t", "a" * 64, 0)
    ]
    second = store.claim_jobs(10, lease_s=60, now=10)
    assert [j.image_id for j in second] == ["b"]  # a is leased, s was never queued
    assert store.claim_jobs(10, lease_s=60, now=20) == []
    assert [j.image_id for j in store.claim_jobs(10, 60, now=71)] == ["a", "b"]  # leases ran out
    assert store.complete_jobs(["a", "gone"]) == {"a"}
    assert store.get_image("t", "a").status == IndexingStatus.INDEXED  # type: ignore[union-attr]
    assert store.release_leases() == 1
    assert [j.image_id for j in store.claim_jobs(10, 60, now=72)] == ["b"]
    assert store.complete_jobs([]) == set()


def test_failures_are_bounded(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a")])
    assert store.fail_job("a", "boom", max_attempts=2, retry_at=50) is False
    assert store.claim_jobs(10, 60, now=40) == []  # waits for retry_at
    (job,) = store.claim_jobs(10, 60, now=50)
    assert job.attempts == 1
    assert store.fail_job("a", "boom again", max_attempts=2, retry_at=60) is True
    failed = store.get_image("t", "a")
    assert failed.status == IndexingStatus.FAILED and failed.error == "boom again"  # type: ignore[union-attr]
    assert store.claim_jobs(10, 60, now=1000) == []
    assert store.fail_job("a", "no job any more", max_attempts=2, retry_at=0) is False


def test_requeue_and_counts(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec("a"), rec("b", tenant="u")])
    store.complete_jobs(["a", "b"])
    assert store.count_images(IndexingStatus.INDEXED) == 2
    assert store.count_images(IndexingStatus.INDEXED, tenant="u") == 1
    assert store.count_images(tenant="u") == 1
    assert store.requeue(["a", "missing"], now=5) == 1
    assert store.image_ids_with_status(IndexingStatus.QUEUED) == {"a"}
    assert [j.image_id for j in store.claim_jobs(10, 60, now=5)] == ["a"]
    assert store.requeue(["a"], now=6) == 1  # a leased job is replaced by a fresh one
    assert [j.image_id for j in store.claim_jobs(10, 60, now=6)] == ["a"]


def test_sha_in_use(metadata_store: MetadataStore) -> None:
    metadata_store.insert_images([rec("a", sha="b"), rec("c", sha="b")])
    assert metadata_store.sha_in_use("b" * 64)
    metadata_store.delete_image("t", "a")
    assert metadata_store.sha_in_use("b" * 64)
    metadata_store.delete_image("t", "c")
    assert not metadata_store.sha_in_use("b" * 64)


def test_keys(metadata_store: MetadataStore) -> None:
    store = metadata_store
    key = store.create_key("k1", "h" * 64, "t", {"search": "1/s"})
    assert store.find_key("h" * 64) == key
    assert store.find_key("x") is None
    assert store.list_keys() == [key]
    assert store.revoke_key("k1") and not store.revoke_key("k1")


def test_concurrent_claims_never_share_a_job(metadata_store: MetadataStore) -> None:
    store = metadata_store
    store.insert_images([rec(f"i{n:03}", ts=n) for n in range(120)])
    claimed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            while jobs := store.claim_jobs(7, lease_s=600, now=1000):
                with lock:
                    claimed.extend(j.image_id for j in jobs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(claimed) == [f"i{n:03}" for n in range(120)]  # each exactly once


def test_export_and_import(metadata_store: MetadataStore, request: pytest.FixtureRequest) -> None:
    source = metadata_store
    source.create_key("k1", "h" * 64, "t", {"*": "5/s"})
    source.insert_images([rec(f"i{n}", ts=n) for n in range(7)])
    source.insert_images([rec("s", IndexingStatus.STORED, ts=9)])
    source.fail_job("i1", "once", max_attempts=3, retry_at=42)
    assert source.claim_jobs(1, lease_s=60, now=1)  # a lease is not carried over

    factory: Callable[[str], MetadataStore] = request.getfixturevalue("metadata_factory")
    ran: list[str] = []
    for backend in METADATA_BACKENDS:
        try:
            target = factory(backend)
        except pytest.skip.Exception:
            continue  # without VIEWFINDER_TEST_REQUIRE_SERVICES, a missing service skips
        ran.append(backend)
        keys = source.export_keys()
        batches = list(source.iter_images(batch_size=3))
        assert [len(images) for images, _ in batches] == [3, 3, 2]
        assert target.import_keys(keys) == 1
        assert sum(target.import_images(images, jobs) for images, jobs in batches) == 8
        # idempotent: a second run copies nothing
        assert target.import_keys(keys) == 0
        assert sum(target.import_images(images, jobs) for images, jobs in batches) == 0

        assert target.export_keys() == keys
        assert target.list_images("t", 100, 0) == source.list_images("t", 100, 0)
        jobs = [j for _, js in target.iter_images() for j in js]
        assert sorted(jobs, key=lambda j: j.image_id)[1] == JobRow("i1", 1, 42, 1, "once")
        assert [j.image_id for j in target.claim_jobs(100, 60, now=10)] == [
            "i0", "i2", "i3", "i4", "i5", "i6"
        ]  # fmt: skip
    _all_backends_ran(ran)


def test_backends_agree(metadata_factory: Callable[[str], MetadataStore]) -> None:
    """One scripted session on every backend gives the same answers."""
    outcomes = []
    for backend in METADATA_BACKENDS:
        try:
            store = metadata_factory(backend)
        except pytest.skip.Exception:
            continue  # without VIEWFINDER_TEST_REQUIRE_SERVICES, a missing service skips
        log: list[object] = []
        store.insert_images([rec(f"i{n}", ts=n, tenant="ab"[n % 2]) for n in range(20)])
        log.append(store.claim_jobs(5, 30, now=10))
        log.append(store.complete_jobs(["i0", "i2", "i3"]))
        log.append(store.fail_job("i4", "bad", max_attempts=1, retry_at=0))
        log.append(store.delete_image("a", "i6"))
        log.append(store.claim_jobs(50, 30, now=11))
        log.append(store.requeue(["i0"], now=12))
        log.append(store.list_images("a", 5, 2))
        log.append(store.count_images(IndexingStatus.QUEUED, tenant="b"))
        log.append(sorted(store.image_ids_with_status(IndexingStatus.INDEXED)))
        outcomes.append((backend, log))
    _all_backends_ran([backend for backend, _ in outcomes])
    if len(outcomes) < 2:
        pytest.skip("only one metadata backend is available")
    for backend, log in outcomes[1:]:
        assert log == outcomes[0][1], f"{backend} differs from {outcomes[0][0]}"


def test_postgres_refuses_a_newer_schema(metadata_url_factory: Callable[[str], str]) -> None:
    import psycopg

    from viewfinder.stores.postgres_metadata import (
        MIGRATIONS,
        PostgresMetadataStore,
        PostgresOptions,
    )

    url = metadata_url_factory("postgres")
    store = PostgresMetadataStore(url, PostgresOptions(pool_size=1))
    try:
        store.migrate()
        assert store.schema_version() == len(MIGRATIONS)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (len(MIGRATIONS) + 1,))
        with pytest.raises(ConfigurationError, match="newer"):
            store.migrate()
    finally:
        store.close()


def test_postgres_processes_migrate_together(metadata_url_factory: Callable[[str], str]) -> None:
    from viewfinder.stores.postgres_metadata import (
        MIGRATIONS,
        PostgresMetadataStore,
        PostgresOptions,
    )

    url = metadata_url_factory("postgres")
    stores = [PostgresMetadataStore(url, PostgresOptions(pool_size=1)) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(store: PostgresMetadataStore) -> None:
        try:
            store.migrate()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert stores[0].schema_version() == len(MIGRATIONS)
    for s in stores:
        s.close()


def test_counts_are_maintained_through_every_change(metadata_store: MetadataStore) -> None:
    """count_images reads counters kept by triggers: they follow inserts, status changes,
    failures, requeues and deletes exactly like a count of the rows would."""
    store = metadata_store
    store.insert_images(
        [rec(f"a{n}") for n in range(5)]
        + [rec(f"b{n}", tenant="u") for n in range(3)]
        + [rec("bad", status=IndexingStatus.FAILED, tenant="u")]
    )
    store.complete_jobs(["a0", "a1", "b0"])
    store.claim_jobs(10, 60, now=1)
    store.fail_job("a2", "boom", max_attempts=1, retry_at=2)
    store.requeue(["a0"], now=3)
    store.delete_image("t", "a1")
    store.delete_image("u", "bad")
    store.delete_image("u", "no-such-image")
    truth: dict[tuple[str, int], int] = {}
    for tenant in ("t", "u"):
        for image in store.list_images(tenant, 100, 0):
            truth[(tenant, int(image.status))] = truth.get((tenant, int(image.status)), 0) + 1
    for tenant in ("t", "u", None):
        for status in (*IndexingStatus, None):
            want = sum(
                n
                for (t, s), n in truth.items()
                if tenant in (None, t) and (status is None or s == int(status))
            )
            assert store.count_images(status, tenant) == want, (tenant, status)
    assert store.count_images() == 7 and store.count_images(tenant="nobody") == 0


def test_a_postgres_standby_is_recognised_as_read_only(
    metadata_url_factory: Callable[[str], str],
) -> None:
    """A write to a PostgreSQL that accepts none (a standby after a failover; here a database
    whose sessions start read-only) fails with an error the API answers as "read-only"."""
    import psycopg

    url = metadata_url_factory("postgres")
    store = open_metadata(url, Settings(database_pool_size=1))
    store.migrate()
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    store = open_metadata(url, Settings(database_pool_size=1))
    try:
        with pytest.raises(Exception) as failed:
            store.hold_blob("img", "ab" * 32, 1.0)
        assert isinstance(unwritable_storage(failed.value), StorageReadOnly), failed.value
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
