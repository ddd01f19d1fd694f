"""`viewfinder.client` exposes its names lazily, so that `LocalClient` (which shares the
result types) never imports httpx; every public name still resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import viewfinder.client as client


def test_every_public_name_resolves_and_is_listed() -> None:
    for name in client.__all__:
        assert getattr(client, name) is not None
    assert set(client.__all__) <= set(dir(client))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        client.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_the_result_types_come_without_httpx() -> None:
    code = (
        "import sys\n"
        "from viewfinder.client import SearchResult, Image, IndexingTimeout\n"
        "import viewfinder.local_client\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "from viewfinder.client import Client\n"
        "assert 'httpx' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
