"""ORM row of a collection: a gallery of its own (issue 13). Every identity belongs to
exactly one; the one named `default` is made by migration 0004 with id 1, holds what was
enrolled before collections existed, and cannot be deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.store.base import Base, JSONType, utcnow

DEFAULT_COLLECTION = "default"
DEFAULT_COLLECTION_ID = 1  # inserted with this id by the migration


class Collection(Base):
    __tablename__ = "collections"
    # AUTOINCREMENT on SQLite: an id is never reused, so a key bound to a deleted
    # collection's id never gains a new collection (keys store ids).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
