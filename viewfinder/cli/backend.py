"""Where a command's images live: a server (`Client`) or a data directory (`LocalClient`).

With `--server URL --api-key KEY` (or VIEWFINDER_SERVER / VIEWFINDER_API_KEY) the commands
talk to a running server through `viewfinder.Client`; without, they open the data directory
in this process (`LocalClient`) and act for one tenant (`--tenant`, default `default`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import click

from ..errors import AuthenticationError, ViewfinderError
from .app import data_dir_option, fail, require_data, settings_from, show_model_progress

if TYPE_CHECKING:
    from ..client import Client
    from ..local_client import LocalClient

    Backend = Union[Client, LocalClient]  # noqa: UP007

_F = TypeVar("_F", bound=Callable[..., Any])


def backend_options(fn: _F) -> _F:
    """--server/--api-key for a server; --data-dir/--tenant/--model for a local directory."""
    options = [
        click.option(
            "--server",
            envvar="VIEWFINDER_SERVER",
            metavar="URL",
            help="Use this server, e.g. http://127.0.0.1:8000 [env VIEWFINDER_SERVER]; "
            "without it, the data directory is used directly.",
        ),
        click.option(
            "--api-key",
            envvar="VIEWFINDER_API_KEY",
            metavar="KEY",
            help="API key for --server [env VIEWFINDER_API_KEY].",
        ),
        data_dir_option,
        click.option(
            "--tenant",
            default="default",
            show_default=True,
            help="Tenant whose images a local data directory holds (no --server).",
        ),
        click.option(
            "--model", default=None, help="Embedding model, local only [env VIEWFINDER_MODEL]."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@contextmanager
def open_backend(
    server: str | None,
    api_key: str | None,
    data_dir: Path | None,
    tenant: str,
    model: str | None,
    *,
    background: bool = False,
    must_exist: bool = False,
) -> Iterator[Backend]:
    """A `Client` for --server, else a `LocalClient` over the data directory (indexing in
    background threads when `background`; refusing one that holds nothing yet when
    `must_exist`, as a mistyped --data-dir would otherwise read as an empty library)."""
    if server:
        if not api_key:
            raise click.UsageError(
                "--server needs --api-key (or VIEWFINDER_API_KEY); on the server make one with "
                "`viewfinder keys create TENANT`"
            )
        if data_dir is not None or model is not None:
            raise click.UsageError(
                "--data-dir and --model are for local use; they do not go with --server "
                "(or VIEWFINDER_SERVER)"
            )
        from ..client import Client

        with Client(server, api_key) as client:
            yield client
        return
    if api_key:
        raise click.UsageError(
            "--api-key needs --server URL (or VIEWFINDER_SERVER); without a server the data "
            "directory is used directly and needs no key"
        )
    from ..local_client import LocalClient

    show_model_progress()
    settings = settings_from(data_dir=data_dir, model=model)
    if must_exist:
        require_data(settings)
    with LocalClient(settings, tenant, background=background) as local:
        yield local


def _explain(exc: ViewfinderError) -> ViewfinderError:
    if isinstance(exc, AuthenticationError):
        exc.message += "; check --api-key / VIEWFINDER_API_KEY (`viewfinder keys create TENANT`)"
    return exc


def handles_errors(fn: _F) -> _F:
    """Turn library errors into `error: ...` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ViewfinderError as exc:
            fail(_explain(exc))

    return wrapper  # type: ignore[return-value]
