"""/v1/stylize and /v1/jobs: style transfer as asynchronous jobs."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response

from app.api import errors
from app.api.deps import VerifyKey, from_state
from app.api.forms import openapi_body, parse_form
from app.domains.jobs.schemas import JobOut, StylizeForm
from app.domains.jobs.service import JobService

router = APIRouter(prefix="/v1", tags=["stylize"])

JobsDep = Annotated[JobService, Depends(from_state("jobs"))]

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
    responses=errors.responses(errors.BODY, QUOTA),
    openapi_extra=openapi_body(StylizeForm, IMAGES),
)
async def start_stylize_job(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    principal: VerifyKey,
    jobs: JobsDep,
) -> JobOut:
    form = await parse_form(request, StylizeForm, IMAGES, jobs.max_image_bytes)
    job = await jobs.submit(form, principal)
    response.headers["Location"] = f"/v1/jobs/{job.job_id}"
    background.add_task(jobs.wake)  # after the response
    return job


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Status, progress and latest costs of a job",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def get_job(job_id: uuid.UUID, principal: VerifyKey, jobs: JobsDep) -> JobOut:
    return await jobs.get(job_id, principal)


@router.get(
    "/jobs/{job_id}/result",
    response_class=Response,
    summary="The stylised image (PNG) of a succeeded job",
    responses={
        200: {"content": {"image/png": {}}, "description": "The PNG."},
        **errors.responses(errors.PARAMS, errors.NOT_FOUND, FINISHED),
    },
)
async def get_job_result(job_id: uuid.UUID, principal: VerifyKey, jobs: JobsDep) -> Response:
    png = await jobs.result(job_id, principal)
    return Response(png, media_type="image/png")


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a queued or running job (it stops within one step)",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND, FINISHED),
)
async def cancel_job(job_id: uuid.UUID, principal: VerifyKey, jobs: JobsDep) -> JobOut:
    return await jobs.cancel(job_id, principal)
