"""The models Viewfinder knows by name, and where pulled models live on disk.

    <data_dir>/models/
      builtin/                       the built-in model's derived caches
      ViT-B-32__openai/              one pulled model, in the immich ONNX layout
        config.json  visual/...  textual/...
        .viewfinder-complete.json    written last, once every file matched the hub's checksum

A model directory without the completion marker is a partial pull; `resolve_model` refuses it
and names the command that finishes it. Nothing here touches the network (see `hub.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ConfigurationError
from .model_dir import REQUIRED_FILES

logger = logging.getLogger(__name__)

MARKER = ".viewfinder-complete.json"
PART_SUFFIX = ".part"
IMMICH = "immich-app"
# owner/name as the hub spells repository ids
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")

Status = Literal["bundled", "present", "incomplete", "absent"]


@dataclass(frozen=True)
class KnownModel:
    """One model `viewfinder models list` shows; `repo_id` None means it ships with the package."""

    name: str
    repo_id: str | None
    dim: int
    size_mb: int  # approximate download (fp32 ONNX, both towers)
    languages: str
    notes: str = ""


# Recall: mean of R@1/5/10 for text-to-image retrieval on Crossmodal-3600 (English), as
# published in immich's model table; higher is better, and the ranking is what matters.
CATALOG: tuple[KnownModel, ...] = (
    KnownModel(
        "builtin",
        None,
        384,
        0,
        "English",
        "no download: EfficientNet-Lite2 classes + MiniLM text, fast on CPU, coarse",
    ),
    KnownModel(
        "builtin-multilingual",
        None,
        384,
        0,
        "multilingual (~100 languages)",
        "no download: as builtin, with multilingual-e5-small text",
    ),
    KnownModel(
        "ViT-B-32__openai",
        f"{IMMICH}/ViT-B-32__openai",
        512,
        605,
        "English",
        "OpenAI CLIP, immich's default; fastest CLIP (recall 59.4)",
    ),
    KnownModel(
        "ViT-B-32__laion2b-s34b-b79k",
        f"{IMMICH}/ViT-B-32__laion2b-s34b-b79k",
        512,
        605,
        "English",
        "same speed as ViT-B-32__openai, better (recall 68.8)",
    ),
    KnownModel(
        "ViT-B-16-SigLIP__webli",
        f"{IMMICH}/ViT-B-16-SigLIP__webli",
        768,
        815,
        "English",
        "SigLIP: strong for its cost (recall 71.6)",
    ),
    KnownModel(
        "ViT-B-32-SigLIP2-256__webli",
        f"{IMMICH}/ViT-B-32-SigLIP2-256__webli",
        768,
        1520,
        "multilingual (weaker outside English)",
        "SigLIP 2, fast image tower (recall 73.2)",
    ),
    KnownModel(
        "ViT-B-16-SigLIP2__webli",
        f"{IMMICH}/ViT-B-16-SigLIP2__webli",
        768,
        1510,
        "multilingual (weaker outside English)",
        "SigLIP 2: best English recall per cost (75.2)",
    ),
    KnownModel(
        "ViT-L-14-quickgelu__dfn2b",
        f"{IMMICH}/ViT-L-14-quickgelu__dfn2b",
        768,
        1710,
        "English",
        "large image tower, about 9x slower than B/32 (recall 72.8)",
    ),
    KnownModel(
        "nllb-clip-base-siglip__v1",
        f"{IMMICH}/nllb-clip-base-siglip__v1",
        768,
        2030,
        "multilingual (~200 languages)",
        "NLLB text encoder: queries in almost any language",
    ),
    KnownModel(
        "XLM-Roberta-Base-ViT-B-32__laion5b_s13b_b90k",
        f"{IMMICH}/XLM-Roberta-Base-ViT-B-32__laion5b_s13b_b90k",
        512,
        1470,
        "multilingual (~100 languages)",
        "XLM-RoBERTa text, B/32 image tower: fast multilingual",
    ),
    # M-CLIP: a multilingual text tower distilled onto an OpenAI/LAION CLIP image tower. The
    # text graphs take input_ids + attention_mask and, being over 2 GB, keep their weights
    # in one file per tensor beside textual/model.onnx (`models pull` fetches them all).
    KnownModel(
        "XLM-Roberta-Large-Vit-B-32",
        f"{IMMICH}/XLM-Roberta-Large-Vit-B-32",
        512,
        2600,
        "multilingual (~100 languages)",
        "M-CLIP: XLM-RoBERTa-Large text, OpenAI B/32 image tower; a large text model",
    ),
    KnownModel(
        "XLM-Roberta-Large-Vit-B-16Plus",
        f"{IMMICH}/XLM-Roberta-Large-Vit-B-16Plus",
        640,
        2900,
        "multilingual (~100 languages)",
        "M-CLIP: XLM-RoBERTa-Large text, LAION B/16+ image tower",
    ),
    KnownModel(
        "XLM-Roberta-Large-Vit-L-14",
        f"{IMMICH}/XLM-Roberta-Large-Vit-L-14",
        768,
        3500,
        "multilingual (~100 languages)",
        "M-CLIP: XLM-RoBERTa-Large text, OpenAI L/14 image tower; slow on CPU",
    ),
    KnownModel(
        "LABSE-Vit-L-14",
        f"{IMMICH}/LABSE-Vit-L-14",
        768,
        3100,
        "multilingual (~100 languages)",
        "M-CLIP: LaBSE text, OpenAI L/14 image tower; slow on CPU",
    ),
)


def known_model(name: str) -> KnownModel | None:
    """The catalogue entry called `name`, if any."""
    return next((model for model in CATALOG if model.name == name), None)


def model_cache_dir(data_dir: Path) -> Path:
    """Where pulled models live: `<data_dir>/models`."""
    return Path(data_dir).expanduser() / "models"


@dataclass(frozen=True)
class PullTarget:
    """A pullable model: where it comes from and the directory it goes to."""

    name: str  # what VIEWFINDER_MODEL and `viewfinder models pull` call it
    repo_id: str
    path: Path


def pull_target(name: str, data_dir: Path) -> PullTarget:
    """Map a catalogue name or a hub repo id (`owner/name`) to its cache directory."""
    name = name.strip()
    known = known_model(name)
    if known is not None and known.repo_id is None:
        raise ConfigurationError(
            f"the {name} model ships with Viewfinder; there is nothing to pull"
        )
    if known is not None and known.repo_id is not None:
        return PullTarget(name, known.repo_id, model_cache_dir(data_dir) / name)
    if REPO_ID.match(name):
        local = name.split("/", 1)[1]
        return PullTarget(name, name, model_cache_dir(data_dir) / local)
    raise ConfigurationError(
        f"unknown model {name!r}: `viewfinder models list` shows the known ones; any other "
        f"repository in the immich ONNX layout can be pulled by its id, e.g. {IMMICH}/{name}"
    )


@dataclass(frozen=True)
class FileDigest:
    """Size and SHA-256 of one file of a model directory."""

    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The completion marker: what was pulled, from where, and every file's digest."""

    name: str
    repo_id: str
    revision: str
    files: dict[str, FileDigest] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(digest.size for digest in self.files.values())

    @classmethod
    def load(cls, model_dir: Path) -> Manifest | None:
        """The marker in `model_dir`, or None when absent or unreadable (a partial pull)."""
        path = Path(model_dir) / MARKER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = {
                str(name): FileDigest(int(d["size"]), str(d["sha256"]))
                for name, d in data["files"].items()
            }
            return cls(str(data["name"]), str(data["repo_id"]), str(data["revision"]), files)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring unreadable %s: %s", path, exc)
            return None

    def save(self, model_dir: Path) -> None:
        """Write the marker atomically, so it never exists half-written."""
        path = Path(model_dir) / MARKER
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", "utf-8")
        os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def damaged_files(model_dir: Path, manifest: Manifest, *, hashes: bool) -> list[str]:
    """Files of `manifest` missing from `model_dir` or of the wrong size (or hash, if asked)."""
    bad = []
    for name, digest in manifest.files.items():
        path = Path(model_dir) / name
        intact = path.is_file() and path.stat().st_size == digest.size
        if not intact or (hashes and file_sha256(path) != digest.sha256):
            bad.append(name)
    return bad


def model_status(model_dir: Path) -> Status:
    """`present` when the marker is there and the files have their recorded sizes."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        return "absent"
    manifest = Manifest.load(model_dir)
    if manifest is None or damaged_files(model_dir, manifest, hashes=False):
        return "incomplete"
    return "present"


def cached_models(data_dir: Path) -> list[tuple[str, Path, Manifest | None]]:
    """Every model directory in the cache: (name it was pulled as, path, marker or None)."""
    root = model_cache_dir(data_dir)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name == "builtin" or path.name.startswith("."):
            continue
        manifest = Manifest.load(path)
        found.append((manifest.name if manifest else path.name, path, manifest))
    return found


def resolve_model(name_or_path: str, data_dir: Path) -> Path:
    """The directory of a pulled model (a catalogue name or repo id) or of a local path.

    Never downloads. Raises ConfigurationError naming `viewfinder models pull NAME` when the
    model is absent, partially pulled or damaged.
    """
    spec = name_or_path.strip()
    path = Path(spec).expanduser()
    if path.is_dir():  # an explicit directory wins, as it always has
        return path
    target = _cached_target(spec, data_dir)
    if target is None:
        raise ConfigurationError(
            f"unknown model {spec!r}: set VIEWFINDER_MODEL to `builtin`, to a name from "
            "`viewfinder models list` (fetched once with `viewfinder models pull NAME`), or to "
            "the path of a CLIP model directory in the immich ONNX layout (config.json, "
            "visual/model.onnx, textual/model.onnx, ...)"
        )
    pull = f"`viewfinder models pull {target.name}`"
    if not target.path.is_dir():
        raise ConfigurationError(
            f"model {target.name} is not downloaded (looked in {target.path}); run {pull} "
            "first (the server never downloads models by itself)"
        )
    manifest = Manifest.load(target.path)
    if manifest is None:
        raise ConfigurationError(
            f"model {target.name} in {target.path} is incomplete (an interrupted pull?); run "
            f"{pull} to finish it"
        )
    damaged = damaged_files(target.path, manifest, hashes=False)
    missing = [name for name in REQUIRED_FILES if name not in manifest.files]
    if damaged or missing:
        raise ConfigurationError(
            f"model {target.name} in {target.path} is damaged ({', '.join(damaged + missing)} "
            f"missing or of the wrong size); run {pull} to repair it"
        )
    return target.path


def _cached_target(spec: str, data_dir: Path) -> PullTarget | None:
    try:
        return pull_target(spec, data_dir)
    except ConfigurationError:
        pass
    # A bare directory name in the cache (e.g. pulled as owner/name, selected as name).
    if spec and "/" not in spec and spec not in (".", "..", "builtin"):
        local = model_cache_dir(data_dir) / spec
        if local.is_dir():
            manifest = Manifest.load(local)
            return PullTarget(manifest.name if manifest else spec, "", local)
    return None
