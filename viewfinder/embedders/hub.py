"""Pull a model from the Hugging Face hub (or the mirror at HF_ENDPOINT) into the model cache.

Only `viewfinder models pull` calls this; the server never downloads. Each step is safe to
interrupt:

1. ask the hub for the repository's files with their sizes and checksums (the LFS SHA-256,
   or the git blob id of small files);
2. download each file the immich layout needs to `<file>.part`, continuing whatever an earlier
   attempt left there (HTTP Range);
3. check the checksum, then rename the file into place; a mismatch deletes it and fails;
4. write `.viewfinder-complete.json` (every file's SHA-256) last.

Pulling a model that is already complete re-hashes it against that marker; damaged files are
cleared and fetched once more. `huggingface_hub` supplies the file list, URLs, token and
endpoint; the bytes move over `httpx` so that resuming works the same with every version.
"""

from __future__ import annotations

import hashlib
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
from .onnx_clip import REQUIRED_FILES

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes on disk so far, bytes in all)

CHUNK = 1 << 20
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub repository, with what the hub says its checksum is."""

    path: str
    size: int
    sha256: str | None = None  # LFS files
    git_oid: str | None = None  # git blob sha1, for files kept in git itself

    def check(self, path: Path) -> tuple[bool, str]:
        """(whether `path` has this file's checksum, its SHA-256)."""
        sha256 = hashlib.sha256()
        git = hashlib.sha1(b"blob %d\0" % path.stat().st_size) if not self.sha256 else None
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                sha256.update(chunk)
                if git is not None:
                    git.update(chunk)
        digest = sha256.hexdigest()
        if self.sha256:
            return digest == self.sha256.lower(), digest
        assert git is not None
        return git.hexdigest() == (self.git_oid or "").lower(), digest

    @property
    def expected(self) -> str:
        return f"sha256 {self.sha256}" if self.sha256 else f"git blob {self.git_oid}"


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


def wanted(path: str) -> bool:
    """Whether a repository file belongs to the immich layout Viewfinder loads.

    Leaves out README, .gitattributes and other runtimes' exports (ArmNN, RKNN) in subfolders.
    """
    parts = path.split("/")
    if len(parts) == 1:
        return path == "config.json"
    if len(parts) != 2 or parts[0] not in ("visual", "textual"):
        return False
    name = parts[1]
    return name.startswith("model.onnx") or name.endswith((".json", ".txt"))


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
        if not repaired and manifest.repo_id == target.repo_id and revision in (None, "main"):
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

    commit, files = remote_files(target.repo_id, revision, endpoint=endpoint, token=token)
    target.path.mkdir(parents=True, exist_ok=True)  # only now: a typo leaves no directory
    (target.path / MARKER).unlink(missing_ok=True)
    meter = _Meter(sum(f.size for f in files), progress)
    digests: dict[str, FileDigest] = {}
    todo: list[RemoteFile] = []
    for remote in files:
        dest = target.path / remote.path
        if dest.is_file():
            ok, sha256 = _check_cached(dest, remote, known)
            if ok:
                digests[remote.path] = FileDigest(remote.size, sha256)
                meter.add(remote.size)
                continue
            logger.info("%s differs from the hub's copy; fetching it again", dest)
            dest.unlink()
        part = _part(dest)
        if part.is_file():
            meter.add(min(part.stat().st_size, remote.size))
        todo.append(remote)
    _check_space(target.path, meter.total - meter.done)

    headers = _hub_headers(token)
    downloaded = 0
    with httpx.Client(
        headers=headers, follow_redirects=True, timeout=httpx.Timeout(timeout_s)
    ) as client:
        fetcher = _Fetcher(client, target, commit, endpoint, meter, retries, retry_delay_s)
        for remote in todo:
            digests[remote.path], fetched = fetcher.fetch(remote)
            downloaded += fetched
    meter.close()

    result = Manifest(target.name, target.repo_id, commit, dict(sorted(digests.items())))
    result.save(target.path)
    logger.info("pulled %s (%s, %d bytes) into %s", target.name, commit, result.size, target.path)
    return PullResult(
        target.name,
        target.path,
        target.repo_id,
        commit,
        result.size,
        downloaded,
        repaired=repaired,
    )


def remote_files(
    repo_id: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | None = None,
) -> tuple[str, list[RemoteFile]]:
    """(commit, the files of the immich layout) of a hub repository, with their checksums."""
    try:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.utils import (
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:
        raise ConfigurationError(
            "pulling models needs huggingface_hub: `pip install huggingface_hub`"
        ) from exc
    where = endpoint or constants.ENDPOINT
    api = HfApi(endpoint=endpoint, token=token, library_name="viewfinder")
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except OfflineModeIsEnabled as exc:
        raise ConfigurationError("HF_HUB_OFFLINE is set; unset it to pull models") from exc
    except GatedRepoError as exc:
        raise ConfigurationError(
            f"{repo_id} is gated: accept its terms on {where}, then `hf auth login` or set HF_TOKEN"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ConfigurationError(
            f"there is no model repository {repo_id} on {where} (a private one needs HF_TOKEN)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ConfigurationError(f"{repo_id} has no revision {revision!r} on {where}") from exc
    except HfHubHTTPError as exc:
        raise ConfigurationError(f"the hub at {where} refused {repo_id}: {exc}") from exc
    except Exception as exc:  # connection errors are requests' or httpx's, by hub version
        raise ConfigurationError(
            f"cannot reach the hub at {where} ({type(exc).__name__}: {exc}); check the network, "
            "or point HF_ENDPOINT (VIEWFINDER_HF_ENDPOINT) at a mirror"
        ) from exc

    files = []
    for sibling in info.siblings or []:
        if not wanted(sibling.rfilename):
            continue
        lfs = sibling.lfs
        sha256 = lfs.sha256 if lfs is not None else None
        size = lfs.size if lfs is not None else sibling.size
        if size is None or not (sha256 or sibling.blob_id):
            raise ConfigurationError(
                f"the hub at {where} gave no size or checksum for {repo_id}/{sibling.rfilename}, "
                "so it cannot be verified"
            )
        files.append(RemoteFile(sibling.rfilename, int(size), sha256, sibling.blob_id))
    have = {f.path for f in files}
    missing = [name for name in REQUIRED_FILES if name not in have]
    if missing:
        raise ConfigurationError(
            f"{repo_id} is not a model in the immich ONNX layout: it lacks {', '.join(missing)}"
        )
    return str(info.sha or revision or "main"), files


class _Meter:
    """Bytes on disk out of the total, reported to a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self._progress = total, 0, progress

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
