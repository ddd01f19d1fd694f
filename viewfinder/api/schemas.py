"""Wire schemas of the HTTP contract (shared/API.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class IndexingConfig(BaseModel):
    """Per-image indexing choice."""

    model_config = ConfigDict(extra="allow")
    index: bool = True


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
    query: str = Field(min_length=1, max_length=2000)
    max_results: int = Field(10, ge=1, le=200)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    search_mode: Literal["vision", "joined"] = "vision"
    # Bounded: an infinite weight (or two that sum past the largest float) made every
    # blended score NaN, served as "score": null.
    image_weight: float | None = Field(None, ge=0.0, le=1e6, allow_inf_nan=False)
    text_weight: float | None = Field(None, ge=0.0, le=1e6, allow_inf_nan=False)


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
