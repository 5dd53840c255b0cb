"""Body types more than one domain answers with: an identity as any domain shows it, and
the bounded text and box types (apart from the ORM rows)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from app.core import bounds
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.core.store.rows.identities import Identity

# Trimmed, 1-200 characters, no control characters (NUL included).
Name = bounds.Label
ExternalId = bounds.Label
# A JSON object (multipart: as a string), at most 32 levels deep and 16 KiB, keys and
# strings without control characters (tab and newline allowed in strings).
Metadata = Annotated[dict[str, Any] | None, BeforeValidator(bounds.metadata)]
Box = tuple[float, float, float, float]
# A collection's name: safe in a URL path, 1-100 characters.
CollectionName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", max_length=100)
]
COLLECTION_HELP = (
    "The collection to work in (docs/service.md, Collections); an identity of another "
    "collection answers as not found. A key bound to other collections gets 403."
)
# A form field of every request that reads or writes the gallery.
CollectionField = Annotated[
    CollectionName, Field(description=COLLECTION_HELP, examples=[DEFAULT_COLLECTION])
]


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Values the service answered for two LFW photos of Aaron Sorkin (tests/data/faces) with
# the default model: the OpenAPI examples (app.api.openapi) are built from them.
IDENTITY_EXAMPLE: dict[str, Any] = {
    "id": "01a22fa6-077d-7d21-90a9-f7222a62b71b",
    "name": "Aaron Sorkin",
    "external_id": "emp-1042",
    "metadata": {"department": "writing"},
    "created_at": "2026-12-01T03:28:59.773587Z",
}
BOX_EXAMPLE = [62.71, 66.06, 165.7, 197.72]
LANDMARKS_EXAMPLE = [  # eyes, nose tip, mouth corners
    [101.96, 110.37],
    [146.95, 109.41],
    [134.32, 138.56],
    [100.37, 159.31],
    [149.64, 157.38],
]
FACE_EXAMPLE: dict[str, Any] = {
    "box": BOX_EXAMPLE,
    "detection_score": 0.99998,
    "score": 0.99998,
    "landmarks": LANDMARKS_EXAMPLE,
}
IMAGE_EXAMPLE = "<the photo's bytes in base64, e.g. from `base64 -w0 photo.jpg`>"


class IdentityOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [IDENTITY_EXAMPLE]})

    id: uuid.UUID
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Identity) -> IdentityOut:
        return cls(
            id=row.id,
            name=row.name,
            external_id=row.external_id,
            metadata=row.meta or {},
            created_at=as_utc(row.created_at),
        )
