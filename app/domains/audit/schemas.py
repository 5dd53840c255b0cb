"""Bodies of /v1/audit and /v1/decisions."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from app.core.store.rows.audit import AuditEvent, DecisionRecord


def utc(moment: datetime) -> datetime:
    """SQLite hands back the stored UTC digits without their offset."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


ACTOR = "The key's public prefix; `cli` for the command line, `open-mode` without keys."


class AuditEventOut(BaseModel):
    id: int = Field(description="Increasing with time; `before` pages on it.")
    at: datetime = Field(description="When the change was committed (UTC).")
    actor: str = Field(description=ACTOR)
    actor_name: str = Field(description="The key's name.")
    action: str = Field(description="e.g. `identity.create`, `face.delete`, `key.revoke`.")
    target: dict[str, str | int | None] = Field(description="The ids the change touched.")
    outcome: str = Field(description="`ok`, or the error code of a refused change.")
    request_id: str | None = Field(description="The request's X-Request-ID; null from the CLI.")

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventOut:
        return cls(
            id=row.id,
            at=utc(row.at),
            actor=row.actor,
            actor_name=row.actor_name,
            action=row.action,
            target=row.target,
            outcome=row.outcome,
            request_id=row.request_id,
        )


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class DecisionOut(BaseModel):
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

    @classmethod
    def of(cls, row: DecisionRecord) -> DecisionOut:
        return cls(
            id=row.id,
            at=utc(row.at),
            actor=row.actor,
            actor_name=row.actor_name,
            action=row.action,
            result=row.result,
            identity_id=row.identity_id,
            distance=row.distance,
            threshold=row.threshold,
            collection=row.collection,
            request_id=row.request_id,
        )


class DecisionPage(BaseModel):
    items: list[DecisionOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")
