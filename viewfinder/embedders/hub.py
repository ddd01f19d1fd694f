"""Pull a model from the Hugging Face hub (or the mirror at HF_ENDPOINT) into the model cache.

Only `viewfinder models pull` calls this; the server never downloads. Each step is safe to
interrupt:

1. ask the hub for the repository's files with their sizes and checksums (the LFS SHA-256,
   or the git blob id of small files);
2. download each file the immich layout needs to `<file>.part`, continuing whatever an earlier
   attempt left there (HTTP Range);
3. check the checksum, then rename the file into place; a mismatch deletes it and fails;
4. read the two graphs (not their weights) for the external-data files they name, as graphs
   over 2 GB keep their weights beside `model.onnx`, and fetch those the same way;
5. write `.viewfinder-complete.json` (every file's SHA-256) last.

Pulling a model that is already complete re-hashes it against that marker; damaged files are
cleared and fetched once more. `huggingface_hub` supplies the file list, URLs, token and
endpoint; the bytes move over `httpx` so that resuming works the same with every version.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..errors import ConfigurationError
from .catalog import (
    MARKER,
    PART_SUFFIX,
    FileDigest,
    Manifest,
    PullTarget,
    file_sha256,
    pull_target,
)
from .hub_files import GRAPHS, RemoteFile, remote_files
from .onnx_graph import external_data_files

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes on disk so far, bytes in all)

TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class PullResult:
    """What a pull did."""

    name: str
    path: Path
    repo_id: str
    revision: str
    size: int  # bytes of the model on disk
    downloaded: int  # bytes fetched by this pull
    already_present: bool = False
    repaired: list[str] = field(default_factory=list)  # damaged files fetched once more


def pull_model(
    name: str,
    data_dir: Path,
    *,
    endpoint: str | None = None,
    revision: str | None = None,
    token: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    retries: int = 3,
    retry_delay_s: float = 1.0,
    timeout_s: float = 30.0,
) -> PullResult:
    """Download model `name` (a catalogue name or `owner/repo`) into `<data_dir>/models`.

    `endpoint` None means huggingface_hub's (HF_ENDPOINT, else huggingface.co); `token` None
    means the one `hf auth login` stored or HF_TOKEN. Transient network errors are retried
    `retries` times, each continuing where the last stopped. Raises ConfigurationError.
    """
    # huggingface_hub reads HF_ENDPOINT once, when it is imported; read it at each pull so a
    # mirror named after that import (a notebook, a test) is still the one used
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    target = pull_target(name, data_dir)
    known: dict[str, str] = {}  # local files already hashed: path -> sha256
    repaired: list[str] = []
    manifest = Manifest.load(target.path)
    if force and target.path.is_dir():
        _clear(target.path)
    elif manifest is not None:
        repaired = _check_local(target.path, manifest, known)
        complete = not repaired and not _unrecorded_weights(target.path, manifest)
        if complete and manifest.repo_id == target.repo_id and revision in (None, "main"):
            logger.info("%s is already complete in %s", target.name, target.path)
            return PullResult(
                target.name,
                target.path,
                manifest.repo_id,
                manifest.revision,
                manifest.size,
                0,
                already_present=True,
            )

    listing = remote_files(target.repo_id, revision, endpoint=endpoint, token=token)
    target.path.mkdir(parents=True, exist_ok=True)  # only now: a typo leaves no directory
    (target.path / MARKER).unlink(missing_ok=True)
    layout = listing.layout()
    meter = _Meter(sum(f.size for f in layout), progress)
    digests: dict[str, FileDigest] = {}
    with httpx.Client(
        headers=_hub_headers(token), follow_redirects=True, timeout=httpx.Timeout(timeout_s)
    ) as client:
        fetcher = _Fetcher(client, target, listing.commit, endpoint, meter, retries, retry_delay_s)
        downloaded = _bring(layout, fetcher, known, digests)
        # the graphs are on disk now: fetch the weight files they name
        weights = [f for f in listing.weights(target.path) if f.path not in digests]
        meter.grow(sum(f.size for f in weights))
        downloaded += _bring(weights, fetcher, known, digests)
    meter.close()

    result = Manifest(target.name, target.repo_id, listing.commit, dict(sorted(digests.items())))
    result.save(target.path)
    logger.info(
        "pulled %s (%s, %d bytes) into %s", target.name, listing.commit, result.size, target.path
    )
    return PullResult(
        target.name,
        target.path,
        target.repo_id,
        listing.commit,
        result.size,
        downloaded,
        repaired=repaired,
    )


def _bring(
    files: list[RemoteFile],
    fetcher: _Fetcher,
    known: dict[str, str],
    digests: dict[str, FileDigest],
) -> int:
    """Keep the files already on disk with the right checksum, download the others; bytes
    fetched. Records every file's digest in `digests`."""
    model_dir, meter = fetcher.target.path, fetcher.meter
    todo: list[RemoteFile] = []
    needed = 0
    for remote in files:
        dest = model_dir / remote.path
        if dest.is_file():
            ok, sha256 = _check_cached(dest, remote, known)
            if ok:
                digests[remote.path] = FileDigest(remote.size, sha256)
                meter.add(remote.size)
                continue
            logger.info("%s differs from the hub's copy; fetching it again", dest)
            dest.unlink()
        part = _part(dest)
        kept = min(part.stat().st_size, remote.size) if part.is_file() else 0
        if kept:
            meter.add(kept)
        needed += remote.size - kept
        todo.append(remote)
    _check_space(model_dir, needed)
    downloaded = 0
    for remote in todo:
        digests[remote.path], fetched = fetcher.fetch(remote)
        downloaded += fetched
    return downloaded


def _unrecorded_weights(model_dir: Path, manifest: Manifest) -> list[str]:
    """Weight files the graphs name that the marker does not list (a pull by an older
    Viewfinder kept only the graphs)."""
    named = []
    for graph in GRAPHS:
        if (model_dir / graph).is_file():
            folder = graph.rsplit("/", 1)[0]
            named += [f"{folder}/{name}" for name in external_data_files(model_dir / graph)]
    return [name for name in named if name not in manifest.files]


class _Meter:
    """Bytes on disk out of the total, reported to a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self._progress = total, 0, progress

    def grow(self, n: int) -> None:
        """Count `n` more bytes in the total (files found to be needed on the way)."""
        self.total += n

    def add(self, n: int) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, self.total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress(self.done, self.total)


class _Transient(Exception):
    """A failure worth retrying: the connection dropped, timed out, or the hub was busy."""

    def __init__(self, message: str, fetched: int = 0) -> None:
        super().__init__(message)
        self.fetched = fetched  # bytes that arrived before it


@dataclass
class _Fetcher:
    """Downloads files of one repository at one commit, resuming and verifying each."""

    client: httpx.Client
    target: PullTarget
    commit: str
    endpoint: str | None
    meter: _Meter
    retries: int
    retry_delay_s: float

    def fetch(self, remote: RemoteFile) -> tuple[FileDigest, int]:
        """Download, verify and move `remote` into place; (its digest, bytes fetched)."""
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(
            self.target.repo_id, remote.path, revision=self.commit, endpoint=self.endpoint
        )
        dest = self.target.path / remote.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = _part(dest)
        resumed = part.is_file() and part.stat().st_size > 0
        fetched = self._transfer(url, part, remote)
        ok, sha256 = remote.check(part)
        if not ok and resumed:
            # The bytes kept from an earlier attempt may be the bad ones: start once from zero.
            logger.warning("%s failed its checksum after resuming; fetching it whole", remote.path)
            self.meter.add(-part.stat().st_size)
            part.unlink()
            fetched += self._transfer(url, part, remote)
            ok, sha256 = remote.check(part)
        if not ok:
            part.unlink()
            raise ConfigurationError(
                f"{remote.path} of {self.target.repo_id} failed its checksum (expected "
                f"{remote.expected}, got sha256 {sha256}) and was deleted; run `viewfinder "
                f"models pull {self.target.name}` again, and if it fails again the hub or a "
                "proxy on the way serves a damaged file"
            )
        os.replace(part, dest)
        return FileDigest(remote.size, sha256), fetched

    def _transfer(self, url: str, part: Path, remote: RemoteFile) -> int:
        """Bring `part` up to the remote size, retrying transient failures; bytes fetched."""
        fetched = 0
        for attempt in range(self.retries + 1):
            try:
                return fetched + self._get(url, part, remote, attempt)
            except _Transient as exc:
                fetched += exc.fetched
                if attempt == self.retries:
                    raise ConfigurationError(
                        f"downloading {remote.path} of {self.target.repo_id} failed ({exc}); "
                        f"run `viewfinder models pull {self.target.name}` again to continue "
                        f"from the {part.stat().st_size if part.exists() else 0} bytes kept"
                    ) from exc
                logger.warning("%s: %s; continuing where it stopped", remote.path, exc)
                time.sleep(self.retry_delay_s * (attempt + 1))
        raise AssertionError("unreachable")

    def _get(self, url: str, part: Path, remote: RemoteFile, attempt: int) -> int:
        have = part.stat().st_size if part.is_file() else 0
        if have > remote.size:  # not the file we want: start over
            self.meter.add(-remote.size)
            part.unlink()
            have = 0
        if have == remote.size:
            part.touch()  # an empty file still needs to exist
            return 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        fetched = 0
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status in TRANSIENT_STATUS:
                    raise _Transient(f"the hub answered {status}")
                if status == 416 or (status == 206 and not _starts_at(response, have)):
                    self.meter.add(-have)
                    part.unlink(missing_ok=True)
                    raise _Transient("the hub could not continue the partial file")
                if status not in (200, 206):
                    raise ConfigurationError(
                        f"the hub answered {status} for {url}"
                        + ("; the model may need HF_TOKEN" if status in (401, 403) else "")
                    )
                mode = "ab" if status == 206 else "wb"
                if status == 200 and have:  # the server ignored Range: the whole file comes
                    self.meter.add(-have)
                with part.open(mode) as f:
                    for chunk in response.iter_bytes():  # as they arrive: keep what came
                        f.write(chunk)
                        fetched += len(chunk)
                        self.meter.add(len(chunk))
        except httpx.TransportError as exc:  # dropped connection, timeout, refused
            raise _Transient(f"{type(exc).__name__}: {exc}", fetched) from exc
        size = part.stat().st_size
        if size < remote.size:
            raise _Transient(f"the connection ended after {size} of {remote.size} bytes", fetched)
        return fetched


def _starts_at(response: httpx.Response, offset: int) -> bool:
    """Whether a 206 answer's Content-Range begins at `offset` ("bytes 100-199/200")."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False


def _hub_headers(token: str | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    headers = dict(build_hf_headers(token=token, library_name="viewfinder"))
    headers["Accept-Encoding"] = "identity"  # byte ranges and sizes must be of the file itself
    return headers


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + PART_SUFFIX)


def _check_local(model_dir: Path, manifest: Manifest, known: dict[str, str]) -> list[str]:
    """Hash the files of a complete model; delete and return those that do not match."""
    bad = []
    for name, digest in manifest.files.items():
        path = model_dir / name
        if path.is_file() and path.stat().st_size == digest.size:
            known[name] = file_sha256(path)
            if known[name] == digest.sha256:
                continue
        bad.append(name)
        known.pop(name, None)
        path.unlink(missing_ok=True)
    if bad:
        (model_dir / MARKER).unlink(missing_ok=True)  # it is no longer complete
        logger.warning("%s: %s damaged; fetching again", model_dir, ", ".join(bad))
    return bad


def _check_cached(dest: Path, remote: RemoteFile, known: dict[str, str]) -> tuple[bool, str]:
    sha256 = known.get(remote.path)
    if sha256 is not None and remote.sha256:
        return sha256 == remote.sha256.lower(), sha256
    if dest.stat().st_size != remote.size:
        return False, ""
    return remote.check(dest)


def _clear(model_dir: Path) -> None:
    """Remove what an earlier pull left, for `--force`."""
    for sub in ("visual", "textual"):
        shutil.rmtree(model_dir / sub, ignore_errors=True)
    for path in model_dir.iterdir():
        if path.is_file():
            path.unlink()


def _check_space(model_dir: Path, needed: int) -> None:
    free = shutil.disk_usage(model_dir).free
    if needed > free:
        raise ConfigurationError(
            f"pulling needs {_mb(needed)} more in {model_dir} but only {_mb(free)} is free"
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"
