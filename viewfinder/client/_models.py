"""What the client's calls return: frozen dataclasses built from the API's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

LABELS = {0: "stored", 1: "queued", 2: "indexed", 3: "failed"}


@dataclass(frozen=True)
class Tag:
    """A concept the model sees in an image (extension `tags`), `confidence` in [0, 1]."""

    name: str
    confidence: float


@dataclass(frozen=True)
class Gps:
    """Where a photo was taken, decimal degrees (south and west negative)."""

    lat: float
    lon: float


@dataclass(frozen=True)
class Exif:
    """What an image's EXIF block says (extension `exif`); None where the file is silent.

    `taken_at` is Unix seconds (the file's offset applied, else its local time read as UTC).
    """

    taken_at: float | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    gps: Gps | None = None

    def __post_init__(self) -> None:
        if isinstance(self.gps, Mapping):  # as the JSON has it
            object.__setattr__(self, "gps", build(Gps, self.gps))


def tags_of(data: Any) -> list[Tag]:
    """`Tag`s from the JSON list (or a list of `Tag`s)."""
    if not data:
        return []
    return [t if isinstance(t, Tag) else build(Tag, t) for t in data]


def exif_of(data: Any) -> Exif | None:
    """An `Exif` from the JSON object (or an `Exif`, or None)."""
    if data is None or isinstance(data, Exif):
        return data
    return build(Exif, data)


@dataclass(frozen=True)
class Image:
    """An image object (`GET /v1/images/{image_id}`)."""

    image_id: str
    image_url: str
    indexing_status: int
    upload_timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    size_bytes: int = 0
    error: str | None = None
    sha256: str | None = None
    file_name: str | None = None  # the name it was uploaded with (extension)
    tags: list[Tag] = field(default_factory=list)  # what the model sees, best first (extension)
    exif: Exif | None = None  # capture time, camera, GPS (extension)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tags_of(self.tags))
        object.__setattr__(self, "exif", exif_of(self.exif))

    @property
    def indexed(self) -> bool:
        """Searchable now."""
        return self.indexing_status == 2


@dataclass(frozen=True)
class UploadResult:
    """One item of an upload's `results`, in the order the images were given."""

    image_id: str
    image_url: str
    indexing_status: int
    upload_timestamp: float
    status: str = ""
    error: str | None = None
    duplicate_of: str | None = None  # an image of the tenant with these exact bytes (extension)

    @property
    def failed(self) -> bool:
        """Refused (undecodable, unreachable URL...); `error` says why."""
        return self.indexing_status == 3


@dataclass(frozen=True)
class SearchResult:
    """One search hit, best first; `score` is a calibrated confidence in [0, 1]."""

    image_id: str
    image_url: str
    score: float
    upload_timestamp: float
    image_metadata: dict[str, Any] = field(default_factory=dict)
    file_name: str | None = None
    tags: list[Tag] = field(default_factory=list)
    exif: Exif | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tags_of(self.tags))
        object.__setattr__(self, "exif", exif_of(self.exif))


@dataclass(frozen=True)
class Duplicate(Image):
    """A near-duplicate of an image (extension): `similarity` is the cosine of the two stored
    vectors, `hamming` the differing bits of their perceptual hashes."""

    similarity: float = 0.0
    hamming: int | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies of one another, oldest first (extension)."""

    similarity: float  # the lowest cosine among the group's links
    images: list[Image] = field(default_factory=list)

    def __post_init__(self) -> None:
        images = [i if isinstance(i, Image) else build(Image, i) for i in self.images]
        object.__setattr__(self, "images", images)


@dataclass(frozen=True)
class DeleteResult:
    status: str
    message: str


@dataclass(frozen=True)
class Switch:
    """A model switch in progress: `done` of the tenant's `total` indexed images re-embedded
    with `to_model`."""

    from_model: str
    to_model: str
    done: int
    total: int


@dataclass(frozen=True)
class Status:
    """The model answering searches and the tenant's images per indexing status, with a
    model switch while one runs (`GET /v1/status`)."""

    model_id: str
    stored: int
    queued: int
    indexed: int
    failed: int
    switch: Switch | None = None

    def __post_init__(self) -> None:
        if isinstance(self.switch, Mapping):  # as the JSON has it
            object.__setattr__(self, "switch", build(Switch, self.switch))


_T = TypeVar("_T")


def build(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """An instance of `cls` from a JSON object, ignoring fields it does not know."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in data.items() if k in known}
    if "status" in known and "indexing_status" in values and not values.get("status"):
        values["status"] = LABELS.get(int(values["indexing_status"]), "unknown")
    return cls(**values)
