"""What a hub repository holds, and which of its files a model directory needs.

The immich layout (`wanted`) plus the external-data files its two graphs name: graphs over
2 GB keep their weights beside `model.onnx`, one file per tensor as torch.onnx exports them
(immich's XLM-Roberta-Large text towers) or one `model.onnx_data`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from .model_dir import REQUIRED_FILES
from .onnx_graph import external_data_files

CHUNK = 1 << 20
GRAPHS = tuple(name for name in REQUIRED_FILES if name.endswith(".onnx"))


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


@dataclass(frozen=True)
class RepoListing:
    """A hub repository at one commit: its files with sizes and checksums."""

    repo_id: str
    commit: str
    where: str  # the hub's address, for messages
    files: dict[str, RemoteFile]
    unverifiable: frozenset[str] = frozenset()  # files the hub gave no size or checksum for

    def layout(self) -> list[RemoteFile]:
        """The files of the immich layout (`wanted`)."""
        paths = sorted(set(self.files) | self.unverifiable)
        return [self._verifiable(path) for path in paths if wanted(path)]

    def weights(self, model_dir: Path) -> list[RemoteFile]:
        """The external-data files the graphs in `model_dir` name, as repository files."""
        found: dict[str, RemoteFile] = {}
        for graph in GRAPHS:
            folder = graph.rsplit("/", 1)[0]
            for name in external_data_files(model_dir / graph):
                path = f"{folder}/{name}"
                if path not in self.files and path not in self.unverifiable:
                    raise ConfigurationError(
                        f"{graph} of {self.repo_id} keeps weights in {path}, which the "
                        f"repository on {self.where} lacks; the repository is incomplete"
                    )
                found[path] = self._verifiable(path)
        return list(found.values())

    def _verifiable(self, path: str) -> RemoteFile:
        if path in self.unverifiable:
            raise ConfigurationError(
                f"the hub at {self.where} gave no size or checksum for {self.repo_id}/{path}, "
                "so it cannot be verified"
            )
        return self.files[path]


def remote_files(
    repo_id: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | None = None,
) -> RepoListing:
    """Every file of a hub repository at `revision`, with sizes and checksums."""
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

    files: dict[str, RemoteFile] = {}
    unverifiable: set[str] = set()
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        sha256 = lfs.sha256 if lfs is not None else None
        size = lfs.size if lfs is not None else sibling.size
        if size is None or not (sha256 or sibling.blob_id):
            unverifiable.add(sibling.rfilename)
        else:
            files[sibling.rfilename] = RemoteFile(
                sibling.rfilename, int(size), sha256, sibling.blob_id
            )
    missing = [name for name in REQUIRED_FILES if name not in files and name not in unverifiable]
    if missing:
        raise ConfigurationError(
            f"{repo_id} is not a model in the immich ONNX layout: it lacks {', '.join(missing)}"
        )
    commit = str(info.sha or revision or "main")
    return RepoListing(repo_id, commit, where, files, frozenset(unverifiable))
