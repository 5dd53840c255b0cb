"""Request and response bodies of the identities API (apart from the ORM rows)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.core.store.rows.identities import Face
from app.domains.shared import (
    Box,
    CollectionField,
    ExternalId,
    IdentityOut,
    Metadata,
    Name,
    as_utc,
)


class FaceOut(BaseModel):
    id: int = Field(description="Face id; also its id in the search index.")
    identity_id: uuid.UUID
    box: Box | None = Field(description="x1, y1, x2, y2 in the enrolled photo's pixels.")
    detection_score: float | None
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
    identity: IdentityOut
    face: FaceOut


class IdentityDetail(BaseModel):
    identity: IdentityOut
    faces: list[FaceOut]


class IdentityPage(BaseModel):
    items: list[IdentityOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class EnrollForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: bytes = Field(description="Photo with exactly one face (or use largest_face).")
    name: Name
    external_id: ExternalId | None = Field(
        None, description="Your own id, unique within the collection."
    )
    metadata: Metadata = Field(None, description="Free-form JSON object.")
    largest_face: bool = Field(False, description="Use the largest face if there are several.")
    collection: CollectionField = DEFAULT_COLLECTION


class AddFaceForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: bytes = Field(description="Another photo of the same person.")
    largest_face: bool = Field(False, description="Use the largest face if there are several.")
    collection: CollectionField = DEFAULT_COLLECTION


class IdentityPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    metadata: Metadata = Field(None, description="Replaces the stored metadata.")
