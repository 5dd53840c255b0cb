"""/healthz (process up), /readyz (model, database, index), /metrics (Prometheus)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from app.api import errors
from app.deps import ContextDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model: bool
    database: bool
    index: bool


@router.get("/healthz", response_model=Health, responses=errors.PUBLIC)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready"}, **errors.PUBLIC},
)
async def readyz(context: ContextDep) -> JSONResponse:
    try:
        async with context.db.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    ready = Readiness(
        status="ok",
        model=context.inference.ready,
        database=database,
        index=context.gallery.ready,
    )
    ok = ready.model and ready.database and ready.index
    if not ok:
        ready.status = "unavailable"
    return JSONResponse(ready.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors.PUBLIC},
)
async def metrics(context: ContextDep) -> Response:
    # Rendering in multiprocess mode reads every process's files: off the event loop.
    body = await anyio.to_thread.run_sync(context.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
