"""A bound on the upload bytes the server holds in memory at once, across requests.

Reading an upload form, the first file parts of a request stay in memory (up to
`upload_form.REQUEST_IN_MEMORY` bytes a request) and later ones go to disk
(`upload_form.spool_file_parts_to_disk`). That bounds one request, not many: a hundred
concurrent uploads, or a client that opens them on purpose, would hold a hundred times as
much. `UploadMemoryMiddleware` hands out that per-request allowance from a budget
(VIEWFINDER_UPLOAD_MEMORY_BYTES): an upload that finds it spent is not refused or delayed,
its file parts all spool to disk past 64 KiB (slower, about 1 ms of CPU a photo).
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

# Whether the request being read may keep its first file parts in memory. Outside a request
# this middleware admitted (another app in the process, a test of the parser alone) it may.
_parts_in_memory: ContextVar[bool] = ContextVar("viewfinder_upload_parts_in_memory", default=True)


def parts_in_memory() -> bool:
    """Whether the upload being read may keep its first file parts in memory."""
    return _parts_in_memory.get()


class UploadMemoryMiddleware:
    """Lets at most `budget_bytes // per_request_bytes` multipart requests at once keep file
    parts in memory; the others spool every part. The count runs on the event loop (the
    form is parsed there), so it needs no lock, and a request's allowance is held until its
    response is sent, when FastAPI has closed its files."""

    def __init__(self, app: ASGIApp, budget_bytes: int, per_request_bytes: int) -> None:
        self.app = app
        self.slots = max(0, budget_bytes) // max(1, per_request_bytes)
        self.in_use = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_multipart(scope):
            await self.app(scope, receive, send)
            return
        granted = self.in_use < self.slots
        if granted:
            self.in_use += 1
        token = _parts_in_memory.set(granted)
        try:
            await self.app(scope, receive, send)
        finally:
            _parts_in_memory.reset(token)
            if granted:
                self.in_use -= 1


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return value.lower().startswith(b"multipart/form-data")
    return False
