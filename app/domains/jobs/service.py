"""Submitting, reading and cancelling style jobs for the API."""

from __future__ import annotations

import uuid

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.access import Principal, Scope
from app.core.config import Settings
from app.core.errors import Conflict, FacesvcError, NotFound
from app.core.model.decode import DecodeLimits, decode_image
from app.core.store.repos import jobs as repo
from app.core.store.rows.jobs import JobStatus, StyleJob
from app.core.style.options import plan
from app.core.style.results import ResultStore
from app.domains.jobs.schemas import StylizeForm

OPEN_MODE_OWNER = "open-mode"


class TooManyJobs(FacesvcError):
    status_code = 429
    code = "too_many_jobs"


def owner_of(principal: Principal) -> str:
    return principal.prefix or OPEN_MODE_OWNER


def _check_images(form: StylizeForm, settings: Settings) -> None:
    """Refuse undecodable or oversized images now rather than in the job."""
    limits = DecodeLimits(settings.max_image_bytes, settings.max_image_pixels)
    decode_image(form.content, limits)
    decode_image(form.style, limits)


async def submit(
    session: AsyncSession, form: StylizeForm, principal: Principal, settings: Settings
) -> StyleJob:
    job_plan = plan(form.options(), settings)
    await anyio.to_thread.run_sync(_check_images, form, settings)
    owner = owner_of(principal)
    if await repo.count_active(session, owner) >= settings.stylize_max_queued_per_key:
        raise TooManyJobs(
            f"this key has {settings.stylize_max_queued_per_key} style jobs queued or "
            "running; wait for one to finish or cancel one"
        )
    job = StyleJob(
        owner=owner,
        status=JobStatus.queued.value,
        params=job_plan.model_dump(),
        content_image=form.content,
        style_image=form.style,
        step=0,
        steps=job_plan.steps,
        history=[],
        attempts=0,
    )
    return await repo.add_job(session, job)


async def get(session: AsyncSession, job_id: uuid.UUID, principal: Principal) -> StyleJob:
    """The job, if this key may see it (its own, or any for admin keys)."""
    job = await repo.get_job(session, job_id)
    if job is None or not (principal.allows(Scope.admin) or job.owner == owner_of(principal)):
        raise NotFound(f"no job with id {job_id}")
    return job


async def result(session: AsyncSession, job_id: uuid.UUID, principal: Principal) -> bytes:
    job = await get(session, job_id, principal)
    if job.status != JobStatus.succeeded.value:
        raise Conflict(f"job {job_id} is {job.status}; a result exists once it has succeeded")
    if job.result_path:
        png = await anyio.to_thread.run_sync(ResultStore.read, job.result_path)
    else:
        png = await repo.result_png(session, job_id)
    if png is None:
        raise NotFound(f"the result of job {job_id} is no longer stored")
    return png


async def cancel(session: AsyncSession, job_id: uuid.UUID, principal: Principal) -> StyleJob:
    job = await get(session, job_id, principal)
    if not await repo.cancel(session, job_id):
        raise Conflict(f"job {job_id} has already finished ({job.status})")
    cancelled = await repo.get_job(session, job_id)
    assert cancelled is not None
    return cancelled
