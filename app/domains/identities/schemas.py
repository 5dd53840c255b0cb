"""Request and response bodies of the identities API (apart from the ORM rows)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.core.store.rows.identities import Face
from app.domains.shared import (
    BOX_EXAMPLE,
    IDENTITY_EXAMPLE,
    IMAGE_EXAMPLE,
    Box,
    CollectionField,
    ExternalId,
    IdentityOut,
    Metadata,
    Name,
    as_utc,
)

FACE_OUT_EXAMPLE = {
    "id": 1,
    "identity_id": IDENTITY_EXAMPLE["id"],
    "box": BOX_EXAMPLE,
    "detection_score": 0.99998,
    "model": "dlib-resnet-v1",
    "model_version": "1+55533b28a958+l2.9966306c",
    "created_at": "2026-12-01T03:28:59.780200Z",
}
LARGEST_FACE = "Use the largest face if there are several (else several faces are a 422)."


class FaceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [FACE_OUT_EXAMPLE]})

    id: int = Field(description="Face id; also its id in the search index.")
    identity_id: uuid.UUID
    box: Box | None = Field(description="x1, y1, x2, y2 in the enrolled photo's pixels.")
    detection_score: float | None = Field(description="Detector confidence, 0 to 1.")
    model: str
    model_version: str
    created_at: datetime

    @classmethod
    def of(cls, row: Face) -> FaceOut:
        box = tuple(row.box) if row.box else None
        return cls(
            id=row.id,
            identity_id=row.identity_id,
            box=box,
            detection_score=row.detection_score,
            model=row.model_name,
            model_version=row.model_version,
            created_at=as_utc(row.created_at),
        )


class EnrollOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"identity": IDENTITY_EXAMPLE, "face": FACE_OUT_EXAMPLE}]}
    )

    identity: IdentityOut
    face: FaceOut


class IdentityDetail(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"identity": IDENTITY_EXAMPLE, "faces": [FACE_OUT_EXAMPLE]}]
        }
    )

    identity: IdentityOut
    faces: list[FaceOut]


class IdentityPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [IDENTITY_EXAMPLE], "next_cursor": "AaIvpgd9fSGQqfciKmK3Gw"}]
        }
    )

    items: list[IdentityOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class EnrollForm(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "image": IMAGE_EXAMPLE,
                    "name": "Aaron Sorkin",
                    "external_id": "emp-1042",
                    "metadata": {"department": "writing"},
                }
            ]
        },
    )

    image: bytes = Field(description="Photo with exactly one face (or use largest_face).")
    name: Name
    external_id: ExternalId | None = Field(
        None, description="Your own id, unique within the collection."
    )
    metadata: Metadata = Field(None, description="Free-form JSON object.")
    largest_face: bool = Field(False, description=LARGEST_FACE)
    collection: CollectionField = DEFAULT_COLLECTION


class AddFaceForm(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"image": IMAGE_EXAMPLE, "largest_face": True}]},
    )

    image: bytes = Field(description="Another photo of the same person.")
    largest_face: bool = Field(False, description=LARGEST_FACE)
    collection: CollectionField = DEFAULT_COLLECTION


class IdentityPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "Aaron Sorkin", "metadata": {"department": "production"}}]
        },
    )

    name: Name | None = None
    metadata: Metadata = Field(None, description="Replaces the stored metadata.")
