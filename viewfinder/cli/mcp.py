"""`viewfinder mcp`: the MCP server over stdio."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from ..errors import ViewfinderError
from .app import cli, fail
from .backend import backend_options, open_backend

if TYPE_CHECKING:
    from ..local_client import LocalClient


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

    from ..loading_backend import LoadingBackend
    from ..mcp_server import build_mcp_server, serve_stdio

    # stdout carries the protocol: every log line must go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("viewfinder.embedders.builtin", "viewfinder.loading_backend"):
        logging.getLogger(name).setLevel(logging.INFO)  # the model's build and readiness
    try:
        if server:  # nothing to load: open it here, so a wrong option fails at once
            with open_backend(server, api_key, data_dir, tenant, model) as client:
                anyio.run(serve_stdio, client)
            return
        if api_key:
            raise click.UsageError("--api-key needs --server URL (or VIEWFINDER_SERVER)")
        # A host waits seconds, not minutes, for `initialize`: answer while the data directory
        # and its model load in the background; a tool call waits for them.
        loading = LoadingBackend(
            functools.partial(_open_local, data_dir, tenant, model),
            what="the model and the data directory",
        )
        # the tools reach the LocalClient's calls through it, once it is open; the server is
        # built (the mcp package imported) before the loading competes for the interpreter
        server_ = build_mcp_server(cast("LocalClient", loading))
        with loading:
            anyio.run(server_.run_stdio_async)
    except ViewfinderError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass


@contextmanager
def _open_local(data_dir: Path | None, tenant: str, model: str | None) -> Iterator[LocalClient]:
    """The data directory with its model loaded (built, on a machine's first start)."""
    from ..bootstrap import warm_up

    with open_backend(None, None, data_dir, tenant, model, background=True) as local:
        warm_up(local.service.embedder)  # type: ignore[union-attr]
        yield local  # type: ignore[misc]
