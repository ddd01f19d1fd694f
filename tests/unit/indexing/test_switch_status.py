"""During a model switch every face names the model answering searches as `model_id` and the
switch target apart: the API, the Python client, the CLI (local and --server), LocalClient."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from tests.conftest import png_bytes
from tests.e2e.server import free_port
from viewfinder import Client
from viewfinder.api.app import create_app
from viewfinder.bootstrap import build_service, worker_options
from viewfinder.cli import cli
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.records import UploadItem
from viewfinder.domain.service import ImageService
from viewfinder.embedders.builtin import builtin_model_id
from viewfinder.indexing.worker import IndexingWorker
from viewfinder.local_client import LocalClient
from viewfinder.stores.factory import open_vectors
from viewfinder.testing import build_tiny_clip

Face = tuple[str, tuple[str, str, int, int] | None]  # model_id, (from, to, done, total)


def settings(data: Path, model: str) -> Settings:
    return Settings(data_dir=data, model=model, batch_size=2)


def index_with(data: Path, model: str, colours: list[tuple[int, int, int]]) -> None:
    service = build_service(settings(data, model))
    service.start()
    service.upload("acme", [UploadItem(data=png_bytes(c)) for c in colours])
    IndexingWorker(service, worker_options(settings(data, model))).drain()
    service.close()


@contextmanager
def serving(service: ImageService, config: Settings) -> Iterator[str]:
    """A real server over `service` on a free port, in a thread."""
    port = free_port()
    app = create_app(config, service)
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


def cli_face(data: Path, model: str, *server: str) -> Face:
    """What `viewfinder status` prints, read back."""
    env = {"VIEWFINDER_MODEL": model, "VIEWFINDER_SERVER": None, "VIEWFINDER_API_KEY": None}
    out = CliRunner().invoke(cli, ["status", "--data-dir", str(data), *server], env=env)
    assert out.exit_code == 0, out.output
    lines = dict(line.split(None, 1) for line in out.output.splitlines())
    if "switch" not in lines:
        return lines["model"], None
    moving, _, counts = lines["switch"].partition(": ")
    done, total = counts.split()[0].split("/")
    source, target = moving.split(" -> ")
    return lines["model"], (source, target, int(done), int(total))


def api_face(body: dict[str, Any]) -> Face:
    sw = body["switch"]
    moving = None if sw is None else (sw["from_model"], sw["to_model"], sw["done"], sw["total"])
    return body["model_id"], moving


def client_face(status: Any) -> Face:
    sw = status.switch
    moving = None if sw is None else (sw.from_model, sw.to_model, sw.done, sw.total)
    return status.model_id, moving


def service_faces(data: Path, model: str, service: ImageService, url: str, key: str) -> set[Face]:
    body = httpx.get(f"{url}/v1/status", headers={"X-Api-Key": key}).json()
    with Client(url, key) as client:
        remote = client_face(client.status())
    return {
        api_face(body),
        remote,
        cli_face(data, model),
        cli_face(data, model, "--server", url, "--api-key", key),
    }


def test_every_face_names_the_answering_model_and_the_switch_apart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    index_with(data, "fake", [(255, 0, 0), (0, 255, 0), (0, 0, 255)])

    config = settings(data, "fake64")
    service = build_service(config)
    service.start()
    worker = IndexingWorker(service, worker_options(config))
    key = KeyRing(service.metadata).create("acme").secret
    with serving(service, config) as url:
        # searches come from the old model: it is model_id; the target is the switch's
        assert service_faces(data, "fake64", service, url, key) == {
            ("fake-32", ("fake-32", "fake-64", 0, 3))
        }
        assert worker.reembed_once() == 2
        assert service_faces(data, "fake64", service, url, key) == {
            ("fake-32", ("fake-32", "fake-64", 2, 3))
        }
        service.close()  # stopped mid-switch: LocalClient resumes it
    with LocalClient(config, tenant="acme") as local:
        assert client_face(local.status()) == ("fake-32", ("fake-32", "fake-64", 2, 3))
        assert cli_face(data, "fake64") == client_face(local.status())
        worker = IndexingWorker(local.service, worker_options(config))
        while worker.reembed_once():
            pass
        assert client_face(local.status()) == ("fake-64", None)
    assert cli_face(data, "fake64") == ("fake-64", None)


def test_an_old_model_that_cannot_load_leaves_the_new_one_answering(tmp_path: Path) -> None:
    data, old = tmp_path / "data", tmp_path / "Tiny-Gone"
    index_with(data, str(build_tiny_clip(old)), [(255, 0, 0), (0, 0, 255)])
    shutil.rmtree(old)  # searches now come from the new model over what it has re-embedded

    config = settings(data, "fake")
    with LocalClient(config, tenant="acme") as local:
        expected = ("fake-32", ("Tiny-Gone", "fake-32", 0, 2))
        assert client_face(local.status()) == expected
        assert cli_face(data, "fake") == expected
        assert local.service.queue_status("acme").model_id == "fake-32"


def stored_switch(data: Path, old: tuple[str, str], new: tuple[str, str]) -> None:
    """A data directory mid-switch from `old` to `new` ((model id, setting) each), as an
    upgrade leaves it: both indexes hold their model, nothing is loaded."""
    assert (
        CliRunner().invoke(cli, ["keys", "create", "acme", "--data-dir", str(data)]).exit_code == 0
    )
    config = settings(data, new[1])
    for shadow, (model_id, spec) in ((False, old), (True, new)):
        index = open_vectors(config.resolved_vector_url(), shadow=shadow, settings=config)
        index.open(model_id, 396, spec)
        index.close()


V = "builtin-effnetlite2-minilm-v"


@pytest.mark.parametrize(
    ("old", "new", "answering"),
    [
        # the old setting now loads another recipe and shares no space: the new model answers
        ((f"{V}3", "builtin"), (builtin_model_id("lite2", "minilm"), "builtin"), "new"),
        # an old recipe in the new one's space (SHARES_SPACE_WITH): its vectors answer
        ((f"{V}4", "builtin"), (builtin_model_id("lite2", "minilm"), "builtin"), "old"),
        # the old setting still loads that model: it answers
        ((builtin_model_id("lite2", "minilm"), "builtin"), ("fake-396", "fake396"), "old"),
    ],
)
def test_status_without_a_server_names_the_model_a_server_would_answer_with(
    tmp_path: Path, old: tuple[str, str], new: tuple[str, str], answering: str
) -> None:
    data = tmp_path / "data"
    stored_switch(data, old, new)
    expected = old[0] if answering == "old" else new[0]
    assert cli_face(data, new[1]) == (expected, (old[0], new[0], 0, 0))
