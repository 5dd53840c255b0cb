"""The change log of the search index: one row per statement that changed `faces`.

Written by Postgres triggers only (migration 0007), never by the ORM; the same trigger
sends the NOTIFY that replicas listen for (`app.core.store.index_feed`). On SQLite the
table exists and stays empty: one machine keeps the index by its own commit hooks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime
from sqlalchemy.orm import Mapped, mapped_column

from app.core.store.base import Base, JSONType

# What replicas LISTEN on; the trigger NOTIFYs it in the changing transaction.
CHANNEL = "facesvc_index"
# Rows kept: a replica that missed more changes than this rebuilds from the faces table.
KEPT_CHANGES = 10_000


class IndexChange(Base):
    __tablename__ = "index_changes"

    # 1, 2, 3, ... in commit order, without gaps: the trigger takes the next number under
    # a transaction-scoped advisory lock, so a rolled-back change leaves no hole.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added: Mapped[list[int]] = mapped_column(JSONType)  # inserted, or re-embedded
    removed: Mapped[list[int]] = mapped_column(JSONType)  # deleted (ids are never reused)
    reset: Mapped[bool] = mapped_column(Boolean, default=False)  # TRUNCATE: rebuild
