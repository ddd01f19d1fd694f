"""Every API test runs twice: on the embedded stores and on the shared ones.

"shared" is a fresh PostgreSQL database, S3 bucket (moto) and Milvus collection (the Milvus
Lite gRPC server) per test, on servers started once per session (see tests/conftest.py). A test
marked `@pytest.mark.embedded_only` runs on the embedded stores alone.
"""

from __future__ import annotations

import pytest

from tests.conftest import STORES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stores" not in metafunc.fixturenames:
        return  # a test without settings/service/client has nothing to run twice
    params = ["embedded"] if metafunc.definition.get_closest_marker("embedded_only") else STORES
    metafunc.parametrize("stores", params, indirect=True)
