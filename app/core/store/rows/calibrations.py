"""ORM row of a stored calibration: one per `facesvc calibrate` run, never overwritten;
the service uses the newest one for its active model (name and version)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.store.base import Base, JSONType, utcnow


class StoredCalibration(Base):
    __tablename__ = "calibrations"
    __table_args__ = (Index("ix_calibrations_model", "model_name", "model_version", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(500))  # the data set and the command
    tau_verify: Mapped[float] = mapped_column(Float)
    far_target: Mapped[float] = mapped_column(Float)
    tau_identify: Mapped[float] = mapped_column(Float)
    fpir_target: Mapped[float] = mapped_column(Float)
    gallery_size: Mapped[int] = mapped_column(Integer)
    # re-derive tau_identify from the live gallery size to hold fpir_target
    follow_gallery: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)  # figures and gallery model
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
