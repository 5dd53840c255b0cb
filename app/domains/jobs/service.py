"""Submitting, reading and cancelling style jobs for the API; the runner does them."""

from __future__ import annotations

import uuid

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.access import Principal, Scope
from app.core.config import Settings
from app.core.errors import Conflict, FacesvcError, NotFound
from app.core.model.decode import DecodeLimits, decode_image
from app.core.store.repos import jobs as repo
from app.core.store.rows.jobs import JobStatus, StyleJob
from app.core.store.unit_of_work import unit_of_work
from app.core.style.options import plan
from app.core.style.results import ResultStore
from app.domains.jobs.runner import StyleRunner
from app.domains.jobs.schemas import JobOut, StylizeForm

OPEN_MODE_OWNER = "open-mode"


class TooManyJobs(FacesvcError):
    status_code = 429
    code = "too_many_jobs"


def owner_of(principal: Principal) -> str:
    return principal.prefix or OPEN_MODE_OWNER


async def _visible(session: AsyncSession, job_id: uuid.UUID, principal: Principal) -> StyleJob:
    """The job, if this key may see it (its own, or any for admin keys)."""
    job = await repo.get_job(session, job_id)
    if job is None or not (principal.allows(Scope.admin) or job.owner == owner_of(principal)):
        raise NotFound(f"no job with id {job_id}")
    return job


class JobService:
    """Style jobs for the API. Each call is one unit of work, committed before it returns;
    `runner` (started and stopped by the lifespan) runs the queued jobs."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        runner: StyleRunner,
        settings: Settings,  # the stylize_* limits and defaults a job's plan is made with
    ) -> None:
        self.sessions = sessions
        self.runner = runner
        self.settings = settings
        self.limits = DecodeLimits(settings.max_image_bytes, settings.max_image_pixels)
        self.max_image_bytes = settings.max_image_bytes  # uploads are refused above it
        self.max_active_per_key = settings.stylize_max_queued_per_key

    def _check_images(self, form: StylizeForm) -> None:
        """Refuse undecodable or oversized images now rather than in the job."""
        decode_image(form.content, self.limits)
        decode_image(form.style, self.limits)

    async def submit(self, form: StylizeForm, principal: Principal) -> JobOut:
        job_plan = plan(form.options(), self.settings)
        await anyio.to_thread.run_sync(self._check_images, form)
        owner = owner_of(principal)
        async with unit_of_work(self.sessions) as session:
            if await repo.count_active(session, owner) >= self.max_active_per_key:
                raise TooManyJobs(
                    f"this key has {self.max_active_per_key} style jobs queued or "
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
            return JobOut.of(await repo.add_job(session, job))

    def wake(self) -> None:
        """After a submit has been committed: the runner looks for it now, not at its next poll."""
        self.runner.wake()

    async def get(self, job_id: uuid.UUID, principal: Principal) -> JobOut:
        async with unit_of_work(self.sessions) as session:
            return JobOut.of(await _visible(session, job_id, principal))

    async def result(self, job_id: uuid.UUID, principal: Principal) -> bytes:
        async with unit_of_work(self.sessions) as session:
            job = await _visible(session, job_id, principal)
            if job.status != JobStatus.succeeded.value:
                raise Conflict(
                    f"job {job_id} is {job.status}; a result exists once it has succeeded"
                )
            if job.result_path:
                png = await anyio.to_thread.run_sync(ResultStore.read, job.result_path)
            else:
                png = await repo.result_png(session, job_id)
        if png is None:
            raise NotFound(f"the result of job {job_id} is no longer stored")
        return png

    async def cancel(self, job_id: uuid.UUID, principal: Principal) -> JobOut:
        async with unit_of_work(self.sessions) as session:
            job = await _visible(session, job_id, principal)
            if not await repo.cancel(session, job_id):
                raise Conflict(f"job {job_id} has already finished ({job.status})")
            cancelled = await repo.get_job(session, job_id)
            assert cancelled is not None
            return JobOut.of(cancelled)
