"""/v1/stylize and /v1/jobs: style transfer as asynchronous jobs."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response

from app.api import errors
from app.api.deps import SessionDep, SettingsDep, StylizeDep, VerifyKey
from app.api.forms import openapi_body, parse_form
from app.domains.jobs import service
from app.domains.jobs.schemas import JobOut, StylizeForm

router = APIRouter(prefix="/v1", tags=["stylize"])

IMAGES = ("content", "style")
QUOTA: dict[int | str, dict[str, Any]] = {
    429: errors._doc("`too_many_jobs`: this key has too many jobs queued or running")
}
FINISHED: dict[int | str, dict[str, Any]] = {
    409: errors._doc("`conflict`: the job has not succeeded / has already finished")
}


@router.post(
    "/stylize",
    status_code=202,
    response_model=JobOut,
    summary="Start a neural style transfer job (Gatys et al.)",
    responses=errors.responses(QUOTA),
    openapi_extra=openapi_body(StylizeForm, IMAGES),
)
async def stylize(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    principal: VerifyKey,
    session: SessionDep,
    settings: SettingsDep,
    runner: StylizeDep,
) -> JobOut:
    form = await parse_form(request, StylizeForm, IMAGES, settings.max_image_bytes)
    job = await service.submit(session, form, principal, settings)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    background.add_task(runner.wake)  # after the commit
    return JobOut.of(job)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Status, progress and latest costs of a job",
    responses=errors.responses(errors.NOT_FOUND),
)
async def get_job(job_id: uuid.UUID, principal: VerifyKey, session: SessionDep) -> JobOut:
    return JobOut.of(await service.get(session, job_id, principal))


@router.get(
    "/jobs/{job_id}/result",
    response_class=Response,
    summary="The stylised image (PNG) of a succeeded job",
    responses={
        200: {"content": {"image/png": {}}, "description": "The PNG."},
        **errors.responses(errors.NOT_FOUND, FINISHED),
    },
)
async def get_result(job_id: uuid.UUID, principal: VerifyKey, session: SessionDep) -> Response:
    png = await service.result(session, job_id, principal)
    return Response(png, media_type="image/png")


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a queued or running job (it stops within one step)",
    responses=errors.responses(errors.NOT_FOUND, FINISHED),
)
async def cancel_job(job_id: uuid.UUID, principal: VerifyKey, session: SessionDep) -> JobOut:
    return JobOut.of(await service.cancel(session, job_id, principal))
