"""The command group and what every command shares (settings from options, error exit)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ..config import Settings
from ..errors import StorageFull, ViewfinderError, unwritable_storage


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with command-line options taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def require_data(settings: Settings) -> None:
    """Refuse a data directory that holds no database yet: read-only commands never create
    one, and a mistyped --data-dir would otherwise read as an empty library."""
    if settings.database_url is None and not (settings.data_dir / "viewfinder.db").is_file():
        raise click.UsageError(
            f"no Viewfinder data in {settings.data_dir.resolve()}: index images there first "
            "(`viewfinder index PATH`), pass the right --data-dir (or VIEWFINDER_DATA_DIR), "
            "or ask a server with --server URL"
        )


def show_model_progress() -> None:
    """Let the built-in model's build progress reach stderr (off a terminal it is log lines;
    on one, a progress bar) when the command has configured no logging of its own."""
    log = logging.getLogger("viewfinder.embedders.builtin")
    log.setLevel(logging.INFO)
    if not logging.getLogger().handlers and not log.handlers:
        log.addHandler(_StderrHandler())
        log.propagate = False


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def fail(exc: ViewfinderError) -> NoReturn:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(2)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data directory [env VIEWFINDER_DATA_DIR; default ./viewfinder-data].",
)


class _Group(click.Group):
    """The command group; a command that fails on purpose (a ViewfinderError), finds its
    storage full or read-only, or a file it may not write, says so in one line and exits 2,
    instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ViewfinderError as exc:
            refused = unwritable_storage(exc)
            click.echo(f"error: {exc.message if refused is None else _unwritable(exc)}", err=True)
            sys.exit(2)
        except Exception as exc:
            click.echo(f"error: {_unwritable(exc)}", err=True)
            sys.exit(2)


def _unwritable(exc: Exception) -> str:
    """What to tell the user of an error that says storage refuses writes; re-raises any
    other error."""
    refused = unwritable_storage(exc)
    if refused is not None:
        where = f" at {refused.where}" if refused.where else ""
        fix = (
            "free space on the data directory's disk (or the database's)"
            if isinstance(refused, StorageFull)
            else "make the data directory (or the database) writable"
        )
        return (
            f"storage is {refused.state}{where} ({refused.detail}); {fix}, then run the "
            "command again"
        )
    if isinstance(exc, PermissionError) and exc.filename:
        return (
            f"{exc.strerror}: {exc.filename}; run as a user who may write there, or choose "
            "another --data-dir (VIEWFINDER_DATA_DIR)"
        )
    raise exc


@click.group(cls=_Group)
@click.version_option(package_name="viewfinder")
def cli() -> None:
    """Viewfinder: self-hosted natural-language image search."""


def settings_table() -> str:
    """The Markdown table of every setting, as the README shows it."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default is None else f"`{default}`"
        if default in ({}, []):
            shown = "none"
        rows.append(f"| `VIEWFINDER_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


@cli.command("settings")
def settings_command() -> None:
    """Print every setting (VIEWFINDER_* variable) as a Markdown table."""
    click.echo(settings_table())
