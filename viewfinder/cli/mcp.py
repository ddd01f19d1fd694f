"""`viewfinder mcp`: the MCP server over stdio."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ViewfinderError
from .app import cli, fail
from .backend import backend_options


@cli.command()
@backend_options
def mcp(
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
) -> None:
    """Serve search, upload, get, list and delete as MCP tools over stdio.

    With --server/--api-key the tools use that server; without, the data directory directly
    (indexing runs in this process). Configure it in an MCP client as the command
    `viewfinder mcp ...`.
    """
    import anyio

    from ..mcp_server import serve_stdio
    from .backend import open_backend

    # stdout carries the protocol: every log line must go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with open_backend(server, api_key, data_dir, tenant, model, background=True) as backend:
            anyio.run(serve_stdio, backend)
    except ViewfinderError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass
