"""Request and response bodies of /v1/collections (apart from the ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.core import bounds
from app.core.store.rows.collections import Collection
from app.domains.shared import CollectionName, Metadata, as_utc

Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=1000),
    AfterValidator(bounds.free_text),
]


COLLECTION_EXAMPLE: dict[str, Any] = {
    "name": "front-door",
    "description": "Staff of the front door",
    "metadata": {"site": "HQ"},
    "identities": 42,
    "faces": 57,
    "created_at": "2026-12-01T03:28:59.780200Z",
}


class CollectionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "front-door", "description": "Staff of the front door", "metadata": {}}
            ]
        },
    )

    name: CollectionName = Field(
        description="Letters, digits, `_`, `.`, `-`; 1-100 characters, unique.",
        examples=["front-door"],
    )
    description: Description | None = Field(None, examples=["Staff of the front door"])
    metadata: Metadata = Field(None, description="Free-form JSON object.")


class CollectionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [COLLECTION_EXAMPLE]})

    name: str
    description: str | None
    metadata: dict[str, Any]
    identities: int = Field(description="Identities in the collection.")
    faces: int = Field(description="Enrolled faces in it: its gallery size N for 1:N.")
    created_at: datetime

    @classmethod
    def of(cls, row: Collection, identities: int, faces: int) -> CollectionOut:
        return cls(
            name=row.name,
            description=row.description,
            metadata=row.meta or {},
            identities=identities,
            faces=faces,
            created_at=as_utc(row.created_at),
        )


class CollectionList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [COLLECTION_EXAMPLE]}]})

    items: list[CollectionOut] = Field(description="By name; only those the key may use.")
