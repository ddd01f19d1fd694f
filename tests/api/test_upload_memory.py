"""The upload memory budget (api/upload_memory.py): how many uploads at once may keep their
first file parts in memory; the others spool every part to disk, and none is refused."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from tests.conftest import jpeg_bytes
from viewfinder.api.upload_form import PART_IN_MEMORY, PARTS_IN_MEMORY, REQUEST_IN_MEMORY
from viewfinder.api.upload_memory import UploadMemoryMiddleware, parts_in_memory

MULTIPART = (b"content-type", b"multipart/form-data; boundary=x")


def _scope(*headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/v1/images/upload", "headers": list(headers)}


async def _noop_receive() -> dict[str, object]:
    return {"type": "http.disconnect"}


async def _noop_send(message: object) -> None:
    return None


def test_uploads_beyond_the_budget_spool_and_a_finished_one_gives_its_share_back() -> None:
    seen: dict[str, bool] = {}
    release = asyncio.Event()

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen[scope["name"]] = parts_in_memory()
        if scope["name"] in ("a", "b"):
            await release.wait()

    mw = UploadMemoryMiddleware(
        inner, budget_bytes=2 * REQUEST_IN_MEMORY + 5, per_request_bytes=REQUEST_IN_MEMORY
    )

    async def call(name: str, *headers: tuple[bytes, bytes]) -> None:
        await mw({**_scope(*headers), "name": name}, _noop_receive, _noop_send)

    async def run() -> None:
        held = [asyncio.create_task(call(n, MULTIPART)) for n in ("a", "b")]
        await asyncio.sleep(0)
        await call("c", MULTIPART)  # the budget is spent: a and b hold it
        await call("json")  # not an upload form: takes nothing, is not limited
        assert mw.in_use == 2
        release.set()
        await asyncio.gather(*held)
        assert mw.in_use == 0
        await call("d", MULTIPART)

    asyncio.run(run())
    assert seen == {"a": True, "b": True, "c": False, "json": True, "d": True}


def test_a_failed_upload_gives_its_share_back() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    mw = UploadMemoryMiddleware(
        inner, budget_bytes=REQUEST_IN_MEMORY, per_request_bytes=REQUEST_IN_MEMORY
    )
    with pytest.raises(RuntimeError):
        asyncio.run(mw(_scope(MULTIPART), _noop_receive, _noop_send))
    assert mw.in_use == 0


def test_a_zero_budget_keeps_no_upload_in_memory() -> None:
    seen: list[bool] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(parts_in_memory())

    mw = UploadMemoryMiddleware(inner, budget_bytes=0, per_request_bytes=REQUEST_IN_MEMORY)
    asyncio.run(mw(_scope(MULTIPART), _noop_receive, _noop_send))
    assert seen == [False]


@pytest.mark.embedded_only
def test_an_upload_over_the_budget_spools_every_part_and_is_stored(
    settings, service, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real form parser: while one upload holds the whole budget, a second one's
    parts all go to disk and it is answered as usual; afterwards the first parts of an upload
    stay in memory again."""
    from viewfinder.api.app import create_app

    one = settings.model_copy(update={"upload_memory_bytes": REQUEST_IN_MEMORY})
    rolled: dict[str, list[bool]] = {}
    entered, release = threading.Event(), threading.Event()
    upload = service.upload

    def watched(tenant, items, *args):  # noqa: ANN001, ANN202
        name = items[0].filename.split("-")[0]
        rolled[name] = [bool(item.file._rolled) for item in items]
        if name == "first":
            entered.set()
            assert release.wait(30)
        return upload(tenant, items, *args)

    monkeypatch.setattr(service, "upload", watched)
    big = jpeg_bytes((9, 9, 9), (16, 16)) + b"\0" * (PART_IN_MEMORY // 4)
    auth = {"X-Api-Key": api_key}

    def post(c: TestClient, name: str, n: int = 3) -> int:
        files = [("images", (f"{name}-{i}.jpg", big, "image/jpeg")) for i in range(n)]
        return c.post("/v1/images/upload", headers=auth, files=files).status_code

    with TestClient(create_app(one, service)) as c, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, c, "first")
        assert entered.wait(30)
        assert post(c, "second") == 200
        release.set()
        assert first.result(30) == 200
        assert post(c, "third", PARTS_IN_MEMORY + 1) == 200
    assert rolled["first"] == [False] * 3
    assert rolled["second"] == [True] * 3
    assert rolled["third"] == [False] * PARTS_IN_MEMORY + [True]
