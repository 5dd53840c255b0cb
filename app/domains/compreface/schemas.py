"""Bodies of the CompreFace-compatible API, field for field as CompreFace's REST API
description (docs/Rest-API-description.md in exadel-inc/CompreFace) names them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from app.domains.shared import Name

# ---------------------------------------------------------------- requests


class SubjectIn(BaseModel):
    # CompreFace ignores fields it does not know (its Python SDK sends `api_endpoint` too)
    model_config = ConfigDict(extra="ignore")

    subject: Name


class ImageForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file: bytes


class TwoImagesForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source_image: bytes
    target_image: bytes


@dataclass(frozen=True)
class FaceOptions:
    """The query options of recognize, verify and detect."""

    limit: int = 0  # faces per image, largest first; 0: all
    det_prob_threshold: float | None = None  # drop faces the detector is less sure of
    prediction_count: int = 1  # subjects per face (recognize)
    landmarks: bool = False  # face_plugins has `landmarks`; other plugins are ignored
    status: bool = False  # add execution_time and plugins_versions


# ---------------------------------------------------------------- subjects and faces


class SubjectOut(BaseModel):
    subject: str


class SubjectsOut(BaseModel):
    subjects: list[str]


class UpdatedOut(BaseModel):
    updated: bool


class DeletedOut(BaseModel):
    deleted: int


class ImageOut(BaseModel):
    image_id: str = Field(description="A UUID; our face id n is the UUID whose integer is n.")
    subject: str


class FacesPage(BaseModel):
    faces: list[ImageOut]
    page_number: int
    page_size: int
    total_pages: int
    total_elements: int


# ---------------------------------------------------------------- faces found in images


class BoxOut(BaseModel):
    probability: float
    x_max: int
    y_max: int
    x_min: int
    y_min: int


class SubjectSimilarity(BaseModel):
    subject: str
    similarity: float


class FaceOut(BaseModel):
    """A face found in an image; which optional parts are present depends on the route
    and the options (answered without the null ones)."""

    box: BoxOut
    landmarks: list[list[int]] | None = None
    subjects: list[SubjectSimilarity] | None = None  # recognize
    similarity: float | None = None  # verify
    execution_time: dict[str, float] | None = None


class FacesOut(BaseModel):
    result: list[FaceOut]
    plugins_versions: dict[str, str] | None = None


class VerificationOut(BaseModel):
    source_image_face: FaceOut
    face_matches: list[FaceOut]
    plugins_versions: dict[str, str] | None = None


class VerificationsOut(BaseModel):
    result: list[VerificationOut]


class ErrorOut(BaseModel):
    message: str
    code: int
