"""deploy/compose.yaml and deploy/Dockerfile ask only for what exists: commands and options of
the CLI, settings, services, extras. (Docker can't run in the suite; this is what can be
checked without it.)"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from viewfinder.cli import cli
from viewfinder.config import Settings
from viewfinder.stores.factory import is_multi_process

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
_DEFAULTED = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11+
    tomllib = pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _interpolated(value: str) -> str:
    """The value as compose sees it with no variables set: the defaults."""
    return _DEFAULTED.sub(lambda m: m.group(2) or "", value)


def _viewfinder_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }
    assert set(found) == {"api", "worker"}
    return found


def test_every_service_the_issue_asks_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"api", "worker", "postgres", "minio", "bucket", "etcd", "milvus"} <= set(services)
    for name, svc in services.items():
        for needed in svc.get("depends_on", {}):
            assert needed in services, f"{name} depends on a missing service {needed}"
        for volume in svc.get("volumes", []):
            named = volume.split(":", 1)[0]
            assert named in compose["volumes"], f"{name} mounts an undeclared volume {named}"
        assert "image" in svc or "build" in svc


def test_viewfinder_commands_parse(compose: dict[str, Any]) -> None:
    for name, svc in _viewfinder_services(compose).items():
        args = [_interpolated(a) for a in svc["command"]]
        command = cli.get_command(click.Context(cli), args[0])
        assert command is not None, f"{name}: no command {args[0]}"
        command.make_context(args[0], args[1:])  # raises on an unknown option or a bad value


def test_viewfinder_environment_is_settings_of_a_shared_deployment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {f"VIEWFINDER_{name.upper()}" for name in Settings.model_fields}
    for name, svc in _viewfinder_services(compose).items():
        env = {k: _interpolated(str(v)) for k, v in svc["environment"].items()}
        unknown = [k for k in env if k not in fields]
        assert not unknown, f"{name} sets unknown settings {unknown}"
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = Settings()  # every value is valid for its setting
        assert is_multi_process(settings), name
        assert settings.metrics
        # the URLs point at the services of the file
        hosts = {
            "database": re.search(r"@([\w-]+):", settings.database_url or ""),
            "s3": re.search(r"//([\w-]+):", settings.s3_endpoint_url or ""),
            "vectors": re.search(r"//([\w-]+):", settings.vector_url or ""),
        }
        for what, host in hosts.items():
            assert host and host.group(1) in compose["services"], f"{name}: {what} host"


def test_probes_hit_the_ports_they_serve(compose: dict[str, Any]) -> None:
    services = _viewfinder_services(compose)
    api, worker = services["api"], services["worker"]
    port = api["command"][api["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}/readyz" in " ".join(api["healthcheck"]["test"])
    health = worker["command"][worker["command"].index("--health-port") + 1]
    assert f"127.0.0.1:{health}/readyz" in " ".join(worker["healthcheck"]["test"])
    assert worker["environment"]["VIEWFINDER_HOST"] == "0.0.0.0"  # reachable by Docker
    for svc in services.values():
        assert svc["stop_grace_period"]


def test_dockerfile_installs_the_production_extras_only() -> None:
    text = DOCKERFILE.read_text()
    extras = re.search(r'pip install "\.\[([\w,-]+)\]"', text)
    assert extras is not None
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    wanted = extras.group(1).split(",")
    assert set(wanted) == {"postgres", "s3", "milvus"} and set(wanted) <= set(declared)
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path
    assert 'ENTRYPOINT ["viewfinder"]' in text


def test_milvus_extra_leaves_milvus_lite_out() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    def names(extra: str) -> set[str]:
        return {re.split(r"[<>=;\[ ]", req, maxsplit=1)[0] for req in extras[extra]}

    assert "milvus-lite" not in names("milvus") and "pymilvus" in names("milvus")
    assert {"pymilvus", "milvus-lite"} <= names("milvus-lite")
    assert "milvus-lite" in names("test")  # the suite's stand-in for a Milvus server
