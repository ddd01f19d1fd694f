"""The store factory: URL schemes, and a missing optional backend named by its extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from viewfinder.config import Settings
from viewfinder.errors import ConfigurationError
from viewfinder.stores.factory import (
    is_multi_process,
    open_blobs,
    open_metadata,
    open_vectors,
)


@pytest.mark.parametrize(
    ("module", "store_module", "opener", "url", "extra"),
    [
        ("psycopg", "postgres_metadata", open_metadata, "postgresql://h/db", "postgres"),
        ("boto3", "s3_blobs", open_blobs, "s3://bucket/prefix", "s3"),
        ("pymilvus", "milvus_target", open_vectors, "milvus://h:19530/c", "milvus"),
        ("milvus_lite", "milvus_target", open_vectors, "milvus-lite:///t/v.db", "milvus-lite"),
    ],
)
def test_missing_backend_names_its_extra(
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    store_module: str,
    opener: object,
    url: str,
    extra: str,
) -> None:
    # As if the package were not installed: importing it raises ImportError.
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, f"viewfinder.stores.{store_module}", raising=False)
    with pytest.raises(ConfigurationError, match=rf"viewfinder\[{extra}\]"):
        opener(url)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("opener", "url"),
    [
        (open_metadata, "mysql://h/db"),
        (open_blobs, "gs://bucket"),
        (open_vectors, "qdrant://h"),
        (open_blobs, "s3:///no-bucket"),
    ],
)
def test_unknown_schemes_are_configuration_errors(opener: object, url: str) -> None:
    with pytest.raises(ConfigurationError):
        opener(url)  # type: ignore[operator]


def test_multi_process_needs_shared_metadata_and_vectors() -> None:
    pg, milvus = "postgresql://h/db", "milvus://h:19530/c"
    assert is_multi_process(Settings(database_url=pg, vector_url=milvus))
    assert not is_multi_process(Settings(database_url=pg))  # the exact index is in-process
    assert not is_multi_process(Settings(vector_url=milvus))  # SQLite is one machine's
    assert not is_multi_process(Settings(database_url=pg, vector_url="milvus-lite:///x/vectors.db"))


def test_worker_refuses_embedded_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from viewfinder.cli import cli

    monkeypatch.setenv("VIEWFINDER_MODEL", "fake")
    result = CliRunner().invoke(cli, ["worker", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "postgresql://" in result.output and "viewfinder serve" in result.output
