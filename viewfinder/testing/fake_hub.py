"""A stand-in for the Hugging Face hub on 127.0.0.1, so `viewfinder models pull` is tested offline.

It answers the requests that `huggingface_hub` and `viewfinder.embedders.hub` make:

    GET       /api/models/OWNER/NAME[/revision/REV]?blobs=true   files, sizes, checksums
    HEAD|GET  /OWNER/NAME/resolve/REV/PATH     ETag, X-Repo-Commit, X-Linked-Size/-Etag, Range;
                                               LFS files redirect to the content-addressed
    HEAD|GET  /cdn/SHA256                      copy, as the real hub sends them to its CDN

and misbehaves on request: drop the connection part-way through a file (`drop`), serve bytes
that do not match the advertised checksum (`corrupt`), or ignore Range (`ignore_range`).
Every request is recorded in `hits`. Point `HF_ENDPOINT` (or `endpoint=`) at `url`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".onnx", ".onnx_data", ".bin", ".safetensors")
LFS_MIN_SIZE = 10 * 2**20  # the hub keeps bigger files in LFS whatever their name


@dataclass(frozen=True)
class HubFile:
    """One file of a repository; large binaries are stored in LFS as on the real hub."""

    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        """The git blob id: of the LFS pointer for LFS files, of the bytes otherwise."""
        body = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {len(self.data)}\n"
        ).encode()


@dataclass
class HubRepo:
    """A model repository at one commit."""

    repo_id: str
    commit: str
    files: dict[str, HubFile]
    no_checksum: set[str] = field(default_factory=set)  # listed without blob id or LFS info

    def info(self) -> dict[str, object]:
        """The JSON of GET /api/models/{repo_id}?blobs=true."""
        siblings = []
        for path, f in sorted(self.files.items()):
            sibling: dict[str, object] = {"rfilename": path, "size": len(f.data)}
            if path in self.no_checksum:
                siblings.append(sibling)
                continue
            sibling["blobId"] = f.git_oid
            if f.lfs:
                sibling["lfs"] = {
                    "size": len(f.data),
                    "sha256": f.sha256,
                    "pointerSize": len(f.pointer),
                }
            siblings.append(sibling)
        return {
            "_id": self.commit[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "sha": self.commit,
            "private": False,
            "tags": ["immich", "clip"],
            "siblings": siblings,
        }


@dataclass(frozen=True)
class Hit:
    """One request the hub answered; `file` is the repository path a download was for."""

    method: str
    path: str
    range: str | None = None
    file: str | None = None
    sent: int = 0  # body bytes written


@dataclass
class FakeHub:
    """The fake hub: add repositories, start it, point the client at `url`."""

    repos: dict[str, HubRepo] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    corrupt: set[str] = field(default_factory=set)  # file paths served with a byte flipped
    ignore_range: bool = False
    redirect_lfs: bool = True
    _drops: dict[str, list[int]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_repo(
        self,
        repo_id: str,
        directory: Path,
        *,
        commit: str | None = None,
        extra: dict[str, bytes] | None = None,
        lfs_min_size: int = LFS_MIN_SIZE,
    ) -> HubRepo:
        """Serve every file under `directory` (plus `extra` paths) as repository `repo_id`.

        Files named like binaries, and any of `lfs_min_size` bytes or more (an exporter's
        per-tensor weight files have no suffix), are stored in LFS.
        """

        def stored(path: str, data: bytes) -> HubFile:
            return HubFile(data, path.endswith(LFS_SUFFIXES) or len(data) >= lfs_min_size)

        files = {
            p.relative_to(directory).as_posix(): stored(p.name, p.read_bytes())
            for p in sorted(Path(directory).rglob("*"))
            if p.is_file()
        }
        for path, data in (extra or {}).items():
            files[path] = stored(path, data)
        commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
        self.repos[repo_id] = HubRepo(repo_id, commit, files)
        return self.repos[repo_id]

    def drop(self, path: str, at: int) -> None:
        """Cut the next download of `path` once the client holds its first `at` bytes."""
        self._drops.setdefault(path, []).append(at)

    def downloads(self, path: str | None = None) -> list[Hit]:
        """GET requests that carried file bytes (of `path`, if given)."""
        return [
            hit
            for hit in self.hits
            if hit.method == "GET" and hit.file is not None and path in (None, hit.file)
        ]

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHub:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def _next_drop(self, path: str) -> int | None:
        with self._lock:
            queue = self._drops.get(path)
            return queue.pop(0) if queue else None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early (tests do, on purpose) is not news


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

        def _route(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            if path.startswith("/api/models/"):
                self._model_info(path.removeprefix("/api/models/"), head)
            elif path.startswith("/cdn/"):
                self._cdn(path.removeprefix("/cdn/"), head)
            elif "/resolve/" in path:
                self._resolve(path.lstrip("/"), head)
            else:
                self._error(404, "NotFound", "no such endpoint")

        def _model_info(self, rest: str, head: bool) -> None:
            repo_id, _, revision = rest.partition("/revision/")
            repo = self._repo(repo_id, revision or "main")
            if repo is None:
                return
            body = json.dumps(repo.info()).encode()
            self._record(head)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _resolve(self, rest: str, head: bool) -> None:
            owner, name, _, revision, *file = rest.split("/", 4)
            repo = self._repo(f"{owner}/{name}", revision)
            if repo is None:
                return
            file_path = file[0] if file else ""
            f = repo.files.get(file_path)
            if f is None:
                self._error(404, "EntryNotFound", f"{file_path} not found", repo.commit)
                return
            etag = f.sha256 if f.lfs else f.git_oid
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"'}
            if f.lfs:
                headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(f.data))}
            if f.lfs and hub.redirect_lfs:
                self._record(head)
                self.send_response(302)
                self.send_header("Location", f"{hub.url}/cdn/{f.sha256}")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_file(file_path, f, head, headers)

        def _cdn(self, sha256: str, head: bool) -> None:
            for repo in hub.repos.values():
                for file_path, f in repo.files.items():
                    if f.lfs and f.sha256 == sha256:
                        self._send_file(file_path, f, head, {"ETag": f'"{sha256}"'})
                        return
            self._error(404, "NotFound", "no such blob")

        def _send_file(self, file_path: str, f: HubFile, head: bool, headers: dict) -> None:
            data = f.data
            if file_path in hub.corrupt and data:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            requested = self.headers.get("Range")
            start = 0
            if requested and not hub.ignore_range and not head:
                start = int(requested.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self._record(head, requested, file_path)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = data[start:]
            drop = None if head else hub._next_drop(file_path)
            sent = body if drop is None else body[: max(0, drop - start)]
            self.send_response(206 if start else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            self._record(head, requested, file_path, 0 if head else len(sent))
            if head:
                return
            self.wfile.write(sent)
            if drop is not None:  # the rest never comes: the client sees a short body
                self.wfile.flush()
                self.close_connection = True

        def _repo(self, repo_id: str, revision: str) -> HubRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            elif revision not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", repo.commit)
            else:
                return repo
            return None

        def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
            self._record(self.command == "HEAD")
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _record(
            self, head: bool, rng: str | None = None, file: str | None = None, sent: int = 0
        ) -> None:
            hub._record(Hit("HEAD" if head else "GET", self.path, rng, file, sent))

    return Handler
