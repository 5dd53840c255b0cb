"""/healthz (process up), /readyz (model, database, index), /metrics (Prometheus).

/healthz and /readyz need no key (probes); /metrics shows the gallery size, so whether and
for whom it is served is a setting (FACESVC_METRICS, `metrics_router`)."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from app.api import errors
from app.api.deps import ContextDep, require
from app.core.access import Scope

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


async def metrics(context: ContextDep) -> Response:
    # Rendering in multiprocess mode reads every process's files: off the event loop.
    body = await anyio.to_thread.run_sync(context.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_router(access: Literal["public", "key", "off"]) -> APIRouter:
    """/metrics for anyone, for a key with the `metrics` scope, or not at all (404)."""
    scraper = APIRouter(tags=["health"])
    if access == "off":
        return scraper
    keyed = access == "key"
    scraper.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        response_class=Response,
        dependencies=[Depends(require(Scope.metrics))] if keyed else [],
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}},
            **(errors.responses() if keyed else errors.PUBLIC),
        },
    )
    return scraper
