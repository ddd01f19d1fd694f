"""Wire schemas of the HTTP contract (shared/API.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class IndexingConfig(BaseModel):
    """Per-image indexing choice."""

    model_config = ConfigDict(extra="allow")
    index: bool = True
    dedupe: bool = Field(
        default=False,
        description="Extension: when the tenant already has these exact bytes, store nothing "
        "and return that image (its result carries `duplicate_of`).",
    )


class UploadRequestItem(BaseModel):
    """`requests[i]` of the upload `metadata` JSON string."""

    model_config = ConfigDict(extra="allow")
    indexing_config: IndexingConfig = Field(default_factory=IndexingConfig)
    metadata: dict[str, Any] = Field(default_factory=dict)


class UploadMetadata(BaseModel):
    """The upload `metadata` form field, parsed."""

    model_config = ConfigDict(extra="allow")
    requests: list[UploadRequestItem] = Field(default_factory=list)
    image_urls: list[str] = Field(default_factory=list)


class UploadResult(BaseModel):
    image_id: str
    image_url: str
    indexing_status: int
    upload_timestamp: float
    status: str = Field(description="Extension: name of indexing_status.")
    error: str | None = Field(None, description="Extension: why this item failed.")
    duplicate_of: str | None = Field(
        None,
        description="Extension: an image of the same tenant with identical bytes (with "
        "`dedupe`, the image returned instead of a new one).",
    )


class UploadResponse(BaseModel):
    results: list[UploadResult]


class Tag(BaseModel):
    """Extension: a concept the model sees in the image."""

    name: str
    confidence: float = Field(description="In [0, 1]: how sure the model is.")


class Gps(BaseModel):
    lat: float = Field(description="Latitude, decimal degrees (south negative).")
    lon: float = Field(description="Longitude, decimal degrees (west negative).")


class Exif(BaseModel):
    """Extension: what the file's EXIF block says; absent keys were not in the file."""

    taken_at: float | None = Field(
        None,
        description="Capture time, Unix seconds (DateTimeOriginal, else DateTime; placed by "
        "the file's offset tag when it has one, else read as UTC).",
    )
    make: str | None = Field(None, description="Camera maker.")
    model: str | None = Field(None, description="Camera model.")
    orientation: int | None = Field(None, description="EXIF orientation, 1-8.")
    gps: Gps | None = None


class ImageObject(BaseModel):
    image_id: str
    image_url: str
    indexing_status: int
    upload_timestamp: float
    metadata: dict[str, Any]
    status: str
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    size_bytes: int = 0
    error: str | None = None
    sha256: str | None = Field(None, description="Extension: SHA-256 of the original bytes.")
    file_name: str | None = Field(
        None, description="Extension: the upload's file name (a URL's last path segment)."
    )
    tags: list[Tag] | None = Field(
        None, description="Extension: what the model sees, best first (set once indexed)."
    )
    exif: Exif | None = Field(None, description="Extension: capture time, camera, GPS.")


class ImageList(BaseModel):
    results: list[ImageObject]


class DeleteResponse(BaseModel):
    status: str
    message: str


class SearchBody(BaseModel):
    """POST /v1/images/search."""

    model_config = ConfigDict(extra="ignore")
    query: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Natural language; required unless `image_id` is given.",
    )
    image_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Extension: search by example with one of your images (alone, or with "
        "`query`: then `text_weight`/`image_weight` weigh the text and the image).",
    )
    include_self: bool = Field(
        False, description="Extension: keep the `image_id` image among its own results."
    )
    max_results: int = Field(10, ge=1, le=200)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    search_mode: Literal["vision", "joined"] = "vision"
    # Bounded: an infinite weight (or two that sum past the largest float) made every
    # blended score NaN, served as "score": null.
    image_weight: float | None = Field(None, ge=0.0, le=1e6, allow_inf_nan=False)
    text_weight: float | None = Field(None, ge=0.0, le=1e6, allow_inf_nan=False)
    filter: dict[str, Any] | None = Field(
        None,
        description="Extension: only images that pass, e.g. "
        '`{"$and": [{"metadata.album": "trip"}, {"upload_timestamp": {"$gte": 1760000000}}]}`; '
        "the exact top `max_results` among them. Fields, operators and limits: "
        "README, section Filters.",
    )


class SearchResult(BaseModel):
    image_id: str
    image_url: str
    image_metadata: dict[str, Any]
    upload_timestamp: float
    score: float
    file_name: str | None = Field(None, description="Extension: the upload's file name.")
    tags: list[Tag] | None = Field(None, description="Extension: what the model sees.")
    exif: Exif | None = Field(None, description="Extension: capture time, camera, GPS.")


class SearchResponse(BaseModel):
    results: list[SearchResult]


class DuplicateImage(ImageObject):
    """Extension: a near-duplicate of the image asked about."""

    similarity: float = Field(description="Cosine between the two images' stored vectors.")
    hamming: int | None = Field(
        None, description="Differing bits of the two 64-bit perceptual hashes (dHash)."
    )


class DuplicateList(BaseModel):
    results: list[DuplicateImage]


class DuplicateGroup(BaseModel):
    """Extension: images that are copies of one another (re-encoded, resized, cropped)."""

    similarity: float = Field(description="The lowest cosine among the links of the group.")
    images: list[ImageObject] = Field(description="Oldest first.")


class DuplicateGroups(BaseModel):
    results: list[DuplicateGroup] = Field(description="Largest groups first.")


class SwitchStatus(BaseModel):
    """A model switch in progress: the caller's indexed images re-embedded so far."""

    from_model: str = Field(description="The model the vectors move away from.")
    to_model: str = Field(
        description="The model switched to; it answers searches once `done` reaches `total`."
    )
    done: int
    total: int


class StatusResponse(BaseModel):
    """Extension: indexing progress of the caller's tenant."""

    model_id: str = Field(
        description="The model answering searches now: during a switch the old one (unless "
        "it can't be loaded), the target being in `switch`."
    )
    stored: int
    queued: int
    indexed: int
    failed: int
    switch: SwitchStatus | None = None


class ErrorDetail(BaseModel):
    type: str
    message: str
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
