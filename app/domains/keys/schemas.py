"""Request and response bodies of /v1/keys (apart from the ORM row). The key's hash is
never in an answer; the key itself only once, in the answer that created it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.store.rows.keys import ApiKey
from app.domains.shared import CollectionName, Name, as_utc

ScopeName = Literal["admin", "enroll", "delete", "read", "verify", "metrics"]

KEY_EXAMPLE: dict[str, Any] = {
    "prefix": "3b1f0c2d9e8a",
    "name": "front-door",
    "scopes": ["verify"],
    "collections": ["front-door"],
    "created_at": "2026-12-01T03:28:59.780200Z",
    "expires_at": "2027-12-01T00:00:00Z",
    "last_used_at": "2026-12-01T04:02:11.500000Z",
    "revoked_at": None,
}


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


class KeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [KEY_EXAMPLE]})

    prefix: str = Field(description="The key's public id: fsk_<prefix>_...")
    name: str
    scopes: list[str]
    collections: list[str] | None = Field(
        None, description="The collections it may use; null: every collection."
    )
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = Field(None, description="Updated at most once a minute.")
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, row: ApiKey, collections: list[str] | None) -> KeyOut:
        return cls(
            prefix=row.prefix,
            name=row.name,
            scopes=list(row.scopes),
            collections=collections,
            created_at=as_utc(row.created_at),
            expires_at=_utc(row.expires_at),
            last_used_at=_utc(row.last_used_at),
            revoked_at=_utc(row.revoked_at),
        )


class KeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [KEY_EXAMPLE]}]})

    items: list[KeyOut] = Field(description="Oldest first, revoked ones included.")


class KeyCreated(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": KEY_EXAMPLE,
                    "secret": "fsk_3b1f0c2d9e8a_Q2hvb3NlIGEgbG9uZyByYW5kb20ga2V5IGhlcmU",
                }
            ]
        }
    )

    key: KeyOut
    secret: str = Field(
        description="The key to send as X-API-Key. Shown this once: only its hash is stored."
    )


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "front-door",
                    "scopes": ["verify"],
                    "collections": ["front-door"],
                    "expires_at": "2027-12-01T00:00:00Z",
                }
            ]
        },
    )

    name: Name
    scopes: list[ScopeName] = Field(min_length=1, max_length=6)
    collections: list[CollectionName] | None = Field(
        None, max_length=100, description="Bind the key to these; null or absent: every one."
    )
    expires_at: datetime | None = Field(None, description="Null or absent: never expires.")
