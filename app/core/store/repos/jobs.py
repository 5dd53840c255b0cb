"""Queries on style jobs. State changes are conditional UPDATEs (on status and runner),
so a cancel, a second process and a restart can race without losing or doubling work.
Repositories only flush; callers commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.store.base import utcnow
from app.core.store.rows.jobs import ACTIVE, JobStatus, StyleJob


async def add_job(session: AsyncSession, job: StyleJob) -> StyleJob:
    session.add(job)
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> StyleJob | None:
    return await session.get(StyleJob, job_id, populate_existing=True)


async def result_png(session: AsyncSession, job_id: uuid.UUID) -> bytes | None:
    png: bytes | None = await session.scalar(
        select(StyleJob.result_png).where(StyleJob.id == job_id)
    )
    return png


async def inputs(session: AsyncSession, job_id: uuid.UUID) -> tuple[bytes, bytes] | None:
    row = (
        await session.execute(
            select(StyleJob.content_image, StyleJob.style_image).where(StyleJob.id == job_id)
        )
    ).one_or_none()
    if row is None or row[0] is None or row[1] is None:
        return None
    return row[0], row[1]


async def count_active(session: AsyncSession, owner: str) -> int:
    query = select(func.count()).where(StyleJob.owner == owner, StyleJob.status.in_(ACTIVE))
    return int(await session.scalar(query) or 0)


async def queued_ids(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    query = (
        select(StyleJob.id)
        .where(StyleJob.status == JobStatus.queued.value)
        .order_by(StyleJob.created_at, StyleJob.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def _update(session: AsyncSession, job_id: uuid.UUID, *where: Any, **values: Any) -> bool:
    """One conditional UPDATE; True when it changed the row."""
    statement = (
        update(StyleJob)
        .where(StyleJob.id == job_id, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def claim(session: AsyncSession, job_id: uuid.UUID, runner: str) -> bool:
    """queued -> running for `runner`; False when another runner or a cancel came first."""
    now = utcnow()
    return await _update(
        session,
        job_id,
        StyleJob.status == JobStatus.queued.value,
        status=JobStatus.running.value,
        runner=runner,
        attempts=StyleJob.attempts + 1,
        started_at=now,
        heartbeat_at=now,
        step=0,
        error=None,
    )


async def update_running(
    session: AsyncSession, job_id: uuid.UUID, runner: str, **values: Any
) -> bool:
    """Change a job this runner is running; False when it was cancelled (or taken)."""
    return await _update(
        session,
        job_id,
        StyleJob.status == JobStatus.running.value,
        StyleJob.runner == runner,
        heartbeat_at=utcnow(),
        **values,
    )


FINISHED_CLEARS: dict[str, Any] = {"content_image": None, "style_image": None}


async def cancel(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """queued or running -> cancelled; a runner notices at its next step."""
    return await _update(
        session,
        job_id,
        StyleJob.status.in_(ACTIVE),
        status=JobStatus.cancelled.value,
        finished_at=utcnow(),
        **FINISHED_CLEARS,
    )


async def stale_running(
    session: AsyncSession, runner: str, heartbeat_before: datetime
) -> Sequence[StyleJob]:
    """Running jobs of other runners that stopped beating: their process died."""
    query = select(StyleJob).where(
        StyleJob.status == JobStatus.running.value,
        (StyleJob.runner != runner) | StyleJob.runner.is_(None),
        StyleJob.heartbeat_at < heartbeat_before,
    )
    return (await session.scalars(query)).all()


async def recover(
    session: AsyncSession, job: StyleJob, heartbeat_before: datetime, *, rerun: bool, error: str
) -> bool:
    """Requeue or fail an interrupted job (only if it is still the stale one we saw)."""
    where = (
        StyleJob.status == JobStatus.running.value,
        StyleJob.runner == job.runner,
        StyleJob.heartbeat_at < heartbeat_before,
    )
    if rerun:
        return await _update(session, job.id, *where, status=JobStatus.queued.value, error=error)
    return await _update(
        session,
        job.id,
        *where,
        status=JobStatus.failed.value,
        error=error,
        finished_at=utcnow(),
        **FINISHED_CLEARS,
    )


async def expired(session: AsyncSession, finished_before: datetime) -> Sequence[StyleJob]:
    query = select(StyleJob).where(
        StyleJob.status.not_in(ACTIVE), StyleJob.finished_at < finished_before
    )
    return (await session.scalars(query)).all()


async def delete_jobs(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> int:
    if not job_ids:
        return 0
    statement = (
        delete(StyleJob)
        .where(StyleJob.id.in_(job_ids), StyleJob.status.not_in(ACTIVE))
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def beat(session: AsyncSession, runner: str, job_ids: Sequence[uuid.UUID]) -> None:
    """Mark this runner's jobs alive between steps (a first step can take long)."""
    if job_ids:
        await session.execute(
            update(StyleJob)
            .where(
                StyleJob.id.in_(job_ids),
                StyleJob.runner == runner,
                StyleJob.status == JobStatus.running.value,
            )
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
