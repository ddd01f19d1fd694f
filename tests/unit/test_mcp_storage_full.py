"""An MCP tool that finds the data directory's disk full answers with a tool error saying so,
not a bare "Error executing tool"."""

from __future__ import annotations

import errno
from pathlib import Path

import anyio
import pytest
from PIL import Image

from viewfinder.config import Settings
from viewfinder.local_client import LocalClient
from viewfinder.mcp_server import build_mcp_server
from viewfinder.stores.local_blobs import LocalBlobStore

pytest.importorskip("mcp", reason="the mcp package is not installed")


def test_upload_on_a_full_disk_is_a_tool_error_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("RGB", (32, 24), (255, 0, 0)).save(tmp_path / "red.png")

    def full(self: LocalBlobStore, sha256: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/blobs/x")

    monkeypatch.setattr(LocalBlobStore, "put", full)
    settings = Settings(data_dir=tmp_path / "data", model="fake")
    with LocalClient(settings, tenant="default") as local:
        server = build_mcp_server(local)

        async def upload() -> str:
            with pytest.raises(Exception) as failed:
                await server.call_tool("upload_image", {"source": str(tmp_path / "red.png")})
            return str(failed.value)

        said = anyio.run(upload)
        assert "storage is full (No space left on device)" in said
        assert local.list_images() == []
