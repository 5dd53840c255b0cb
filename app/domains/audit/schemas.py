"""Bodies of /v1/audit and /v1/decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def utc(moment: datetime) -> datetime:
    """SQLite hands back the stored UTC digits without their offset."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


ACTOR = "The key's public prefix; `cli` for the command line, `open-mode` without keys."


class RowOut(BaseModel):
    """A stored row as it is answered: its fields by name, `at` in UTC."""

    model_config = ConfigDict(from_attributes=True)

    @field_validator("at", check_fields=False)
    @classmethod
    def _utc(cls, moment: datetime) -> datetime:
        return utc(moment)


class AuditEventOut(RowOut):
    id: int = Field(description="Increasing with time; `before` pages on it.")
    at: datetime = Field(description="When the change was committed (UTC).")
    actor: str = Field(description=ACTOR)
    actor_name: str = Field(description="The key's name.")
    action: str = Field(description="e.g. `identity.create`, `face.delete`, `key.revoke`.")
    target: dict[str, str | int | None] = Field(description="The ids the change touched.")
    outcome: str = Field(description="`ok`, or the error code of a refused change.")
    request_id: str | None = Field(description="The request's X-Request-ID; null from the CLI.")


AUDIT_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "at": "2026-12-01T03:28:59.780200Z",
    "actor": "3f9a1c2b7d4e",
    "actor_name": "door-admin",
    "action": "identity.delete",
    "target": {"identity_id": "3f0c1e52-6a8b-4f0e-9d3c-5b7a2e1f4c90"},
    "outcome": "ok",
    "request_id": "5b1f0c2a9e8d4c7b8a6f3e2d1c0b9a87",
}
DECISION_EXAMPLE: dict[str, Any] = {
    "id": 12,
    "at": "2026-12-01T03:29:01.120000Z",
    "actor": "8c2d4e6f1a3b",
    "actor_name": "front-door",
    "action": "recognize",
    "result": "known",
    "identity_id": "3f0c1e52-6a8b-4f0e-9d3c-5b7a2e1f4c90",
    "distance": 0.0712,
    "threshold": 0.6855,
    "collection": "default",
    "request_id": "0e4f2a6c8b1d3f5a7c9e0b2d4f6a8c1e",
}


class AuditPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [AUDIT_EXAMPLE], "next_before": 7}]}
    )

    items: list[AuditEventOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class DecisionOut(RowOut):
    id: int
    at: datetime = Field(description="When the answer was given (UTC).")
    actor: str = Field(description=ACTOR)
    actor_name: str
    action: str = Field(description="`verify` or `recognize` (one row per face).")
    result: str = Field(description="`match` / `no_match` (verify), `known` / `unknown`.")
    identity_id: str | None = Field(description="The matched (or claimed) identity.")
    distance: float | None = Field(description="Null where the answer carried none.")
    threshold: float
    collection: str | None
    request_id: str | None


class DecisionPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [DECISION_EXAMPLE], "next_before": 12}]}
    )

    items: list[DecisionOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")
