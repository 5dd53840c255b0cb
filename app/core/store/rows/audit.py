"""ORM rows of the audit trail (changes: who, when, what, outcome) and of recorded
decisions (verify/recognize answers, for door-access logs). Neither holds an image, an
embedding or a key's secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.store.base import Base, JSONType, utcnow

# Postgres: a bigint; SQLite auto-increments only INTEGER PRIMARY KEY.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # key prefix, "cli" or "open-mode"
    actor_name: Mapped[str] = mapped_column(String(200))  # the key's name
    action: Mapped[str] = mapped_column(String(64))  # e.g. "identity.delete"
    target: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # ids only
    outcome: Mapped[str] = mapped_column(String(64))  # "ok" or the error code
    request_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor", "actor", "id"),
        Index("ix_audit_events_action", "action", "id"),
    )


class DecisionRecord(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))  # "verify" or "recognize"
    result: Mapped[str] = mapped_column(String(32))  # match, no_match, known, unknown
    identity_id: Mapped[str | None] = mapped_column(String(36))  # matched or claimed
    distance: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    collection: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_decisions_at", "at"), Index("ix_decisions_actor", "actor", "id"))
