"""`viewfinder keys create|list|revoke`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ViewfinderError
from .app import cli, data_dir_option, fail, require_data, settings_from


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _metadata(data_dir: Path | None, *, create: bool = True) -> Any:
    from ..stores.factory import open_metadata

    settings = settings_from(data_dir=data_dir)
    if not create:
        require_data(settings)  # listing or revoking never creates a data directory
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_metadata(settings.resolved_database_url())
    store.migrate()
    return store


@keys.command("create")
@click.argument("tenant")
@data_dir_option
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    metavar="ENDPOINT=N/UNIT",
    help="Limit this key, e.g. search=60/minute or '*=1000/hour' (repeatable).",
)
def keys_create(tenant: str, data_dir: Path | None, rate_limits: tuple[str, ...]) -> None:
    """Make a key for TENANT and print it (only the key, on stdout).

    Keys of the same tenant share its images; other tenants never see them.
    """
    from ..api.ratelimit import parse_limit
    from ..domain.keys import KeyRing

    limits: dict[str, str] = {}
    try:
        for spec in rate_limits:
            endpoint, sep, value = spec.partition("=")
            if not sep:
                raise click.BadParameter(
                    f"{spec!r}: write ENDPOINT=N/UNIT", param_hint="--rate-limit"
                )
            parse_limit(value)
            limits[endpoint.strip()] = value.strip()
        store = _metadata(data_dir)
        try:
            issued = KeyRing(store).create(tenant, limits)
        finally:
            store.close()
    except ViewfinderError as exc:
        fail(exc)
    click.echo(issued.secret)


@keys.command("list")
@data_dir_option
def keys_list(data_dir: Path | None) -> None:
    """List key ids and their tenants (the secrets are not stored)."""
    store = _metadata(data_dir, create=False)
    try:
        for key in store.list_keys():
            limits = ",".join(f"{k}={v}" for k, v in key.rate_limits.items())
            click.echo(f"{key.key_id}\t{key.tenant}\t{limits}")
    finally:
        store.close()


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
def keys_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke a key by its id (from `viewfinder keys list`)."""
    store = _metadata(data_dir, create=False)
    try:
        if not store.revoke_key(key_id):
            click.echo(f"error: no key {key_id}; see `viewfinder keys list`", err=True)
            sys.exit(1)
    finally:
        store.close()
    click.echo(f"revoked {key_id}")
