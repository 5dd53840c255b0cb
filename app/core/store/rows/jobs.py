"""ORM row of a style-transfer job (migration 0002)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.store.base import Base, JSONType, utcnow, uuid7


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE = (JobStatus.queued.value, JobStatus.running.value)


class StyleJob(Base):
    __tablename__ = "stylize_jobs"
    __table_args__ = (
        Index("ix_stylize_jobs_status", "status", "created_at"),
        Index("ix_stylize_jobs_owner", "owner", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    owner: Mapped[str] = mapped_column(String(64))  # the API key's prefix
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)  # a resolved `Plan`
    # The uploads, kept only until the job ends (a restart needs them to re-run it).
    content_image: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    style_image: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    cost_content: Mapped[float | None] = mapped_column(Float)
    cost_style: Mapped[float | None] = mapped_column(Float)
    history: Mapped[list[list[float]]] = mapped_column(JSONType, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result_png: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    result_path: Mapped[str | None] = mapped_column(String(500))
    identity_distance: Mapped[float | None] = mapped_column(Float)
    identity_verified: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(String(36))  # id of the process running it
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
