"""ORM rows for identities and faces."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.store.base import Base, JSONType, utcnow, uuid7
from app.core.store.rows.collections import DEFAULT_COLLECTION_ID

# SQLite only auto-increments INTEGER PRIMARY KEY; AUTOINCREMENT never reuses a deleted id,
# which matters because face ids are the FAISS ids.
FaceId = BigInteger().with_variant(Integer(), "sqlite")


class Identity(Base):
    __tablename__ = "identities"
    # external_id is unique within a collection: a 409 must not tell one tenant that
    # another collection holds an id
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id", name="uq_identities_collection_external"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    collection_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey("collections.id", ondelete="CASCADE", name="fk_identities_collection_id"),
        index=True,
        default=DEFAULT_COLLECTION_ID,
    )
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    faces: Mapped[list[Face]] = relationship(
        back_populates="identity",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Face.id",
        lazy="raise",  # load explicitly (selectinload); async sessions cannot lazy-load
    )


class Face(Base):
    """One enrolled photo of an identity: its embedding and where the face was."""

    __tablename__ = "faces"
    __table_args__ = (
        Index("ix_faces_model", "model_name", "model_version"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(FaceId, primary_key=True, autoincrement=True)
    identity_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # app.core.store.codec
    box: Mapped[list[float] | None] = mapped_column(JSONType)  # x1, y1, x2, y2
    detection_score: Mapped[float | None] = mapped_column(Float)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    identity: Mapped[Identity] = relationship(back_populates="faces", lazy="raise")
