"""ORM row for API keys. Only a hash of the key is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.store.base import Base, utcnow


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # public lookup id
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole key
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # ids of the collections the key may use; null: all of them (migration 0004)
    collections: Mapped[list[int] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written at most once a minute per key (`app.core.store.repos.keys.LAST_USED_EVERY`).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
