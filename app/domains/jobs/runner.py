"""The job runner: its own threads and its own bound (`stylize_workers`), apart from the
inference pool, so style transfer never waits on or delays a verify.

Jobs are claimed from the database, so a job survives the process: queued jobs run
after a restart, and a running job whose process died (its heartbeat stopped for
`stylize_stale_after_s`) is re-run (`stylize_on_restart=rerun`, up to
`stylize_max_attempts` starts) or marked failed with the reason. Every step writes the
job's progress with a conditional UPDATE; when a DELETE has cancelled the job, that
UPDATE changes nothing and the optimisation stops there, within one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import anyio.to_thread
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import FacesvcError
from app.core.model.decode import DecodeLimits, decode_image
from app.core.model.types import RGBImage
from app.core.store.base import utcnow
from app.core.store.repos import jobs as repo
from app.core.store.rows.jobs import JobStatus, StyleJob
from app.core.style.networks import NetworkCache
from app.core.style.optimise import Costs, Outcome, stylize
from app.core.style.options import Plan
from app.core.style.results import ResultStore
from app.domains.jobs.identity import NO_FACE, IdentityReport

log = logging.getLogger(__name__)

IdentityCheck = Callable[[bytes, bytes], Awaitable[IdentityReport]]
POLL_S = 1.0  # also picks up jobs queued by other processes
SWEEP_S = 5.0


JOB_NICENESS = 10


def lower_priority() -> None:
    """On Linux a thread has its own nice value, and the torch threads it starts
    inherit it: on a shared CPU, verify and recognize come first."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)


def encode_png(image: RGBImage) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def interruption(job: StyleJob, rerun: bool, max_attempts: int) -> str:
    where = f"interrupted at step {job.step} of {job.steps}: the process running it stopped"
    if rerun:
        return f"{where}; re-run (start {job.attempts + 1} of {max_attempts})"
    return f"{where} (start {job.attempts} of {max_attempts})"


class StyleRunner:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        networks: NetworkCache,
        identity: IdentityCheck | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.settings = settings
        self.sessions = sessions
        self.networks = networks
        self.identity = identity
        self.results = ResultStore(settings)
        self.limits = DecodeLimits(settings.max_image_bytes, settings.max_image_pixels)
        self.workers = settings.stylize_workers
        # Threads of their own: their lowered priority never leaks into other work.
        self.threads = ThreadPoolExecutor(
            max(1, self.workers), "stylize", initializer=lower_priority
        )
        self.running: dict[uuid.UUID, threading.Event] = {}  # job -> stop flag
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.sweep()
        self._loop_task = asyncio.create_task(self._loop(), name="stylize-runner")

    async def stop(self) -> None:
        """Running jobs stop at their next step and go back to the queue."""
        self._stopping = True
        for flag in self.running.values():
            flag.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.threads.shutdown(wait=False)

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() - last_sweep >= SWEEP_S:
                    last_sweep = time.monotonic()
                    await self.sweep()
                await self._dispatch()
            except Exception:  # the database may be away for a while: keep trying
                log.exception("style job runner")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _dispatch(self) -> None:
        free = self.workers - len(self.running)
        if free <= 0:
            return
        async with self.sessions() as session:
            for job_id in await repo.queued_ids(session, free):
                if await repo.claim(session, job_id, self.id):
                    await session.commit()
                    self.running[job_id] = threading.Event()
                    task = asyncio.create_task(self._execute(job_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ housekeeping

    async def sweep(self) -> None:
        """Heartbeat, recovery of interrupted jobs, retention."""
        settings, now = self.settings, utcnow()
        stale_before = now - timedelta(seconds=settings.stylize_stale_after_s)
        expired_before = now - timedelta(hours=settings.stylize_retention_hours)
        async with self.sessions() as session:
            await repo.beat(session, self.id, list(self.running))
            for job in await repo.stale_running(session, self.id, stale_before):
                rerun = (
                    settings.stylize_on_restart == "rerun"
                    and job.attempts < settings.stylize_max_attempts
                )
                error = interruption(job, rerun, settings.stylize_max_attempts)
                if await repo.recover(session, job, stale_before, rerun=rerun, error=error):
                    log.warning("style job %s %s", job.id, error)
            expired = await repo.expired(session, expired_before)
            await repo.delete_jobs(session, [job.id for job in expired])
            await session.commit()
        for job in expired:
            self.results.remove(job.result_path)

    # ------------------------------------------------------------ one job

    async def _execute(self, job_id: uuid.UUID) -> None:
        flag = self.running[job_id]
        try:
            async with self.sessions() as session:
                job = await repo.get_job(session, job_id)
                inputs = await repo.inputs(session, job_id)
            if job is None or inputs is None:
                raise RuntimeError("the job's images are missing")
            plan = Plan.model_validate(job.params)
            content, style = inputs
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(
                self.threads, self._optimise, loop, job_id, plan, content, style, flag
            )
            if outcome.completed:
                await self._succeed(job_id, content, outcome)
            elif self._stopping:
                await self._update(job_id, status=JobStatus.queued.value, attempts=job.attempts - 1)
        except Exception as error:
            if isinstance(error, FacesvcError):
                message = f"{error.code}: {error.detail}"
            else:
                log.exception("style job %s failed", job_id)
                message = f"{type(error).__name__}: {error}"
            await self._update(
                job_id,
                status=JobStatus.failed.value,
                error=message,
                finished_at=utcnow(),
                **repo.FINISHED_CLEARS,
            )
        finally:
            self.running.pop(job_id, None)
            self.wake()

    def _optimise(
        self,
        loop: asyncio.AbstractEventLoop,
        job_id: uuid.UUID,
        plan: Plan,
        content: bytes,
        style: bytes,
        flag: threading.Event,
    ) -> Outcome:
        network = self.networks.get(plan.network)
        content_image = decode_image(content, self.limits)
        style_image = decode_image(style, self.limits)

        def on_step(step: int, costs: Costs) -> bool:
            if flag.is_set():
                return False
            progress = self._progress(job_id, step, costs)
            return asyncio.run_coroutine_threadsafe(progress, loop).result()

        return stylize(network, content_image, style_image, plan, on_step)

    async def _progress(self, job_id: uuid.UUID, step: int, costs: Costs) -> bool:
        return await self._update(
            job_id,
            step=step,
            cost=costs.total,
            cost_content=costs.content,
            cost_style=costs.style,
        )

    async def _update(self, job_id: uuid.UUID, **values: object) -> bool:
        async with self.sessions() as session:
            changed = await repo.update_running(session, job_id, self.id, **values)
            await session.commit()
        return changed

    async def _succeed(self, job_id: uuid.UUID, content: bytes, outcome: Outcome) -> None:
        png = await anyio.to_thread.run_sync(encode_png, outcome.image)
        report = NO_FACE
        if self.identity is not None:
            report = await self.identity(content, png)
        path, blob = await anyio.to_thread.run_sync(self.results.put, job_id, png)
        stored = await self._update(
            job_id,
            status=JobStatus.succeeded.value,
            finished_at=utcnow(),
            result_path=path,
            result_png=blob,
            history=[[c.total, c.content, c.style] for c in outcome.history],
            identity_distance=report.distance,
            identity_verified=report.verified,
            error=None,
            **repo.FINISHED_CLEARS,
        )
        if not stored:  # cancelled after the last step
            self.results.remove(path)
