"""Stored calibrations: add one, find the newest for a model. Only flushes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.store.rows.calibrations import StoredCalibration


async def add(session: AsyncSession, row: StoredCalibration) -> StoredCalibration:
    session.add(row)
    await session.flush()
    return row


async def latest(session: AsyncSession, model: tuple[str, str]) -> StoredCalibration | None:
    """The newest calibration of this model name and version (another version's
    embeddings, hence distances, differ, so its thresholds do not apply)."""
    query = (
        select(StoredCalibration)
        .where(StoredCalibration.model_name == model[0])
        .where(StoredCalibration.model_version == model[1])
        .order_by(StoredCalibration.id.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()
